package domain

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// iabPolicy is basePolicy with more purposes and regions and an iab
// section; the error cases edit one of its lines, as edit does.
var iabPolicy = []string{
	/*  1 */ `version: "1"`,
	/*  2 */ `default_region: world`,
	/*  3 */ `purposes:`,
	/*  4 */ `  - {id: necessary, version: 1, necessary: true, legal_basis: contract, titles: {en: N}, descriptions: {en: N}}`,
	/*  5 */ `  - {id: ads, version: 1, gpc: true, legal_basis: consent, titles: {en: A}, descriptions: {en: A}}`,
	/*  6 */ `  - {id: analytics, version: 1, legal_basis: consent, titles: {en: A}, descriptions: {en: A}}`,
	/*  7 */ `regions:`,
	/*  8 */ `  - {id: world, mechanism: notice_only}`,
	/*  9 */ `  - {id: eea, mechanism: opt_in, codes: [DE, FR]}`,
	/* 10 */ `  - {id: uk, mechanism: opt_in, codes: [GB]}`,
	/* 11 */ `  - {id: us, mechanism: opt_out, codes: [US, US-CA, US-VA]}`,
	/* 12 */ `iab:`,
	/* 13 */ `  cmp_id: 300`,
	/* 14 */ `  cmp_version: 2`,
	/* 15 */ `  tcf:`,
	/* 16 */ `    regions: [eea, uk]`,
	/* 17 */ `    publisher_country: DE`,
	/* 18 */ `    vendors: [1, 755]`,
	/* 19 */ `    purposes:`,
	/* 20 */ `      ads:`,
	/* 21 */ `        consent: [1, 2, 3, 4]`,
	/* 22 */ `        legitimate_interest: [7]`,
	/* 23 */ `        special_features: [1]`,
	/* 24 */ `      analytics:`,
	/* 25 */ `        consent: [8, 9]`,
	/* 26 */ `  gpp:`,
	/* 27 */ `    regions: [us]`,
	/* 28 */ `    purpose: ads`,
	/* 29 */ `    state_sections: [usca]`,
	/* 30 */ `    notices: {sharing: false}`,
	/* 31 */ `    mspa: {covered_transaction: true, mode: service_provider}`,
}

func iabEdit(n int, text string) string {
	lines := slices.Clone(iabPolicy)
	lines[n-1] = text
	return strings.Join(slices.DeleteFunc(lines, func(s string) bool { return s == "" }), "\n") + "\n"
}

