package domain

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// basePolicy is a minimal valid policy; policy errors are tested by editing
// one of its lines, so each expected line number is easy to check by eye.
var basePolicy = []string{
	/* 1 */ `version: "1"`,
	/* 2 */ `default_region: world`,
	/* 3 */ `purposes:`,
	/* 4 */ `  - {id: necessary, version: 1, necessary: true, legal_basis: contract, titles: {en: N}, descriptions: {en: N}}`,
	/* 5 */ `  - {id: ads, version: 1, gpc: true, legal_basis: consent, lifetime: 30d, titles: {en: A}, descriptions: {en: A}}`,
	/* 6 */ `regions:`,
	/* 7 */ `  - {id: world, mechanism: opt_in, codes: [DE]}`,
}

// edit returns basePolicy with line n (1-based) replaced by text, which may
// hold several lines; an empty text deletes the line.
func edit(n int, text string) string {
	lines := slices.Clone(basePolicy)
	lines[n-1] = text
	return strings.Join(slices.DeleteFunc(lines, func(s string) bool { return s == "" }), "\n") + "\n"
}

func base() string { return strings.Join(basePolicy, "\n") + "\n" }

func TestParsePolicyValid(t *testing.T) {
	cases := []struct {
		name  string
		yaml  string
		check func(t *testing.T, p *Policy)
	}{
		{"the base policy", base(), func(t *testing.T, p *Policy) {
			pu, _ := p.Purpose("ads")
			if pu.Lifetime != 30*24*time.Hour || !pu.GPC || pu.Titles["en"] != "A" || pu.LegalBasis != "consent" {
				t.Errorf("ads = %+v", pu)
			}
		}},
		{"an unquoted date is a version label", edit(1, `version: 2026-11-01`), func(t *testing.T, p *Policy) {
			if p.Version != "2026-11-01" {
				t.Errorf("version %q", p.Version)
			}
		}},
		{"an integer is a version label", edit(1, `version: 7`), func(t *testing.T, p *Policy) {
			if p.Version != "7" {
				t.Errorf("version %q", p.Version)
			}
		}},
		{"a Go duration lifetime", edit(5, `  - {id: ads, version: 1, legal_basis: consent, lifetime: 8760h, titles: {en: A}, descriptions: {en: A}}`), func(t *testing.T, p *Policy) {
			if pu, _ := p.Purpose("ads"); pu.Lifetime != 8760*time.Hour {
				t.Errorf("lifetime %v", pu.Lifetime)
			}
		}},
		{"lifetime 0 and no lifetime both never expire", edit(5, `  - {id: ads, version: 1, legal_basis: consent, lifetime: 0, titles: {en: A}, descriptions: {en: A}}
  - {id: analytics, version: 1, legal_basis: consent, titles: {en: A}, descriptions: {en: A}}
  - {id: functional, version: 1, legal_basis: consent, lifetime: "0", titles: {en: A}, descriptions: {en: A}}
  - {id: marketing.sms, version: 1, legal_basis: consent, lifetime: 0d, titles: {en: A}, descriptions: {en: A}}`), func(t *testing.T, p *Policy) {
			for _, pu := range p.Purposes {
				if pu.Lifetime != 0 {
					t.Errorf("%s: lifetime %v", pu.ID, pu.Lifetime)
				}
			}
		}},
		{"languages with regions and scripts", edit(5, `  - {id: ads, version: 1, legal_basis: consent, titles: {en: A, pt-BR: B, es-419: C, zh-Hant: D}, descriptions: {en: A}}`), func(t *testing.T, p *Policy) {
			if pu, _ := p.Purpose("ads"); len(pu.Titles) != 4 {
				t.Errorf("titles %v", pu.Titles)
			}
		}},
		{"a region without codes, and with null codes", edit(7, `  - {id: world, mechanism: opt_in, codes: []}
  - {id: other, mechanism: notice_only}
  - {id: third, mechanism: opt_out, codes: }`), func(t *testing.T, p *Policy) {
			if len(p.Regions) != 3 || p.RegionFor("DE").ID != "world" {
				t.Errorf("regions %+v", p.Regions)
			}
		}},
		{"aliases reuse a block", `version: "1"
default_region: world
purposes:
  - id: necessary
    version: 1
    necessary: true
    legal_basis: contract
    titles: &t {en: Same}
    descriptions: *t
  - {id: ads, version: 1, legal_basis: consent, titles: *t, descriptions: *t}
regions:
  - {id: world, mechanism: opt_in}
`, func(t *testing.T, p *Policy) {
			if pu, _ := p.Purpose("ads"); pu.Descriptions["en"] != "Same" {
				t.Errorf("ads = %+v", pu)
			}
		}},
		{"a subdivision and its country in different regions", edit(7, `  - {id: world, mechanism: opt_in, codes: [US]}
  - {id: cal, mechanism: opt_out, codes: [US-CA]}`), func(t *testing.T, p *Policy) {
			if p.RegionFor("US-CA").ID != "cal" || p.RegionFor("US-NV").ID != "world" {
				t.Error("subdivision lookup")
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePolicy([]byte(tc.yaml))
			if err != nil {
				t.Fatalf("ParsePolicy:\n%v\nfor\n%s", err, tc.yaml)
			}
			tc.check(t, p)
		})
	}
}

// policyErrorCases are bad files and a substring of the error each gets,
// grouped by the part of the file that is wrong.
var policyErrorCases = []struct {
	name string
	yaml string
	want string // a substring of the error
}{
	// The file as a whole.
	{"an empty file", "", "line 1: the policy file is empty"},
	{"only comments", "# nothing here\n", "line 1: the policy file is empty"},
	{"only a document marker", "---\n", "line 1: the policy file is empty"},
	{"not YAML", "version: [1\ndefault_region: world\n", "line 1: not valid YAML: did not find expected ',' or ']'"},
	{"a tab for indentation", "version: 1\npurposes:\n\t- a\n", "line 3: not valid YAML: found character that cannot start any token"},
	{"a list instead of a mapping", "- version\n- purposes\n", "line 1: policy: must be a mapping with keys version, default_region, purposes, regions, iab, got a list"},
	{"a scalar instead of a mapping", "hello\n", `line 1: policy: must be a mapping with keys version, default_region, purposes, regions, iab, got the string "hello"`},
	{"two documents", base() + "---\nversion: 2\n", "line 8: the policy file must hold one YAML document, found another"},
	{"an unknown top-level field", edit(2, "default_region: world\ncolour: blue"), `line 3: colour: unknown field (allowed: version, default_region, purposes, regions, iab)`},
	{"a duplicate top-level field", edit(2, "default_region: world\ndefault_region: world"), "line 3: default_region: duplicate field (first at line 2)"},

	// version.
	{"version missing", edit(1, ""), "line 1: version: required"},
	{"version empty", edit(1, "version:"), "line 1: version: required, got an empty value"},
	{"version an empty string", edit(1, `version: ""`), `line 1: version: must be 1-64 characters of A-Z a-z 0-9 . _ : + - (e.g. "2026-11-01"), got ""`},
	{"version with a space", edit(1, `version: "v 1"`), `line 1: version: must be 1-64 characters`},
	{"version too long", edit(1, "version: "+strings.Repeat("1", 65)), `line 1: version: must be 1-64 characters`},
	{"version a list", edit(1, "version: [1]"), "line 1: version: must be a string, got a list"},

	// purposes.
	{"purposes missing", "version: x\ndefault_region: world\nregions:\n  - {id: world, mechanism: opt_in}\n", "line 1: purposes: required"},
	{"purposes empty", "version: x\ndefault_region: world\npurposes: []\nregions:\n  - {id: world, mechanism: opt_in}\n", "line 3: purposes: at least one purpose is required"}, {"purposes empty in block style", "version: x\ndefault_region: world\npurposes:\nregions:\n  - {id: world, mechanism: opt_in}\n", "line 3: purposes: required, got an empty value"},
	{"purposes a string", "version: x\ndefault_region: world\npurposes: all\nregions:\n  - {id: world, mechanism: opt_in}\n", `line 3: purposes: must be a list, got the string "all"`},
	{"a purpose that is a string", edit(5, "  - ads"), `line 5: purposes[1]: must be a mapping with keys id, version, lifetime, gpc, always_opt_in, necessary, legal_basis, titles, descriptions, got the string "ads"`},
	{"an unknown purpose field", edit(5, `  - {id: ads, version: 1, colour: red, legal_basis: consent, titles: {en: A}, descriptions: {en: A}}`), "line 5: purposes[1].colour: unknown field (allowed: id, version, lifetime, gpc, always_opt_in, necessary, legal_basis, titles, descriptions)"},
	{"an unknown purpose field on its own line", `version: "1"
default_region: world
purposes:
  - id: necessary
    version: 1
    necessary: true
    legal_basis: contract
    titles: {en: N}
    descriptions: {en: N}
    lifetme: 30d
regions:
  - {id: world, mechanism: opt_in}
`, "line 10: purposes[0].lifetme: unknown field"},
	{"a duplicate purpose field", edit(5, `  - {id: ads, version: 1, version: 2, legal_basis: consent, titles: {en: A}, descriptions: {en: A}}`), "line 5: purposes[1].version: duplicate field (first at line 5)"},

	// The necessary purpose.
	{"no necessary purpose", edit(4, ""), `line 3: purposes: exactly one purpose must be necessary: the one with id "necessary" and necessary: true; found none`},
	{"necessary on another purpose", edit(5, `  - {id: ads, version: 1, necessary: true, legal_basis: consent, titles: {en: A}, descriptions: {en: A}}`), `line 5: purposes[1].necessary: only the purpose with id "necessary" can be necessary, this one is "ads"`},
	{"the necessary purpose without necessary: true", edit(4, `  - {id: necessary, version: 1, legal_basis: contract, titles: {en: N}, descriptions: {en: N}}`), `line 4: purposes[0].necessary: the purpose "necessary" must have necessary: true`},
	{"the necessary purpose with necessary: false", `version: "1"
default_region: world
purposes:
  - id: necessary
    version: 1
    necessary: false
    legal_basis: contract
    titles: {en: N}
    descriptions: {en: N}
regions:
  - {id: world, mechanism: opt_in}
`, `line 6: purposes[0].necessary: the purpose "necessary" must have necessary: true`},
	{"the necessary purpose opted out by GPC", edit(4, `  - {id: necessary, version: 1, necessary: true, gpc: true, legal_basis: contract, titles: {en: N}, descriptions: {en: N}}`), "line 4: purposes[0].gpc: a necessary purpose cannot be opted out by GPC"},
	{"the necessary purpose opt-in everywhere", edit(4, `  - {id: necessary, version: 1, necessary: true, always_opt_in: true, legal_basis: contract, titles: {en: N}, descriptions: {en: N}}`), "line 4: purposes[0].always_opt_in: a necessary purpose cannot be opt-in"},
	{"always_opt_in not a boolean", edit(5, `  - {id: ads, version: 1, always_opt_in: 1, legal_basis: consent, titles: {en: A}, descriptions: {en: A}}`), "line 5: purposes[1].always_opt_in: must be true or false"},
	{"necessary not a boolean", edit(4, `  - {id: necessary, version: 1, necessary: "yes", legal_basis: contract, titles: {en: N}, descriptions: {en: N}}`), `line 4: purposes[0].necessary: must be true or false, got the string "yes"`},

	// id.
	{"id missing", edit(5, `  - {version: 1, legal_basis: consent, titles: {en: A}, descriptions: {en: A}}`), "line 5: purposes[1].id: required"},
	{"id upper case", edit(5, `  - {id: Ads, version: 1, legal_basis: consent, titles: {en: A}, descriptions: {en: A}}`), `line 5: purposes[1].id: must be lower-case letters, digits and _, starting with a letter, with at most one dot (e.g. "marketing.email"), got "Ads"`},
	{"id with two dots", edit(5, `  - {id: a.b.c, version: 1, legal_basis: consent, titles: {en: A}, descriptions: {en: A}}`), `line 5: purposes[1].id: must be lower-case letters`},
	{"id with a hyphen", edit(5, `  - {id: ad-tech, version: 1, legal_basis: consent, titles: {en: A}, descriptions: {en: A}}`), `line 5: purposes[1].id: must be lower-case letters`},
	{"id starting with a digit", edit(5, `  - {id: 1ads, version: 1, legal_basis: consent, titles: {en: A}, descriptions: {en: A}}`), `line 5: purposes[1].id: must be lower-case letters`},
	{"id a number", edit(5, `  - {id: 7, version: 1, legal_basis: consent, titles: {en: A}, descriptions: {en: A}}`), `line 5: purposes[1].id: must be a string, got the integer "7"`},
	{"id too long", edit(5, `  - {id: `+strings.Repeat("a", 65)+`, version: 1, legal_basis: consent, titles: {en: A}, descriptions: {en: A}}`), "line 5: purposes[1].id: must be at most 64 characters, got 65"},
	{"a duplicate id", edit(5, `  - {id: ads, version: 1, legal_basis: consent, titles: {en: A}, descriptions: {en: A}}
  - {id: ads, version: 1, legal_basis: consent, titles: {en: A}, descriptions: {en: A}}`), `line 6: purposes[2].id: duplicate purpose id "ads" (first at line 5)`},

	// version of a purpose.
	{"purpose version 0", edit(5, `  - {id: ads, version: 0, legal_basis: consent, titles: {en: A}, descriptions: {en: A}}`), "line 5: purposes[1].version: must be >= 1, got 0"},
	{"purpose version negative", edit(5, `  - {id: ads, version: -3, legal_basis: consent, titles: {en: A}, descriptions: {en: A}}`), "line 5: purposes[1].version: must be >= 1, got -3"},
	{"purpose version a word", edit(5, `  - {id: ads, version: one, legal_basis: consent, titles: {en: A}, descriptions: {en: A}}`), `line 5: purposes[1].version: must be an integer, got the string "one"`},
	{"purpose version a fraction", edit(5, `  - {id: ads, version: 1.5, legal_basis: consent, titles: {en: A}, descriptions: {en: A}}`), `line 5: purposes[1].version: must be an integer, got the number "1.5"`},
	{"purpose version missing", edit(5, `  - {id: ads, legal_basis: consent, titles: {en: A}, descriptions: {en: A}}`), "line 5: purposes[1].version: required"},
	{"purpose version on its own line", `version: "1"
default_region: world
purposes:
  - id: necessary
    version: 0
    necessary: true
    legal_basis: contract
    titles: {en: N}
    descriptions: {en: N}
regions:
  - {id: world, mechanism: opt_in}
`, "line 5: purposes[0].version: must be >= 1, got 0"},

	// lifetime.
	{"lifetime not a duration", edit(5, `  - {id: ads, version: 1, legal_basis: consent, lifetime: soon, titles: {en: A}, descriptions: {en: A}}`), `line 5: purposes[1].lifetime: must be 0 (never expires), whole days like "390d" or a Go duration like "8760h", got "soon"`},
	{"lifetime fractional days", edit(5, `  - {id: ads, version: 1, legal_basis: consent, lifetime: 1.5d, titles: {en: A}, descriptions: {en: A}}`), `line 5: purposes[1].lifetime: must be 0 (never expires)`},
	{"lifetime a bare number", edit(5, `  - {id: ads, version: 1, legal_basis: consent, lifetime: 30, titles: {en: A}, descriptions: {en: A}}`), `line 5: purposes[1].lifetime: must be 0 (never expires), whole days like "390d" or a Go duration like "8760h", got 30 without a unit`},
	{"lifetime negative duration", edit(5, `  - {id: ads, version: 1, legal_basis: consent, lifetime: -1h, titles: {en: A}, descriptions: {en: A}}`), `line 5: purposes[1].lifetime: must be >= 0, got "-1h"`},
	{"lifetime negative days", edit(5, `  - {id: ads, version: 1, legal_basis: consent, lifetime: -2d, titles: {en: A}, descriptions: {en: A}}`), `line 5: purposes[1].lifetime: must be >= 0, got "-2d"`},
	{"lifetime too many days", edit(5, `  - {id: ads, version: 1, legal_basis: consent, lifetime: 999999999d, titles: {en: A}, descriptions: {en: A}}`), `line 5: purposes[1].lifetime: must be at most 106751 days, got "999999999d"`},
	{"lifetime a boolean", edit(5, `  - {id: ads, version: 1, legal_basis: consent, lifetime: true, titles: {en: A}, descriptions: {en: A}}`), `line 5: purposes[1].lifetime: must be 0 (never expires), whole days like "390d" or a Go duration like "8760h", got the boolean true`},

	// gpc.
	{"gpc a string", edit(5, `  - {id: ads, version: 1, gpc: "yes", legal_basis: consent, titles: {en: A}, descriptions: {en: A}}`), `line 5: purposes[1].gpc: must be true or false, got the string "yes"`},

	// legal_basis.
	{"legal_basis unknown", edit(5, `  - {id: ads, version: 1, legal_basis: vibes, titles: {en: A}, descriptions: {en: A}}`), `line 5: purposes[1].legal_basis: must be one of consent, legitimate_interest, contract, legal_obligation, got "vibes"`},
	{"legal_basis missing", edit(5, `  - {id: ads, version: 1, titles: {en: A}, descriptions: {en: A}}`), "line 5: purposes[1].legal_basis: required"},

	// titles and descriptions.
	{"titles missing", edit(5, `  - {id: ads, version: 1, legal_basis: consent, descriptions: {en: A}}`), "line 5: purposes[1].titles: required"},
	{"titles without en", edit(5, `  - {id: ads, version: 1, legal_basis: consent, titles: {de: A}, descriptions: {en: A}}`), "line 5: purposes[1].titles.en: required: English is the fallback for every other language"},
	{"descriptions without en", edit(5, `  - {id: ads, version: 1, legal_basis: consent, titles: {en: A}, descriptions: {}}`), "line 5: purposes[1].descriptions.en: required"},
	{"an empty English title", edit(5, `  - {id: ads, version: 1, legal_basis: consent, titles: {en: ""}, descriptions: {en: A}}`), "line 5: purposes[1].titles.en: must not be empty"},
	{"a blank German description", edit(5, `  - {id: ads, version: 1, legal_basis: consent, titles: {en: A}, descriptions: {en: A, de: "  "}}`), "line 5: purposes[1].descriptions.de: must not be empty"},
	{"a null title", edit(5, `  - {id: ads, version: 1, legal_basis: consent, titles: {en: A, fr: }, descriptions: {en: A}}`), "line 5: purposes[1].titles.fr: must be a string, got an empty value"},
	{"an upper-case language", edit(5, `  - {id: ads, version: 1, legal_basis: consent, titles: {en: A}, descriptions: {EN: A, en: B}}`), `line 5: purposes[1].descriptions: language "EN" must look like "en" or "pt-BR"`},
	{"an underscore language", edit(5, `  - {id: ads, version: 1, legal_basis: consent, titles: {en: A, en_US: B}, descriptions: {en: A}}`), `line 5: purposes[1].titles: language "en_US" must look like "en" or "pt-BR"`},
	{"a duplicate language", edit(5, `  - {id: ads, version: 1, legal_basis: consent, titles: {en: A, en: B}, descriptions: {en: A}}`), "line 5: purposes[1].titles.en: duplicate language (first at line 5)"},
	{"titles a string", edit(5, `  - {id: ads, version: 1, legal_basis: consent, titles: Ads, descriptions: {en: A}}`), `line 5: purposes[1].titles: must be a mapping of language to text (e.g. {en: ..., de: ...}), got the string "Ads"`},
	{"a title a number", edit(5, `  - {id: ads, version: 1, legal_basis: consent, titles: {en: 42}, descriptions: {en: A}}`), `line 5: purposes[1].titles.en: must be a string, got the integer "42"`},
	{"a title on its own line", `version: "1"
default_region: world
purposes:
  - id: necessary
    version: 1
    necessary: true
    legal_basis: contract
    titles:
      en: Necessary
      de: ""
    descriptions: {en: N}
regions:
  - {id: world, mechanism: opt_in}
`, "line 10: purposes[0].titles.de: must not be empty"},

	// regions.
	{"regions missing", strings.Replace(edit(6, ""), "  - {id: world, mechanism: opt_in, codes: [DE]}\n", "", 1), "line 1: regions: required"},
	{"regions empty", strings.Replace(edit(7, ""), "regions:", "regions: []", 1), "line 6: regions: at least one region is required"},
	{"regions a mapping", edit(7, "  world: {mechanism: opt_in}"), "line 7: regions: must be a list, got a mapping"},
	{"a region that is a string", edit(7, "  - world"), `line 7: regions[0]: must be a mapping with keys id, mechanism, codes, got the string "world"`},
	{"an unknown region field", edit(7, "  - {id: world, mechanism: opt_in, countries: [DE]}"), "line 7: regions[0].countries: unknown field (allowed: id, mechanism, codes)"},
	{"region id missing", edit(7, "  - {mechanism: opt_in}"), "line 7: regions[0].id: required"},
	{"region id upper case", edit(7, "  - {id: World, mechanism: opt_in}"), `line 7: regions[0].id: must be lower-case letters, digits and _, starting with a letter, got "World"`},
	{"region id with a dot", edit(7, "  - {id: us.ca, mechanism: opt_in}"), `line 7: regions[0].id: must be lower-case letters`},
	{"a duplicate region id", edit(7, "  - {id: world, mechanism: opt_in}\n  - {id: world, mechanism: opt_out}"), `line 8: regions[1].id: duplicate region id "world" (first at line 7)`},
	{"mechanism unknown", edit(7, "  - {id: world, mechanism: opt-in}"), `line 7: regions[0].mechanism: must be one of opt_in, opt_out, notice_only, got "opt-in"`},
	{"mechanism missing", edit(7, "  - {id: world}"), "line 7: regions[0].mechanism: required"},
	{"codes a string", edit(7, "  - {id: world, mechanism: opt_in, codes: DE}"), `line 7: regions[0].codes: must be a list, got the string "DE"`},
	{"a lower-case code", edit(7, "  - {id: world, mechanism: opt_in, codes: [DE, fr]}"), `line 7: regions[0].codes[1]: must be an ISO 3166 code like "DE" or "US-CA" (upper case), got "fr"`},
	{"a three-letter code", edit(7, "  - {id: world, mechanism: opt_in, codes: [DEU]}"), `line 7: regions[0].codes[0]: must be an ISO 3166 code`},
	{"a long subdivision", edit(7, "  - {id: world, mechanism: opt_in, codes: [US-CALI]}"), `line 7: regions[0].codes[0]: must be an ISO 3166 code`},
	{"a numeric code", edit(7, "  - {id: world, mechanism: opt_in, codes: [49]}"), `line 7: regions[0].codes[0]: must be a string, got the integer "49"`},
	{"NO is a string, not a boolean, in YAML 1.2", edit(7, "  - {id: world, mechanism: opt_in, codes: [NO, no]}"), `line 7: regions[0].codes[1]: must be an ISO 3166 code like "DE" or "US-CA" (upper case), got "no"`},
	{"a code twice in one region", edit(7, "  - {id: world, mechanism: opt_in, codes: [DE, FR, DE]}"), `line 7: regions[0].codes[2]: duplicate code "DE" (first at line 7)`},
	{"a code in two regions", edit(7, "  - {id: world, mechanism: opt_in, codes: [DE]}\n  - id: us\n    mechanism: opt_out\n    codes:\n      - US\n      - DE"), `line 12: regions[1].codes[1]: code "DE" is already in region "world" (line 7); a code can belong to one region only`},

	// default_region.
	{"default_region unknown", edit(2, "default_region: mars"), `line 2: default_region: no region with id "mars"`},
	{"default_region missing", edit(2, ""), "line 1: default_region: required"},
	{"default_region empty", edit(2, "default_region:"), "line 2: default_region: required, got an empty value"},
	{"default_region a list", edit(2, "default_region: [world]"), "line 2: default_region: must be a string, got a list"},
}

func TestParsePolicyErrors(t *testing.T) {
	for _, tc := range policyErrorCases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePolicy([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("no error, want %q; parsed %+v\nfrom\n%s", tc.want, p, tc.yaml)
			}
			if p != nil {
				t.Error("a policy came back with the error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error\n%v\ndoes not contain\n%s\nfor\n%s", err, tc.want, tc.yaml)
			}
		})
	}
}

// A bad file is fixed in one pass: every problem is reported, one a line.
func TestParsePolicyReportsEveryError(t *testing.T) {
	src := `version: ""
default_region: mars
purposes:
  - {id: necessary, version: 1, necessary: true, legal_basis: contract, titles: {en: N}, descriptions: {en: N}}
  - {id: Ads, version: 0, legal_basis: vibes, lifetime: soon, titles: {de: A}, descriptions: {en: A}}
regions:
  - {id: world, mechanism: opt-in, codes: [de]}
`
	_, err := ParsePolicy([]byte(src))
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		"line 1: version: must be 1-64 characters",
		"line 5: purposes[1].id: must be lower-case letters",
		"line 5: purposes[1].version: must be >= 1, got 0",
		"line 5: purposes[1].lifetime: must be 0",
		"line 5: purposes[1].legal_basis: must be one of",
		"line 5: purposes[1].titles.en: required",
		"line 7: regions[0].mechanism: must be one of",
		"line 7: regions[0].codes[0]: must be an ISO 3166 code",
		`line 2: default_region: no region with id "mars"`,
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Errorf("got %d errors, want %d:\n%v", len(lines), len(want), err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in\n%v", w, err)
		}
	}
}
