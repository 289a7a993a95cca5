package domain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
)

// GVL is the IAB's Global Vendor List (GVL v3, TCF v2.2) the operator gives
// consentd (--gvl): the vendors a TC string can name, their purposes and the
// purposes' texts. consentd checks its shape, serves it to the SDK (narrowed
// to the policy's tcf.vendors) and keeps every field as the file has it, so
// the IAB's libraries read exactly what the operator provided.
type GVL struct {
	SpecificationVersion int // gvlSpecificationVersion: always 3
	VendorListVersion    int
	TCFPolicyVersion     int

	top     map[string]json.RawMessage // every top-level field as written
	vendors map[int]json.RawMessage    // vendor id -> its object as written
	body    []byte                     // JSON(nil) once Narrowed made it
}

// Narrowed returns the vendor list as the policy p serves it: its vendors
// narrowed to p's tcf.vendors when given, with the served JSON made once.
func (g *GVL) Narrowed(p *Policy) *GVL {
	var ids []int
	if p.IAB != nil && p.IAB.TCF != nil {
		ids = p.IAB.TCF.Vendors
	}
	out := *g
	out.vendors = make(map[int]json.RawMessage, len(g.vendors))
	for id, v := range g.vendors {
		if ids == nil || slices.Contains(ids, id) {
			out.vendors[id] = v
		}
	}
	out.body = out.JSON(nil)
	return &out
}

// Body is the served JSON of a vendor list made by Narrowed (JSON(nil)
// otherwise).
func (g *GVL) Body() []byte {
	if g.body != nil {
		return g.body
	}
	return g.JSON(nil)
}

// LoadGVL reads and checks a vendor list file; errors start with the path.
func LoadGVL(path string) (*GVL, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseGVL(data, path)
}

// ParseGVL checks a vendor list (GVL v3 JSON) and returns it. Every problem
// found is reported, one a line, each with its JSON path.
func ParseGVL(data []byte) (*GVL, error) { return parseGVL(data, "") }

type gvlChecker struct {
	file string
	errs []error
}

func (c *gvlChecker) errorf(path, format string, args ...any) {
	prefix := ""
	if c.file != "" {
		prefix = c.file + ": "
	}
	if path != "" {
		prefix += path + ": "
	}
	c.errs = append(c.errs, errors.New(prefix+fmt.Sprintf(format, args...)))
}

// gvlVendor is the part of a vendor a TC string relies on.
type gvlVendor struct {
	ID               *int   `json:"id"`
	Name             string `json:"name"`
	Purposes         []int  `json:"purposes"`
	LegIntPurposes   []int  `json:"legIntPurposes"`
	FlexiblePurposes []int  `json:"flexiblePurposes"`
	SpecialPurposes  []int  `json:"specialPurposes"`
	Features         []int  `json:"features"`
	SpecialFeatures  []int  `json:"specialFeatures"`
}

func parseGVL(data []byte, file string) (*GVL, error) {
	c := &gvlChecker{file: file}
	g := &GVL{vendors: map[int]json.RawMessage{}}
	if err := json.Unmarshal(data, &g.top); err != nil || g.top == nil {
		if err == nil {
			err = errors.New("not an object")
		}
		c.errorf("", "not a vendor list (GVL v3 JSON object): %v", err)
		return nil, errors.Join(c.errs...)
	}
	g.SpecificationVersion = c.positive(g.top, "gvlSpecificationVersion")
	if g.SpecificationVersion != 0 && g.SpecificationVersion != 3 {
		c.errorf("gvlSpecificationVersion", "must be 3 (TCF v2.2 vendor lists), got %d", g.SpecificationVersion)
	}
	g.VendorListVersion = c.positive(g.top, "vendorListVersion")
	g.TCFPolicyVersion = c.positive(g.top, "tcfPolicyVersion")

	ids := map[string]map[int]bool{}
	for _, name := range []string{"purposes", "specialPurposes", "features", "specialFeatures"} {
		ids[name] = c.idMap(g.top, name)
	}
	for p := 1; p <= TCFPurposes; p++ {
		if ids["purposes"] != nil && !ids["purposes"][p] {
			c.errorf("purposes", "purpose %d is missing (TCF v2.2 has purposes 1-11)", p)
		}
	}
	for f := 1; f <= TCFSpecialFeatures; f++ {
		if ids["specialFeatures"] != nil && !ids["specialFeatures"][f] {
			c.errorf("specialFeatures", "special feature %d is missing (TCF v2.2 has special features 1-2)", f)
		}
	}

	raw, ok := g.top["vendors"]
	var vendors map[string]json.RawMessage
	if !ok {
		c.errorf("vendors", "required")
	} else if err := json.Unmarshal(raw, &vendors); err != nil || vendors == nil {
		c.errorf("vendors", "must be an object of vendors keyed by id")
	}
	keys := make([]string, 0, len(vendors))
	for k := range vendors {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		path := "vendors." + strconv.Quote(key)
		id, err := strconv.Atoi(key)
		if err != nil || id < 1 || strconv.Itoa(id) != key {
			c.errorf(path, "vendor keys must be vendor ids (integers >= 1)")
			continue
		}
		var v gvlVendor
		if err := json.Unmarshal(vendors[key], &v); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) && te.Field != "" {
				c.errorf(path+"."+te.Field, "must be %s, got a JSON %s", jsonKind(te.Type.String()), te.Value)
			} else {
				c.errorf(path, "must be a vendor object: %v", err)
			}
			continue
		}
		switch {
		case v.ID == nil:
			c.errorf(path+".id", "required")
		case *v.ID != id:
			c.errorf(path+".id", "must equal its key %d, got %d", id, *v.ID)
		}
		if v.Name == "" {
			c.errorf(path+".name", "required")
		}
		for _, list := range []struct {
			field string
			ids   []int
			of    string
		}{
			{"purposes", v.Purposes, "purposes"}, {"legIntPurposes", v.LegIntPurposes, "purposes"},
			{"flexiblePurposes", v.FlexiblePurposes, "purposes"}, {"specialPurposes", v.SpecialPurposes, "specialPurposes"},
			{"features", v.Features, "features"}, {"specialFeatures", v.SpecialFeatures, "specialFeatures"},
		} {
			for i, x := range list.ids {
				if known := ids[list.of]; known != nil && !known[x] {
					c.errorf(fmt.Sprintf("%s.%s[%d]", path, list.field, i), "no %s %d in this vendor list", list.of, x)
				}
			}
		}
		for _, required := range []string{"purposes", "legIntPurposes", "flexiblePurposes", "specialPurposes", "features", "specialFeatures"} {
			if !bytes.Contains(vendors[key], []byte(`"`+required+`"`)) {
				c.errorf(path+"."+required, "required (an empty list when none)")
			}
		}
		g.vendors[id] = vendors[key]
	}
	if len(c.errs) > 0 {
		return nil, errors.Join(c.errs...)
	}
	return g, nil
}

