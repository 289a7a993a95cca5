package domain

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

var countryPattern = regexp.MustCompile(`^[A-Z]{2}$`)

// maxCMPField bounds cmp_id and cmp_version: both are 12-bit fields of the
// TC string and the GPP header.
const maxCMPField = 4095

// iab parses the optional iab section. purposes and regions are what the
// rest of the file defined, for the references the section makes.
func (ps *policyParser) iab(n *yaml.Node, purposes []Purpose, regionList []Region, regions map[string]int) *IAB {
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	fields := ps.mapping(n, "iab", "cmp_id", "cmp_version", "tcf", "gpp")
	if fields == nil {
		return nil
	}
	out := &IAB{}
	if v := fields["cmp_id"]; v == nil || isNull(resolve(v)) {
		line := ps.keyLine(n)
		if v != nil {
			line = v.Line
		}
		ps.errorf(line, "iab.cmp_id", "required: TCF and GPP need the CMP id you registered with the IAB")
	} else {
		out.CMPID = ps.cmpField(v, "iab.cmp_id")
	}
	if v := ps.iabRequired(fields, n, "iab", "cmp_version"); v != nil {
		out.CMPVersion = ps.cmpField(v, "iab.cmp_version")
	}
	byID := map[string]Purpose{}
	for _, pu := range purposes {
		byID[pu.ID] = pu
	}
	// region id -> "tcf" or "gpp" and the line that claimed it, so a region
	// listed under both is reported where it is listed the second time.
	claimed := map[string]regionClaim{}
	if v := fields["tcf"]; v != nil && !isNull(resolve(v)) {
		out.TCF = ps.tcf(v, byID, regions, claimed)
		ps.tcfRegionsOptIn(out.TCF, regionList, claimed)
	}
	if v := fields["gpp"]; v != nil && !isNull(resolve(v)) {
		out.GPP = ps.gpp(v, byID, regions, claimed)
	}
	return out
}

type regionClaim struct {
	section string
	line    int
}

func (ps *policyParser) cmpField(n *yaml.Node, path string) int {
	v, ok := ps.integer(n, path)
	if ok && (v < 1 || v > maxCMPField) {
		ps.errorf(n.Line, path, "must be 1-%d, got %d", maxCMPField, v)
	}
	return v
}

// iabRegions reads the regions list of the tcf or gpp part.
func (ps *policyParser) iabRegions(fields map[string]*yaml.Node, parent *yaml.Node, section string, regions map[string]int, claimed map[string]regionClaim) []string {
	path := "iab." + section + ".regions"
	n := ps.iabRequired(fields, parent, "iab."+section, "regions")
	if n == nil {
		return nil
	}
	items := ps.sequence(n, path)
	if items == nil {
		return nil
	}
	if len(items) == 0 {
		ps.errorf(ps.keyLine(n), path, "at least one region is required")
		return nil
	}
	var out []string
	for i, item := range items {
		ipath := fmt.Sprintf("%s[%d]", path, i)
		id, ok := ps.str(item, ipath)
		if !ok {
			continue
		}
		if _, known := regions[id]; !known {
			if len(regions) > 0 {
				ps.errorf(item.Line, ipath, "no region with id %s", Quote(id, maxPolicyEcho))
			}
			continue
		}
		if c, dup := claimed[id]; dup {
			if c.section == section {
				ps.errorf(item.Line, ipath, "duplicate region %q (first at line %d)", id, c.line)
			} else {
				ps.errorf(item.Line, ipath, "region %q is already in iab.%s.regions (line %d); a region gets TCF or GPP, not both", id, c.section, c.line)
			}
			continue
		}
		claimed[id] = regionClaim{section: section, line: item.Line}
		out = append(out, id)
	}
	return out
}

