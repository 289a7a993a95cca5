package domain

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// IAB strings made once with the IAB's own libraries (node, in a scratch
// folder: npm i @iabtechlabtcf/core@1.5.21 @iabgpp/cmpapi@3.2.0), from the
// vendor list in testdata/iab: TCModel with cmpId 300, cmpVersion 1,
// publisherCountryCode DE, isServiceSpecific, created 2026-12-01T12:00Z, then
// TCString.encode; GPP strings from CmpApi(300, 1) with setFieldValue on the
// sections named, then getGppString.
const (
	// purposeConsents [1, 2], vendorConsents [1, 755]
	testTCPurposes12 = "CQukyOAQukyOAEsABAENCWFgAMAAAAAAAAYgF5wAgAAgLzAAAAAA.IAAA.YAAAAAAAAAAA"
	// no consents, purposeLegitimateInterests [7, 8, 9, 10, 11]
	testTCNone = "CQukyOAQukyOAEsABAENCWFgAAAAAAPgAAYgAAAAAAAA.IAAA.YAAAAAAAAAAA"
	// purposeConsents 1-11, specialFeatureOptins [1, 2], LI [2, 7-11], vendors 1, 2, 10, 25, 755
	testTCAll = "CQukyOAQukyOAEsABAENCWFsAP_gAEPgAAYgF5wBIAAgAEAAoADIC8wAAAAA.IAAA.YAAAAAAAAAAA"
	// purposeConsents [1], specialFeatureOptins [1]
	testTCSF1 = "CQukyOAQukyOAEsABAENCWFoAIAAAAAAAAYgAAAAAAAA.IAAA.YAAAAAAAAAAA"
	// cmpId 301, purposeConsents [1]
	testTCCmp301 = "CQukyOAQukyOAEtABAENCWFgAIAAAAAAAAYgAAAAAAAA.IAAA.YAAAAAAAAAAA"
	// usnat: all notices 1, SaleOptOut/SharingOptOut/TargetedAdvertisingOptOut 1, MspaCoveredTransaction 2, Gpc
	testGPPUsnat = "DBABLA~CVQVAAAAAACA.YA"
	// usca: notices 1, SaleOptOut/SharingOptOut 1, MspaCoveredTransaction 2
	testGPPUsca = "DBABBg~BUUAAACA.QA"
	// usnat and usca, not opted out
	testGPPUsnatUsca = "DBABrw~CAAgAAAAAACA.QA~BAgAAACA.QA"
	// tcfeuv2 holding testTCPurposes12
	testGPPTcf = "DBABMA~CQukyOAQukyOAEsABAENCWFgAMAAAAAAAAYgF5wAgAAgLzAAAAAA.IAAA.YAAAAAAAAAAA"
)

func TestDecodeTCCore(t *testing.T) {
	for _, tc := range []struct {
		s                   string
		cmp                 int
		purposes, li, feats []int
	}{
		{testTCPurposes12, 300, []int{1, 2}, nil, nil},
		{testTCNone, 300, nil, []int{7, 8, 9, 10, 11}, nil},
		{testTCAll, 300, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, []int{2, 7, 8, 9, 10, 11}, []int{1, 2}},
		{testTCSF1, 300, []int{1}, nil, []int{1}},
		{testTCCmp301, 301, []int{1}, nil, nil},
	} {
		c, err := DecodeTCCore(tc.s)
		if err != nil {
			t.Fatalf("%s: %v", tc.s, err)
		}
		if c.Version != 2 || c.CMPID != tc.cmp || c.CMPVersion != 1 || c.VendorListVersion != 150 || c.PolicyVersion != 5 || c.PublisherCountry != "DE" ||
			!slices.Equal(c.PurposeConsents, tc.purposes) || !slices.Equal(c.PurposeLI, tc.li) || !slices.Equal(c.SpecialFeatures, tc.feats) {
			t.Errorf("%s: %+v", tc.s, c)
		}
	}
	for s, want := range map[string]string{
		"":               "empty segment",
		"CQukyOAQ ukyOA": "base64url",
		"CQuky+AQ":       "base64url",
		"CQukyOAQ":       "core segment ends before its fields do",
		// The fixed fields whole, the vendor sections missing (the IAB's
		// decoder refuses it: "invalid bit length").
		"CQAAAAAQAAAAAEsAAAENAAAAAAAAAAAAAAAA":                       "vendor consents section ends before its fields do",
		"BOEFEAyOEFEAyAHABDENAI4AAA":                                 "version 1",
		strings.Repeat("A", 8193):                                    "at most 8192 characters",
		"CQukyOAQukyOAEsABAENCWFgAMAAAAAAAAYgF5wAgAAgLzAAAAAA..YAAA": "empty segment",
	} {
		if _, err := DecodeTCCore(s); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.40q: %v, want %q", s, err, want)
		}
	}
}

func TestDecodeGPPSections(t *testing.T) {
	for s, want := range map[string][]int{
		testGPPUsnat: {7}, testGPPUsca: {8}, testGPPUsnatUsca: {7, 8}, testGPPTcf: {2},
	} {
		ids, err := DecodeGPPSections(s)
		if err != nil || !slices.Equal(ids, want) {
			t.Errorf("%s: %v %v, want %v", s, ids, err, want)
		}
	}
	for s, want := range map[string]string{
		"DBABLA":                   "the header lists 1 sections, the string holds 0",
		"DBABLA~CVQVAAAAAACA.YA~A": "the header lists 1 sections, the string holds 2",
		"CVQVAAAAAACA.YA":          "header type 2",
		"DCABLA~CVQVAAAAAACA.YA":   "header version 2",
		"D":                        "header ends before",
		"DBABLA~CVQV*":             "base64url",
	} {
		if _, err := DecodeGPPSections(s); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", s, err, want)
		}
	}
}

