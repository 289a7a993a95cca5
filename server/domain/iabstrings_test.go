package domain

import (
	"slices"
	"strings"
	"testing"
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
		"":                           "empty segment",
		"CQukyOAQ ukyOA":             "base64url",
		"CQuky+AQ":                   "base64url",
		"CQukyOAQ":                   "core segment ends before its fields do",
		"BOEFEAyOEFEAyAHABDENAI4AAA": "version 1",
		strings.Repeat("A", 8193):    "at most 8192 characters",
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