// iabPurpose reads a reference to a consentd purpose that a choice can deny.
func (ps *policyParser) iabPurpose(n *yaml.Node, path, id string, purposes map[string]Purpose) bool {
	pu, ok := purposes[id]
	switch {
	case !ok && len(purposes) > 0:
		ps.errorf(n.Line, path, "no purpose with id %s", Quote(id, maxPolicyEcho))
		return false
	case ok && pu.Necessary:
		ps.errorf(n.Line, path, "the necessary purpose cannot be mapped: it is never denied, so it cannot stand for a choice")
		return false
	}
	return ok
}

func (ps *policyParser) tcf(n *yaml.Node, purposes map[string]Purpose, regions map[string]int, claimed map[string]regionClaim) *TCF {
	fields := ps.mapping(n, "iab.tcf", "regions", "publisher_country", "purpose_one_treatment", "vendors", "purposes")
	if fields == nil {
		return nil
	}
	t := &TCF{}
	t.Regions = ps.iabRegions(fields, n, "tcf", regions, claimed)
	if v := ps.iabRequired(fields, n, "iab.tcf", "publisher_country"); v != nil {
		if c, ok := ps.str(v, "iab.tcf.publisher_country"); ok {
			if !countryPattern.MatchString(c) {
				ps.errorf(v.Line, "iab.tcf.publisher_country", "must be an ISO 3166-1 alpha-2 country code like \"DE\" (upper case), got %s", Quote(c, maxPolicyEcho))
			}
			t.PublisherCountry = c
		}
	}
	if v := fields["purpose_one_treatment"]; v != nil {
		t.PurposeOneTreatment, _ = ps.boolean(v, "iab.tcf.purpose_one_treatment")
	}
	if v := fields["vendors"]; v != nil && !isNull(resolve(v)) {
		if items := resolve(v); items.Kind == yaml.SequenceNode && len(items.Content) == 0 {
			ps.errorf(ps.keyLine(items), "iab.tcf.vendors", "at least one vendor id; leave vendors out to work with every vendor of the vendor list")
		} else {
			t.Vendors = ps.intList(v, "iab.tcf.vendors", "vendor id", 1, 1<<16-1, nil)
		}
	}
	if v := ps.iabRequired(fields, n, "iab.tcf", "purposes"); v != nil {
		t.Purposes = ps.tcfPurposes(v, purposes)
	}
	return t
}

// tcfPurposes reads the consentd purpose -> TCF mapping, keeping file order.
func (ps *policyParser) tcfPurposes(n *yaml.Node, purposes map[string]Purpose) []TCFMapping {
	const path = "iab.tcf.purposes"
	if n.Kind != yaml.MappingNode {
		ps.errorf(n.Line, path, "must be a mapping of consentd purpose id to {consent, legitimate_interest, special_features}, got %s", describe(n))
		return nil
	}
	var out []TCFMapping
	seen := map[string]int{}
	// TCF purpose / special feature -> where it was first mapped.
	consent, li, features := map[int]string{}, map[int]string{}, map[int]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			ps.errorf(k.Line, path, "keys must be purpose ids, got %s", describe(k))
			continue
		}
		id := k.Value
		ppath := join(path, fieldName(id))
		if line, dup := seen[id]; dup {
			ps.errorf(k.Line, ppath, "duplicate purpose (first at line %d)", line)
			continue
		}
		seen[id] = k.Line
		ps.keyLines[v] = k.Line
		ok := ps.iabPurpose(k, ppath, id, purposes)
		fields := ps.mapping(v, ppath, "consent", "legitimate_interest", "special_features")
		if fields == nil {
			continue
		}
		m := TCFMapping{Purpose: id}
		if f := fields["consent"]; f != nil && !isNull(resolve(f)) {
			m.Consent = ps.intList(f, ppath+".consent", "TCF purpose", 1, TCFPurposes, consent)
		}
		if f := fields["legitimate_interest"]; f != nil && !isNull(resolve(f)) {
			m.LegitimateInterest = ps.intList(f, ppath+".legitimate_interest", "TCF purpose", 1, TCFPurposes, li)
			// Report each offending item on its own line.
			if len(m.LegitimateInterest) > 0 {
				for j, item := range resolve(f).Content {
					var p int
					if resolve(item).Decode(&p) == nil && slices.Contains(m.LegitimateInterest, p) && !slices.Contains(tcfLIPurposes, p) {
						ps.errorf(item.Line, fmt.Sprintf("%s.legitimate_interest[%d]", ppath, j), "TCF purpose %d cannot rest on legitimate interest (TCF v2.2 allows it for purposes 2, 7, 8, 9, 10 and 11 only)", p)
					}
				}
			}
		}
		if f := fields["special_features"]; f != nil && !isNull(resolve(f)) {
			m.SpecialFeatures = ps.intList(f, ppath+".special_features", "TCF special feature", 1, TCFSpecialFeatures, features)
		}
		if len(fields) == 0 {
			// An empty mapping is harmless but almost certainly a mistake.
			ps.errorf(ps.keyLine(v), ppath, "maps to nothing: give consent, legitimate_interest or special_features")
		}
		if ok {
			out = append(out, m)
		}
	}
	if len(n.Content) == 0 {
		ps.errorf(ps.keyLine(n), path, "at least one purpose mapping is required")
	}
	return out
}