func TestParsePolicyIAB(t *testing.T) {
	p, err := ParsePolicy([]byte(iabEdit(1, `version: "1"`)))
	if err != nil {
		t.Fatal(err)
	}
	iab := p.IAB
	if iab == nil || iab.CMPID != 300 || iab.CMPVersion != 2 || iab.TCF == nil || iab.GPP == nil {
		t.Fatalf("iab = %+v", iab)
	}
	tcf := iab.TCF
	if !slices.Equal(tcf.Regions, []string{"eea", "uk"}) || tcf.PublisherCountry != "DE" || tcf.PurposeOneTreatment || !slices.Equal(tcf.Vendors, []int{1, 755}) {
		t.Errorf("tcf = %+v", tcf)
	}
	if len(tcf.Purposes) != 2 || tcf.Purposes[0].Purpose != "ads" || !slices.Equal(tcf.Purposes[0].Consent, []int{1, 2, 3, 4}) ||
		!slices.Equal(tcf.Purposes[0].LegitimateInterest, []int{7}) || !slices.Equal(tcf.Purposes[0].SpecialFeatures, []int{1}) ||
		tcf.Purposes[1].Purpose != "analytics" || !slices.Equal(tcf.Purposes[1].Consent, []int{8, 9}) {
		t.Errorf("tcf.purposes = %+v", tcf.Purposes)
	}
	if pu, ok := tcf.ConsentPurpose(9); !ok || pu != "analytics" {
		t.Errorf("ConsentPurpose(9) = %q, %v", pu, ok)
	}
	if _, ok := tcf.ConsentPurpose(5); ok {
		t.Error("ConsentPurpose(5): mapped")
	}
	if pu, ok := tcf.SpecialFeaturePurpose(1); !ok || pu != "ads" {
		t.Errorf("SpecialFeaturePurpose(1) = %q, %v", pu, ok)
	}
	gpp := iab.GPP
	want := GPP{Regions: []string{"us"}, Purpose: "ads", StateSections: []string{"usca"},
		Notices: GPPNotices{Sharing: false, SaleOptOut: true, SharingOptOut: true, TargetedAdvertisingOptOut: true},
		MSPA:    GPPMSPA{CoveredTransaction: true, Mode: MSPAServiceProvider}}
	if !slices.Equal(gpp.Regions, want.Regions) || gpp.Purpose != want.Purpose || !slices.Equal(gpp.StateSections, want.StateSections) || gpp.Notices != want.Notices || gpp.MSPA != want.MSPA {
		t.Errorf("gpp = %+v, want %+v", gpp, want)
	}
	for code, scope := range map[string]string{
		"DE": "tcf", "GB": "tcf", "US": "gpp:usnat", "US-CA": "gpp:usca", "US-VA": "gpp:usnat", "US-TX": "gpp:usnat", "JP": "", "": "",
	} {
		if got := p.IABScope(code); got != scope {
			t.Errorf("IABScope(%q) = %q, want %q", code, got, scope)
		}
	}
	if id, ok := GPPSectionID("usca"); !ok || id != 8 {
		t.Errorf("GPPSectionID(usca) = %d, %v", id, ok)
	}

	// Without the section: no IAB, no scope.
	plain, err := ParsePolicy([]byte(strings.Join(iabPolicy[:11], "\n") + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if plain.IAB != nil || plain.IABScope("DE") != "" {
		t.Errorf("no iab section: %+v, scope %q", plain.IAB, plain.IABScope("DE"))
	}
	// Defaults: no gpp notices or mspa given.
	d, err := ParsePolicy([]byte(policyText(iabEdit(30, "")).replace31()))
	if err != nil {
		t.Fatal(err)
	}
	if d.IAB.GPP.Notices != (GPPNotices{true, true, true, true}) || d.IAB.GPP.MSPA != (GPPMSPA{}) {
		t.Errorf("defaults: %+v", d.IAB.GPP)
	}
}

type policyText string

func (s policyText) replace31() string {
	return strings.Replace(string(s), "    mspa: {covered_transaction: true, mode: service_provider}\n", "", 1)
}

func TestParsePolicyIABErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"cmp_id missing", iabEdit(13, ""), "line 12: iab.cmp_id: required: TCF and GPP need the CMP id you registered with the IAB"},
		{"cmp_id empty", iabEdit(13, "  cmp_id:"), "line 13: iab.cmp_id: required: TCF and GPP need the CMP id you registered with the IAB"},
		{"cmp_id 0", iabEdit(13, "  cmp_id: 0"), "line 13: iab.cmp_id: must be 1-4095, got 0"},
		{"cmp_id too big", iabEdit(13, "  cmp_id: 4096"), "line 13: iab.cmp_id: must be 1-4095, got 4096"},
		{"cmp_version missing", iabEdit(14, ""), "line 12: iab.cmp_version: required"},
		{"an unknown key", iabEdit(14, "  cmp_version: 2\n  cmp_name: x"), "line 15: iab.cmp_name: unknown field (allowed: cmp_id, cmp_version, tcf, gpp)"},
		{"an unknown tcf key", iabEdit(17, "    publisher_country: DE\n    gdpr_applies: true"), "line 18: iab.tcf.gdpr_applies: unknown field"},
		{"an unknown mapping key", iabEdit(23, "        special_feature: [1]"), "line 23: iab.tcf.purposes.ads.special_feature: unknown field (allowed: consent, legitimate_interest, special_features)"},
		{"unknown TCF purpose", iabEdit(21, "        consent: [1, 12]"), "line 21: iab.tcf.purposes.ads.consent[1]: no TCF purpose 12 (1-11)"},
		{"TCF purpose 0", iabEdit(21, "        consent: [0]"), "line 21: iab.tcf.purposes.ads.consent[0]: no TCF purpose 0 (1-11)"},
		{"LI on purpose 1", iabEdit(22, "        legitimate_interest: [7, 1]"), "line 22: iab.tcf.purposes.ads.legitimate_interest[1]: TCF purpose 1 cannot rest on legitimate interest"},
		{"LI on purpose 3", iabEdit(22, "        legitimate_interest: [3]"), "line 22: iab.tcf.purposes.ads.legitimate_interest[0]: TCF purpose 3 cannot rest on legitimate interest (TCF v2.2 allows it for purposes 2, 7, 8, 9, 10 and 11 only)"},
		{"LI on purpose 4", iabEdit(22, "        legitimate_interest: [4]"), "legitimate_interest[0]: TCF purpose 4 cannot"},
		{"LI on purpose 5", iabEdit(22, "        legitimate_interest: [5]"), "legitimate_interest[0]: TCF purpose 5 cannot"},
		{"LI on purpose 6", iabEdit(22, "        legitimate_interest: [6]"), "legitimate_interest[0]: TCF purpose 6 cannot"},
		{"special feature 3", iabEdit(23, "        special_features: [3]"), "line 23: iab.tcf.purposes.ads.special_features[0]: no TCF special feature 3 (1-2)"},
		{"a special feature mapped twice", iabEdit(25, "        consent: [8, 9]\n        special_features: [1]"), "line 26: iab.tcf.purposes.analytics.special_features[0]: TCF special feature 1 is already mapped at iab.tcf.purposes.ads.special_features[0] (line 23)"},
		{"unknown consentd purpose", iabEdit(24, "      marketing:"), `line 24: iab.tcf.purposes.marketing: no purpose with id "marketing"`},
		{"the necessary purpose", iabEdit(24, "      necessary:"), "line 24: iab.tcf.purposes.necessary: the necessary purpose cannot be mapped"},
		{"a TCF purpose mapped twice for consent", iabEdit(25, "        consent: [8, 2]"), "line 25: iab.tcf.purposes.analytics.consent[1]: TCF purpose 2 is already mapped at iab.tcf.purposes.ads.consent[1] (line 21); each can stand for one consentd purpose only"},
		{"a TCF purpose mapped twice for LI", iabEdit(25, "        legitimate_interest: [7]"), "line 25: iab.tcf.purposes.analytics.legitimate_interest[0]: TCF purpose 7 is already mapped at iab.tcf.purposes.ads.legitimate_interest[0] (line 22)"},
		{"a TCF purpose twice in one list", iabEdit(21, "        consent: [2, 2]"), "line 21: iab.tcf.purposes.ads.consent[1]: duplicate TCF purpose 2 (first at line 21)"},
		{"a consentd purpose mapped twice", iabEdit(25, "        consent: [8, 9]\n      ads:\n        consent: [10]"), "line 26: iab.tcf.purposes.ads: duplicate purpose (first at line 20)"},
		{"a mapping to nothing", iabEdit(25, "        {}"), "line 24: iab.tcf.purposes.analytics: maps to nothing"},
		{"unknown tcf region", iabEdit(16, "    regions: [eea, eu]"), `line 16: iab.tcf.regions[1]: no region with id "eu"`},
		{"unknown gpp region", iabEdit(27, "    regions: [usa]"), `line 27: iab.gpp.regions[0]: no region with id "usa"`},
		{"no tcf regions", iabEdit(16, "    regions: []"), "line 16: iab.tcf.regions: at least one region is required"},
		{"tcf regions missing", iabEdit(16, ""), "line 15: iab.tcf.regions: required"},
		{"an opt_out region under tcf", iabEdit(16, "    regions: [eea, us]"), `line 16: iab.tcf.regions[1]: region "us" is opt_out: TCF consent needs an opt_in region`},
		{"a region in both tcf and gpp", iabEdit(27, "    regions: [us, uk]"), `line 27: iab.gpp.regions[1]: region "uk" is already in iab.tcf.regions (line 16); a region gets TCF or GPP, not both`},
		{"unknown state section", iabEdit(29, "    state_sections: [usca, usxx]"), `line 29: iab.gpp.state_sections[1]: no GPP state section "usxx" (known: usca, usva, usco, usut, usct, usfl,`},
		{"usnat as a state section", iabEdit(29, "    state_sections: [usnat]"), `line 29: iab.gpp.state_sections[0]: no GPP state section "usnat"`},
		{"bad publisher_country", iabEdit(17, "    publisher_country: de"), `line 17: iab.tcf.publisher_country: must be an ISO 3166-1 alpha-2 country code like "DE" (upper case), got "de"`},
		{"publisher_country a subdivision", iabEdit(17, "    publisher_country: US-CA"), `line 17: iab.tcf.publisher_country: must be an ISO 3166-1 alpha-2 country code`},
		{"publisher_country missing", iabEdit(17, ""), "line 15: iab.tcf.publisher_country: required"},
		{"a vendor id 0", iabEdit(18, "    vendors: [1, 0]"), "line 18: iab.tcf.vendors[1]: vendor id must be 1-65535, got 0"},
		{"an empty vendor list", iabEdit(18, "    vendors: []"), "line 18: iab.tcf.vendors: at least one vendor id; leave vendors out to work with every vendor"},
		{"a duplicate vendor", iabEdit(18, "    vendors: [755, 755]"), "line 18: iab.tcf.vendors[1]: duplicate vendor id 755 (first at line 18)"},
		{"gpp purpose unknown", iabEdit(28, "    purpose: marketing"), `line 28: iab.gpp.purpose: no purpose with id "marketing"`},
		{"gpp purpose necessary", iabEdit(28, "    purpose: necessary"), "line 28: iab.gpp.purpose: the necessary purpose cannot be mapped"},
		{"gpp purpose missing", iabEdit(28, ""), "line 26: iab.gpp.purpose: required"},
		{"a notice not a boolean", iabEdit(30, "    notices: {sharing: 1}"), `line 30: iab.gpp.notices.sharing: must be true or false, got the integer "1"`},
		{"an unknown notice", iabEdit(30, "    notices: {sale: true}"), "line 30: iab.gpp.notices.sale: unknown field"},
		{"an unknown mspa mode", iabEdit(31, "    mspa: {covered_transaction: true, mode: both}"), `line 31: iab.gpp.mspa.mode: must be one of opt_out_option, service_provider, got "both"`},
		{"mspa mode missing", iabEdit(31, "    mspa: {covered_transaction: true}"), "line 31: iab.gpp.mspa.mode: required with covered_transaction: true"},
		{"mspa mode without a covered transaction", iabEdit(31, "    mspa: {mode: opt_out_option}"), "line 31: iab.gpp.mspa.mode: only applies with covered_transaction: true"},
		{"iab not a mapping", strings.Join(iabPolicy[:11], "\n") + "\niab: [1]\n", "line 12: iab: must be a mapping"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePolicy([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("no error, want %q; parsed %+v", tc.want, p.IAB)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error\n%v\nwant it to contain\n%s", err, tc.want)
			}
		})
	}
}

