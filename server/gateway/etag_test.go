package gateway

import (
	"testing"

	"google.golang.org/protobuf/proto"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
)

func purposes(pairs ...any) []*consentv1.PurposeConsent {
	var out []*consentv1.PurposeConsent
	for i := 0; i < len(pairs); i += 3 {
		out = append(out, &consentv1.PurposeConsent{Purpose: pairs[i].(string), Allowed: pairs[i+1].(bool), Reason: pairs[i+2].(consentv1.Reason)})
	}
	return out
}

func TestConsentETagIsTheSDKCookiesCompactForm(t *testing.T) {
	const (
		allowed, denied = true, false
	)
	r := func(name string) consentv1.Reason { return consentv1.Reason(consentv1.Reason_value["REASON_"+name]) }
	cases := []struct {
		name    string
		consent *consentv1.Consent
		want    string
	}{
		{"the SDK's example", &consentv1.Consent{Revision: 3, Purposes: purposes(
			"necessary", allowed, r("NECESSARY"), "functional", denied, r("EXPLICIT"), "analytics", allowed, r("EXPLICIT"), "ads", denied, r("GPC"))},
			`"3|necessary:N/functional:e/analytics:E/ads:g"`},
		{"every reason has its letter, upper case when allowed", &consentv1.Consent{Revision: 12, Purposes: purposes(
			"a", allowed, r("EXPLICIT"), "b", denied, r("DEFAULT"), "c", denied, r("GPC"), "d", allowed, r("EXPIRED"),
			"e", denied, r("POLICY_CHANGED"), "f", allowed, r("NECESSARY"), "g", denied, r("RESTRICTED"), "h", denied, r("AWAITING_GUARDIAN"))},
			`"12|a:E/b:d/c:g/d:X/e:p/f:N/g:r/h:a"`},
		{"purposes keep the answer's order, dotted ids included", &consentv1.Consent{Purposes: purposes(
			"marketing.email", denied, r("DEFAULT"), "ads", allowed, r("DEFAULT"))},
			`"0|marketing.email:d/ads:D"`},
		{"an answer without purposes", &consentv1.Consent{Revision: 1}, `"1|"`},
		{"a reason without a letter gets no ETag", &consentv1.Consent{Revision: 1, Purposes: purposes(
			"ads", denied, r("STORE_UNAVAILABLE"))}, ""},
		{"an unset reason gets no ETag", &consentv1.Consent{Revision: 1, Purposes: purposes("ads", denied, consentv1.Reason_REASON_UNSPECIFIED)}, ""},
		{"a purpose id the form cannot hold gets no ETag", &consentv1.Consent{Revision: 1, Purposes: purposes(`a"b`, denied, r("DEFAULT"))}, ""},
		{"a linked visitor's answer gets no ETag: its user's revision can equal its own", &consentv1.Consent{Revision: 1, Linked: true, Purposes: purposes(
			"ads", denied, r("DEFAULT"))}, ""},
		{"no answer gets no ETag", nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := consentETag(tc.consent); got != tc.want {
				t.Errorf("consentETag = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestIfNoneMatchComparesOpaqueTagsAndMissesOnAnythingMalformed(t *testing.T) {
	const etag = `"3|necessary:N/ads:g"`
	cases := []struct {
		name  string
		value string
		want  bool
	}{
		{"the same tag", `"3|necessary:N/ads:g"`, true},
		{"another tag", `"4|necessary:N/ads:g"`, false},
		{"a list holding it", `"1|x:e", "3|necessary:N/ads:g" ,"9|y:E"`, true},
		{"a list without it", `"1|x:e", "2|y:E"`, false},
		{"the weak form of it (weak comparison, RFC 9110 13.1.2)", `W/"3|necessary:N/ads:g"`, true},
		{"any representation", `*`, true},
		{"any representation, with spaces", ` * `, true},
		{"an empty tag", `""`, false},
		{"unquoted", `3|necessary:N/ads:g`, false},
		{"unterminated", `"3|necessary:N/ads:g`, false},
		{"two tags without a comma", `"1|x:e" "3|necessary:N/ads:g"`, false},
		{"a star in a list", `*, "3|necessary:N/ads:g"`, false},
		{"a malformed element after a match", `"3|necessary:N/ads:g", junk`, false},
		{"a space inside the tag", `"3|necessary:N/ ads:g"`, false},
		{"a lower-case weak prefix", `w/"3|necessary:N/ads:g"`, false},
		{"a weak prefix alone", `W/`, false},
		{"a weak prefix alone after a match", `"3|necessary:N/ads:g", W/`, false},
		{"a quote alone", `"`, false},
		{"only commas", ` , ,`, false},
		{"empty", ``, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := noneMatchHits(tc.value, etag); got != tc.want {
				t.Errorf("noneMatchHits(%q) = %v, want %v", tc.value, got, tc.want)
			}
		})
	}
}

func TestPolicyETagFollowsThePolicysContent(t *testing.T) {
	policy := &consentv1.Policy{Version: "2026-11-01", Purposes: []*consentv1.Purpose{{
		Id: "ads", Version: 1,
		Titles:       map[string]string{"en": "Ads", "de": "Werbung", "fr": "Publicité", "es": "Anuncios"},
		Descriptions: map[string]string{"en": "We show ads.", "de": "Wir zeigen Werbung."},
	}}}
	etag := policyETag(policy)
	if len(etag) != 34 || etag[0] != '"' || etag[33] != '"' {
		t.Fatalf("policyETag = %s, want 32 hex digits quoted", etag)
	}
	for range 20 { // maps are encoded in a deterministic order
		if again := policyETag(proto.Clone(policy).(*consentv1.Policy)); again != etag {
			t.Fatalf("the same policy's ETag changed: %s, then %s", etag, again)
		}
	}
	changed := proto.Clone(policy).(*consentv1.Policy)
	changed.Purposes[0].Titles["de"] = "Anzeigen" // the same version label, other content
	if policyETag(changed) == etag {
		t.Errorf("a changed title keeps the ETag %s", etag)
	}
}