// intList reads a list of integers in [lo, hi]; what names one in errors. When
// owners is not nil, an integer already in it (mapped elsewhere) is an error,
// and each new one is recorded with its path.
func (ps *policyParser) intList(n *yaml.Node, path, what string, lo, hi int, owners map[int]string) []int {
	items := ps.sequence(n, path)
	if items == nil {
		return nil
	}
	local := map[int]int{}
	var out []int
	for i, item := range items {
		ipath := fmt.Sprintf("%s[%d]", path, i)
		v, ok := ps.integer(item, ipath)
		if !ok {
			continue
		}
		if v < lo || v > hi {
			if hi-lo < 100 {
				ps.errorf(item.Line, ipath, "no %s %d (%d-%d)", what, v, lo, hi)
			} else {
				ps.errorf(item.Line, ipath, "%s must be %d-%d, got %d", what, lo, hi, v)
			}
			continue
		}
		if line, dup := local[v]; dup {
			ps.errorf(item.Line, ipath, "duplicate %s %d (first at line %d)", what, v, line)
			continue
		}
		local[v] = item.Line
		if owners != nil {
			if first, dup := owners[v]; dup {
				ps.errorf(item.Line, ipath, "%s %d is already mapped at %s; each can stand for one consentd purpose only", what, v, first)
				continue
			}
			owners[v] = fmt.Sprintf("%s (line %d)", ipath, item.Line)
		}
		out = append(out, v)
	}
	return out
}