func TestCheckAdSignals(t *testing.T) {
	p, err := ParsePolicy([]byte(iabEdit(1, `version: "1"`)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	granted := func(purposes ...string) Record {
		rec := Record{Revision: 4, Decisions: map[string]Decision{}}
		for _, id := range []string{"ads", "analytics"} {
			pu, _ := p.Purpose(id)
			rec.Decisions[id] = NewDecision(pu, slices.Contains(purposes, id), SourceBanner, "DE", now)
		}
		return rec
	}
	both, adsOnly, none := granted("ads", "analytics"), granted("ads"), granted()
	for _, tc := range []struct {
		name          string
		rec           Record
		code, tc, gpp string
		field, reason string // "" field: no error
	}{
		{"TCF, granted", adsOnly, "DE", testTCPurposes12, "", "", ""},
		{"TCF with a GPP tcfeuv2 string", adsOnly, "GB", testTCPurposes12, testGPPTcf, "", ""},
		{"TCF, nothing granted, LI only", none, "DE", testTCNone, "", "", ""},
		{"TCF, purpose 2 not granted", none, "DE", testTCPurposes12, "", "tc_string", `consents to TCF purpose 1, but "ads" is not granted at revision 4`},
		{"TCF, purpose 1 and special feature 1, ads not granted", granted("analytics"), "DE", testTCSF1, "", "tc_string", `consents to TCF purpose 1, but "ads" is not granted`},
		{"TCF, a purpose nobody maps", both, "DE", testTCAll, "", "tc_string", "consents to TCF purpose 5, which no purpose of the policy maps to"},
		// testTCPurposes12 with its CMP version bits zeroed, and with publisher
		// country FR (bits rewritten; the IAB's decoder reads 1 FR for the latter).
		{"TCF, CMP version 0", both, "DE", "CQukyOAQukyOAEsAAAENCWFgAMAAAAAAAAYgF5wAgAAgLzAAAAAA.IAAA.YAAAAAAAAAAA", "", "tc_string", "has CMP version 0"},
		{"TCF, another publisher country", both, "DE", "CQukyOAQukyOAEsABAENCWFgAMAAAAAAAAqIF5wAgAAgLzAAAAAA.IAAA.YAAAAAAAAAAA", "", "tc_string", `has publisher country "FR", the policy's is DE`},
		{"TCF, another CMP", both, "DE", testTCCmp301, "", "tc_string", "has CMP id 301, this service's is 300 (iab.cmp_id)"},
		{"TCF, no TC string", both, "DE", "", testGPPTcf, "tc_string", "required"},
		{"TCF, a US section", adsOnly, "DE", testTCPurposes12, testGPPUsnat, "gpp_string", "has sections [7], \"DE\" needs exactly [2] (tcfeuv2)"},
		{"GPP national", none, "US", "", testGPPUsnat, "", ""},
		{"GPP state", none, "US-CA", "", testGPPUsca, "", ""},
		{"GPP, a state not listed gets usnat", none, "US-VA", "", testGPPUsnat, "", ""},
		{"GPP, usnat for a listed state", none, "US-CA", "", testGPPUsnat, "gpp_string", "needs exactly [8] (usca)"},
		{"GPP, two sections", none, "US", "", testGPPUsnatUsca, "gpp_string", "has sections [7 8]"},
		{"GPP, a TC string", none, "US", testTCNone, testGPPUsnat, "tc_string", "must be empty"},
		{"GPP, none", none, "US", "", "", "gpp_string", "required"},
		{"GPP, not GPP", none, "US", "", testTCNone, "gpp_string", "not a GPP string"},
		{"a region without signals", none, "JP", "", testGPPUsnat, "region", `"JP" is in region "world", which gets no IAB signals`},
	} {
		err := p.CheckAdSignals(tc.rec, tc.code, tc.tc, tc.gpp, now)
		if tc.field == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		fe, ok := err.(*FieldError)
		if !ok || fe.Field != tc.field || !strings.Contains(fe.Reason, tc.reason) {
			t.Errorf("%s: %v, want %s: ...%s", tc.name, err, tc.field, tc.reason)
		}
	}
}

func TestCurrentAdSignals(t *testing.T) {
	p, err := ParsePolicy([]byte(iabEdit(1, `version: "1"`)))
	if err != nil {
		t.Fatal(err)
	}
	sig := &AdSignals{Region: "DE", Revision: 4, EventRevision: 5, TCString: testTCPurposes12}
	us := &AdSignals{Region: "US-CA", Revision: 4, EventRevision: 5, GPPString: testGPPUsca}
	for _, tc := range []struct {
		sig  *AdSignals
		rev  int64
		code string
		want bool
	}{
		{sig, 5, "DE", true}, {sig, 5, "FR", true}, {sig, 5, "GB", true}, {sig, 6, "DE", false}, {sig, 5, "US", false}, {sig, 5, "JP", false},
		{us, 5, "US-CA", true}, {us, 5, "US", false}, {us, 5, "US-VA", false}, {nil, 5, "DE", false},
	} {
		got := p.CurrentAdSignals(Record{Revision: tc.rev, Signals: tc.sig}, tc.code)
		if (got != nil) != tc.want {
			t.Errorf("%+v at revision %d for %s: %v, want %v", tc.sig, tc.rev, tc.code, got, tc.want)
		}
	}
}