func jsonKind(goType string) string {
	switch goType {
	case "int", "*int":
		return "an integer"
	case "string":
		return "a string"
	case "[]int":
		return "a list of integers"
	}
	return goType
}

// positive reads a required integer > 0 of the top-level object.
func (c *gvlChecker) positive(top map[string]json.RawMessage, field string) int {
	raw, ok := top[field]
	if !ok {
		c.errorf(field, "required")
		return 0
	}
	var v int
	if err := json.Unmarshal(raw, &v); err != nil || v < 1 {
		c.errorf(field, "must be an integer > 0, got %s", Quote(string(raw), maxPolicyEcho))
		return 0
	}
	return v
}

// idMap checks an object of things keyed by id ({"1": {"id": 1, ...}}) and
// returns the ids; nil when it is missing or malformed.
func (c *gvlChecker) idMap(top map[string]json.RawMessage, field string) map[int]bool {
	raw, ok := top[field]
	if !ok {
		c.errorf(field, "required")
		return nil
	}
	var m map[string]struct {
		ID *int `json:"id"`
	}
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		c.errorf(field, "must be an object keyed by id whose values have an integer id")
		return nil
	}
	out := map[int]bool{}
	for key, v := range m {
		id, err := strconv.Atoi(key)
		if err != nil || v.ID == nil || *v.ID != id {
			c.errorf(field+"."+strconv.Quote(key)+".id", "required and equal to its key")
			continue
		}
		out[id] = true
	}
	return out
}

// HasVendor reports whether the vendor list has this vendor.
func (g *GVL) HasVendor(id int) bool {
	_, ok := g.vendors[id]
	return ok
}

// JSON is the vendor list as served: every field as the file has it, with
// vendors narrowed to ids (all of them when ids is nil).
func (g *GVL) JSON(ids []int) []byte {
	out := make(map[string]json.RawMessage, len(g.top))
	for k, v := range g.top {
		out[k] = v
	}
	vendors := make(map[string]json.RawMessage, len(g.vendors))
	for id, v := range g.vendors {
		if ids == nil || slices.Contains(ids, id) {
			vendors[strconv.Itoa(id)] = v
		}
	}
	b, err := json.Marshal(vendors)
	if err != nil {
		panic(err) // every value was valid JSON when parsed
	}
	out["vendors"] = b
	b, err = json.Marshal(out)
	if err != nil {
		panic(err)
	}
	return b
}

// CheckVendorList checks a policy against the vendor list it runs with: a
// policy with TCF needs one, and every vendor its tcf.vendors names must be
// in it. gvlFile names the file in errors.
func CheckVendorList(p *Policy, g *GVL, gvlFile string) error {
	if p.IAB == nil || p.IAB.TCF == nil {
		return nil
	}
	if g == nil {
		return errors.New("the policy's iab.tcf needs the IAB's Global Vendor List: give its file with --gvl (CONSENTD_GVL)")
	}
	var errs []error
	for i, v := range p.IAB.TCF.Vendors {
		if !g.HasVendor(v) {
			errs = append(errs, fmt.Errorf("iab.tcf.vendors[%d]: vendor %d is not in the vendor list %s (vendorListVersion %d)", i, v, gvlFile, g.VendorListVersion))
		}
	}
	return errors.Join(errs...)
}