func (ps *policyParser) gpp(n *yaml.Node, purposes map[string]Purpose, regions map[string]int, claimed map[string]regionClaim) *GPP {
	fields := ps.mapping(n, "iab.gpp", "regions", "purpose", "state_sections", "notices", "mspa")
	if fields == nil {
		return nil
	}
	g := &GPP{Notices: GPPNotices{Sharing: true, SaleOptOut: true, SharingOptOut: true, TargetedAdvertisingOptOut: true}}
	g.Regions = ps.iabRegions(fields, n, "gpp", regions, claimed)
	if v := ps.iabRequired(fields, n, "iab.gpp", "purpose"); v != nil {
		if id, ok := ps.str(v, "iab.gpp.purpose"); ok && ps.iabPurpose(v, "iab.gpp.purpose", id, purposes) {
			g.Purpose = id
		}
	}
	if v := fields["state_sections"]; v != nil && !isNull(resolve(v)) {
		items := ps.sequence(v, "iab.gpp.state_sections")
		seen := map[string]int{}
		for i, item := range items {
			ipath := fmt.Sprintf("iab.gpp.state_sections[%d]", i)
			name, ok := ps.str(item, ipath)
			if !ok {
				continue
			}
			if !slices.Contains(gppStateSections, name) {
				ps.errorf(item.Line, ipath, "no GPP state section %s (known: %s)", Quote(name, maxPolicyEcho), strings.Join(gppStateSections, ", "))
				continue
			}
			if line, dup := seen[name]; dup {
				ps.errorf(item.Line, ipath, "duplicate state section %q (first at line %d)", name, line)
				continue
			}
			seen[name] = item.Line
			g.StateSections = append(g.StateSections, name)
		}
	}
	if v := fields["notices"]; v != nil && !isNull(resolve(v)) {
		if nf := ps.mapping(v, "iab.gpp.notices", "sharing", "sale_opt_out", "sharing_opt_out", "targeted_advertising_opt_out"); nf != nil {
			for key, dst := range map[string]*bool{
				"sharing": &g.Notices.Sharing, "sale_opt_out": &g.Notices.SaleOptOut,
				"sharing_opt_out": &g.Notices.SharingOptOut, "targeted_advertising_opt_out": &g.Notices.TargetedAdvertisingOptOut,
			} {
				if f := nf[key]; f != nil {
					if b, ok := ps.boolean(f, "iab.gpp.notices."+key); ok {
						*dst = b
					}
				}
			}
		}
	}
	if v := fields["mspa"]; v != nil && !isNull(resolve(v)) {
		if mf := ps.mapping(v, "iab.gpp.mspa", "covered_transaction", "mode"); mf != nil {
			if f := mf["covered_transaction"]; f != nil {
				g.MSPA.CoveredTransaction, _ = ps.boolean(f, "iab.gpp.mspa.covered_transaction")
			}
			modes := []string{MSPAOptOutOption, MSPAServiceProvider}
			if f := mf["mode"]; f != nil && !isNull(resolve(f)) {
				if m, ok := ps.str(f, "iab.gpp.mspa.mode"); ok {
					switch {
					case !slices.Contains(modes, m):
						ps.errorf(f.Line, "iab.gpp.mspa.mode", "must be one of %s, got %s", strings.Join(modes, ", "), Quote(m, maxPolicyEcho))
					case !g.MSPA.CoveredTransaction:
						ps.errorf(f.Line, "iab.gpp.mspa.mode", "only applies with covered_transaction: true")
					default:
						g.MSPA.Mode = m
					}
				}
			} else if g.MSPA.CoveredTransaction {
				ps.errorf(resolve(v).Line, "iab.gpp.mspa.mode", "required with covered_transaction: true: one of %s", strings.Join(modes, ", "))
			}
		}
	}
	return g
}

// iabRequired is required, reporting a missing key at the line of its
// parent's own key ("tcf:"), where a reader looks for it.
func (ps *policyParser) iabRequired(fields map[string]*yaml.Node, parent *yaml.Node, path, key string) *yaml.Node {
	if fields[key] == nil {
		ps.errorf(ps.keyLine(resolve(parent)), join(path, key), "required")
		return nil
	}
	return ps.required(fields, parent, path, key)
}

// tcfRegionsOptIn: a TC string's purpose consent must come from a yes, so
// the TCF regions must ask before anything runs (opt_in). In an opt_out or
// notice_only region an undecided purpose is allowed, and a TC string would
// claim consent nobody gave.
func (ps *policyParser) tcfRegionsOptIn(t *TCF, regionList []Region, claimed map[string]regionClaim) {
	if t == nil {
		return
	}
	for i, id := range t.Regions {
		for _, r := range regionList {
			if r.ID == id && r.Mechanism != MechanismOptIn {
				ps.errorf(claimed[id].line, fmt.Sprintf("iab.tcf.regions[%d]", i), "region %q is %s: TCF consent needs an opt_in region (nothing allowed before a yes)", id, r.Mechanism)
			}
		}
	}
}
