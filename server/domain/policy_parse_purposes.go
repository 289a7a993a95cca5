package domain

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

func (ps *policyParser) purposes(n *yaml.Node) []Purpose {
	items := ps.sequence(n, "purposes")
	if items == nil {
		return nil
	}
	if len(items) == 0 {
		ps.errorf(ps.keyLine(n), "purposes", "at least one purpose is required")
		return nil
	}
	var out []Purpose
	seen := map[string]int{} // id -> line
	necessary := 0
	for i, item := range items {
		path := fmt.Sprintf("purposes[%d]", i)
		pu, ok := ps.purpose(item, path)
		if !ok {
			continue
		}
		if pu.ID != "" {
			if line, dup := seen[pu.ID]; dup {
				ps.errorf(item.Line, path+".id", "duplicate purpose id %q (first at line %d)", pu.ID, line)
			} else {
				seen[pu.ID] = item.Line
			}
		}
		if pu.Necessary {
			necessary++
		}
		out = append(out, pu)
	}
	// The API, the SDK and the rules all assume one strictly necessary
	// purpose named "necessary"; purpose() already rejected any other name.
	if necessary == 0 {
		ps.errorf(ps.keyLine(n), "purposes", "exactly one purpose must be necessary: the one with id \"necessary\" and necessary: true; found none")
	}
	return out
}

func (ps *policyParser) purpose(n *yaml.Node, path string) (Purpose, bool) {
	fields := ps.mapping(n, path, "id", "version", "lifetime", "gpc", "always_opt_in", "necessary", "legal_basis", "titles", "descriptions")
	if fields == nil {
		return Purpose{}, false
	}
	var pu Purpose
	if v := ps.required(fields, n, path, "id"); v != nil {
		if id, ok := ps.identifier(v, path+".id", purposeIDPattern, "lower-case letters, digits and _, starting with a letter, with at most one dot (e.g. \"marketing.email\")"); ok {
			pu.ID = id
		}
	}
	if v := ps.required(fields, n, path, "version"); v != nil {
		if ver, ok := ps.integer(v, path+".version"); ok {
			if ver < 1 {
				ps.errorf(v.Line, path+".version", "must be >= 1, got %d", ver)
			}
			pu.Version = ver
		}
	}
	if v := fields["lifetime"]; v != nil {
		pu.Lifetime = ps.lifetime(v, path+".lifetime")
	}
	if v := fields["gpc"]; v != nil {
		pu.GPC, _ = ps.boolean(v, path+".gpc")
	}
	if v := fields["always_opt_in"]; v != nil {
		pu.AlwaysOptIn, _ = ps.boolean(v, path+".always_opt_in")
	}
	necessaryNode := fields["necessary"]
	if necessaryNode != nil {
		pu.Necessary, _ = ps.boolean(necessaryNode, path+".necessary")
	}
	if v := ps.required(fields, n, path, "legal_basis"); v != nil {
		if lb, ok := ps.str(v, path+".legal_basis"); ok {
			if !slices.Contains(legalBases, lb) {
				ps.errorf(v.Line, path+".legal_basis", "must be one of %s, got %s", strings.Join(legalBases, ", "), Quote(lb, maxPolicyEcho))
			}
			pu.LegalBasis = lb
		}
	}
	if v := ps.required(fields, n, path, "titles"); v != nil {
		pu.Titles = ps.texts(v, path+".titles")
	}
	if v := ps.required(fields, n, path, "descriptions"); v != nil {
		pu.Descriptions = ps.texts(v, path+".descriptions")
	}

	line := n.Line
	if necessaryNode != nil {
		line = necessaryNode.Line
	}
	switch {
	case pu.Necessary && pu.ID != "" && pu.ID != "necessary":
		ps.errorf(line, path+".necessary", "only the purpose with id \"necessary\" can be necessary, this one is %q", pu.ID)
	case !pu.Necessary && pu.ID == "necessary":
		ps.errorf(line, path+".necessary", "the purpose \"necessary\" must have necessary: true")
	case pu.Necessary && pu.GPC:
		// GPC would deny it, but a necessary purpose cannot be denied: the
		// file would promise something the service will not do.
		ps.errorf(fields["gpc"].Line, path+".gpc", "a necessary purpose cannot be opted out by GPC")
	case pu.Necessary && pu.AlwaysOptIn:
		// Opt-in would deny it until granted; a necessary purpose is always granted.
		ps.errorf(fields["always_opt_in"].Line, path+".always_opt_in", "a necessary purpose cannot be opt-in")
	}
	return pu, true
}

// lifetime accepts 0, a Go duration ("8760h") or whole days ("390d"):
// policy authors think in days and months, Go durations stop at hours.
func (ps *policyParser) lifetime(n *yaml.Node, path string) time.Duration {
	n = resolve(n)
	const format = `must be 0 (never expires), whole days like "390d" or a Go duration like "8760h"`
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!str" && n.Tag != "!!int") {
		ps.errorf(n.Line, path, "%s, got %s", format, describe(n))
		return 0
	}
	s := n.Value
	if n.Tag == "!!int" {
		// A bare number has no unit: 30 could mean days or seconds. Only 0
		// is unambiguous.
		if s == "0" {
			return 0
		}
		ps.errorf(n.Line, path, "%s, got %s without a unit", format, s)
		return 0
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		nd, err := strconv.ParseInt(days, 10, 64)
		if err != nil {
			ps.errorf(n.Line, path, "%s, got %s", format, Quote(s, maxPolicyEcho))
			return 0
		}
		if nd > int64(math.MaxInt64/(24*time.Hour)) {
			ps.errorf(n.Line, path, "must be at most %d days, got %s", int64(math.MaxInt64/(24*time.Hour)), Quote(s, maxPolicyEcho))
			return 0
		}
		d = time.Duration(nd) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			ps.errorf(n.Line, path, "%s, got %s", format, Quote(s, maxPolicyEcho))
			return 0
		}
	}
	if d < 0 {
		ps.errorf(n.Line, path, "must be >= 0, got %s", Quote(s, maxPolicyEcho))
		return 0
	}
	return d
}

// texts reads a language -> text map. "en" is required because it is the
// fallback every UI can show when the visitor's language is missing.
func (ps *policyParser) texts(n *yaml.Node, path string) map[string]string {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		ps.errorf(n.Line, path, "must be a mapping of language to text (e.g. {en: ..., de: ...}), got %s", describe(n))
		return nil
	}
	out := map[string]string{}
	keyLines := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			ps.errorf(k.Line, path, "language must be a string, got %s", describe(k))
			continue
		}
		lang := k.Value
		if line, dup := keyLines[lang]; dup {
			ps.errorf(k.Line, path+"."+lang, "duplicate language (first at line %d)", line)
			continue
		}
		keyLines[lang] = k.Line
		if !languagePattern.MatchString(lang) {
			ps.errorf(k.Line, path, "language %s must look like \"en\" or \"pt-BR\"", Quote(lang, maxPolicyEcho))
			continue
		}
		text, ok := ps.str(v, path+"."+lang)
		if !ok {
			continue
		}
		if strings.TrimSpace(text) == "" {
			ps.errorf(v.Line, path+"."+lang, "must not be empty")
			continue
		}
		out[lang] = text
	}
	if _, ok := keyLines["en"]; !ok {
		ps.errorf(n.Line, path+".en", "required: English is the fallback for every other language")
	}
	return out
}