// A file with several mistakes in the section gets all of them at once.
func TestParsePolicyIABReportsEveryError(t *testing.T) {
	yaml := iabEdit(13, "")
	yaml = strings.Replace(yaml, "consent: [1, 2, 3, 4]", "consent: [1, 12]", 1)
	yaml = strings.Replace(yaml, "state_sections: [usca]", "state_sections: [usxx]", 1)
	_, err := ParsePolicy([]byte(yaml))
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{"line 12: iab.cmp_id: required", "line 20: iab.tcf.purposes.ads.consent[1]: no TCF purpose 12", "line 28: iab.gpp.state_sections[0]: no GPP state section"}
	if len(lines) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(lines), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("error %d = %q, want prefix %q", i, lines[i], w)
		}
	}
}

func TestIABTestdataPolicyAndVendorList(t *testing.T) {
	p, err := LoadPolicy("testdata/iab/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	g, err := LoadGVL("testdata/iab/vendor-list.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckVendorList(p, g, "vendor-list.json"); err != nil {
		t.Fatal(err)
	}
	if g.SpecificationVersion != 3 || g.TCFPolicyVersion != 5 || g.VendorListVersion != 150 {
		t.Errorf("versions %+v", g)
	}
	if p.IABScope("DE") != "tcf" || p.IABScope("US-CA") != "gpp:usca" || p.IABScope("US") != "gpp:usnat" {
		t.Error("scopes of the test policy")
	}
}

func TestGVL(t *testing.T) {
	data, err := os.ReadFile("testdata/iab/vendor-list.json")
	if err != nil {
		t.Fatal(err)
	}
	g, err := ParseGVL(data)
	if err != nil {
		t.Fatal(err)
	}
	narrow, err := ParseGVL(g.JSON([]int{755, 2}))
	if err != nil {
		t.Fatal(err)
	}
	if !narrow.HasVendor(755) || !narrow.HasVendor(2) || narrow.HasVendor(1) || len(narrow.vendors) != 2 {
		t.Errorf("narrowed to %v", narrow.vendors)
	}
	all, _ := ParseGVL(g.JSON(nil))
	if len(all.vendors) != 6 {
		t.Errorf("all: %d vendors", len(all.vendors))
	}
	p, _ := ParsePolicy([]byte(iabEdit(18, "    vendors: [1, 3]")))
	if err := CheckVendorList(p, g, "gvl.json"); err == nil || !strings.Contains(err.Error(), "iab.tcf.vendors[1]: vendor 3 is not in the vendor list gvl.json (vendorListVersion 150)") {
		t.Errorf("missing vendor: %v", err)
	}
	if err := CheckVendorList(p, nil, ""); err == nil || !strings.Contains(err.Error(), "--gvl") {
		t.Errorf("no vendor list: %v", err)
	}

	s := string(data)
	for _, tc := range []struct{ name, json, want string }{
		{"not JSON", "{", "not a vendor list (GVL v3 JSON object)"},
		{"an array", "[]", "not a vendor list"},
		{"version 2", strings.Replace(s, `"gvlSpecificationVersion": 3`, `"gvlSpecificationVersion": 2`, 1), "gvlSpecificationVersion: must be 3"},
		{"no vendorListVersion", strings.Replace(s, `"vendorListVersion": 150,`, ``, 1), "vendorListVersion: required"},
		{"a purpose missing", strings.Replace(s, `"11": {
      "id": 11,`, `"12": {
      "id": 12,`, 1), "purposes: purpose 11 is missing"},
		{"a vendor id not its key", strings.Replace(s, `"id": 755,`, `"id": 756,`, 1), `vendors."755".id: must equal its key 755, got 756`},
		{"a vendor purpose unknown", strings.Replace(s, `"purposes": [
        1,
        3,
        4
      ],`, `"purposes": [1, 3, 14],`, 1), `vendors."755".purposes[2]: no purposes 14 in this vendor list`},
		{"a vendor field of the wrong type", strings.Replace(s, `"name": "Example Ad Server AG"`, `"name": 7`, 1), `vendors."755".name: must be a string, got a JSON number`},
		{"a vendor without legIntPurposes", strings.Replace(s, `"legIntPurposes": [],
      "flexiblePurposes": [],
      "specialPurposes": [
        1,
        2
      ],
      "features": [
        3`, `"flexiblePurposes": [],
      "specialPurposes": [
        1,
        2
      ],
      "features": [
        3`, 1), `vendors."1000".legIntPurposes: required`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseGVL([]byte(tc.json), "gvl.json")
			if err == nil || !strings.Contains(err.Error(), "gvl.json: "+tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// The commented iab example at the end of the shipped policy parses once
// uncommented.
func TestShippedPolicyIABExample(t *testing.T) {
	raw, err := os.ReadFile("../../deploy/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	start := strings.Index(text, "# iab:\n")
	if start < 0 {
		t.Fatal("no commented iab example in deploy/policy.yaml")
	}
	var example []string
	for _, line := range strings.Split(text[start:], "\n") {
		if line == "" {
			break
		}
		example = append(example, strings.TrimPrefix(strings.TrimPrefix(line, "#"), " "))
	}
	p, err := ParsePolicy([]byte(text + "\n" + strings.Join(example, "\n") + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p.IAB == nil || p.IAB.TCF == nil || p.IAB.GPP == nil || p.IABScope("DE") != IABScopeTCF || p.IABScope("US-CA") != "gpp:usca" {
		t.Errorf("example: %+v", p.IAB)
	}
}
