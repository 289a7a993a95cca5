package app

import (
	"net/http"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/internal/redistest"
)

// A browser's first visit is one round trip: the policy needs no
// credentials, and CreateVisitor answers with the new visitor's consent.

func TestThePolicyIsPublic(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	got, err := srv.grpc.GetPolicy(as(ctx(t), ""), &consentv1.GetPolicyRequest{})
	if err != nil || len(got.GetPolicy().GetPurposes()) == 0 {
		t.Fatalf("gRPC GetPolicy without credentials: %v, %v", got, err)
	}
	code, body, h := srv.restRaw(t, "GET", "/v1/policy", "", "Authorization", "")
	etag := h.Get("ETag")
	if code != http.StatusOK || etag == "" || !strings.Contains(string(body), `"purposes"`) {
		t.Fatalf("GET /v1/policy without Authorization: %d %.200s, ETag %q; want 200 with an ETag", code, body, etag)
	}
	code, body, _ = srv.restRaw(t, "GET", "/v1/policy", "", "Authorization", "", "If-None-Match", etag)
	if code != http.StatusNotModified || len(body) != 0 {
		t.Errorf("GET /v1/policy without Authorization, with its ETag: %d %.200s; want 304", code, body)
	}
}

// wantDefaults checks a new visitor's answer: revision 0, no decisions, and
// every purpose at its region default (opt-in: denied; opt-out: allowed
// unless the purpose is always opt-in), necessary allowed.
func wantDefaults(t *testing.T, policy *consentv1.Policy, c *consentv1.Consent, id, region, regionID string, optIn bool) {
	t.Helper()
	if c.GetSubjectId() != id || c.GetRevision() != 0 || c.GetRegion() != region || c.GetRegionId() != regionID ||
		c.GetGpcTime() != nil || c.GetRestrictTime() != nil || c.GetMinor() || c.GetLinked() {
		t.Errorf("consent = %v, want %s at revision 0 in %s (%s)", c, id, region, regionID)
	}
	if len(c.GetPurposes()) != len(policy.GetPurposes()) {
		t.Fatalf("%d purposes, want the policy's %d", len(c.GetPurposes()), len(policy.GetPurposes()))
	}
	for i, p := range policy.GetPurposes() {
		got := c.GetPurposes()[i]
		want := &consentv1.PurposeConsent{Purpose: p.GetId(), Allowed: !optIn && !p.GetAlwaysOptIn(), Reason: consentv1.Reason_REASON_DEFAULT}
		if p.GetNecessary() {
			want = &consentv1.PurposeConsent{Purpose: p.GetId(), Allowed: true, Reason: consentv1.Reason_REASON_NECESSARY}
		}
		if !proto.Equal(got, want) {
			t.Errorf("%s in %s: %v, want %v", p.GetId(), region, got, want)
		}
	}
}

func TestCreateVisitorAnswersWithTheNewVisitorsConsent(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	policy, err := srv.grpc.GetPolicy(ctx(t), &consentv1.GetPolicyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		region, regionID string
		optIn            bool
	}{
		{"DE", "eea", true},
		{"US-CA", "us_opt_out", false},
		{"", policy.GetPolicy().GetDefaultRegion(), true}, // rest_of_world: opt-in in the shipped policy
	} {
		created, err := srv.grpc.CreateVisitor(as(ctx(t), ""), &consentv1.CreateVisitorRequest{Region: tc.region})
		if err != nil {
			t.Fatalf("CreateVisitor in %q: %v", tc.region, err)
		}
		id := created.GetSubjectId()
		wantDefaults(t, policy.GetPolicy(), created.GetConsent(), id, tc.region, tc.regionID, tc.optIn)
		// Exactly what GetConsent answers, asked with the new token.
		read, err := srv.grpc.GetConsent(as(ctx(t), created.GetToken().GetToken()), &consentv1.GetConsentRequest{SubjectId: id, Region: tc.region})
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(read.GetConsent(), created.GetConsent()) {
			t.Errorf("in %q: CreateVisitor answered %v, GetConsent %v", tc.region, created.GetConsent(), read.GetConsent())
		}
	}

	for _, bad := range []string{"de", "Germany", "US_CA", "DE-"} {
		_, err := srv.grpc.CreateVisitor(as(ctx(t), ""), &consentv1.CreateVisitorRequest{Region: bad})
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), "region:") {
			t.Errorf("region %q: %v, want InvalidArgument naming region", bad, err)
		}
	}
}

func TestCreateVisitorOverRESTAnswersWithTheConsent(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	code, body, _ := srv.rest(t, "POST", "/v1/visitors", `{"region":"US-CA"}`, "Authorization", "")
	id := jsonPath(body, "subject_id")
	if code != http.StatusOK || !strings.HasPrefix(id, "v_") || jsonPath(body, "token.token") == "<missing>" ||
		jsonPath(body, "consent.subject_id") != id || jsonPath(body, "consent.revision") != "0" ||
		jsonPath(body, "consent.region") != "US-CA" || jsonPath(body, "consent.region_id") != "us_opt_out" ||
		jsonPath(body, "consent.purposes.1.reason") != "REASON_DEFAULT" || jsonPath(body, "consent.purposes.1.allowed") != "true" {
		t.Fatalf("POST /v1/visitors in US-CA: %d %v", code, body)
	}
	code, read, _ := srv.rest(t, "GET", "/v1/subjects/"+id+"/consent?region=US-CA", "", "Authorization", "Bearer "+jsonPath(body, "token.token"))
	if code != http.StatusOK || !reflect.DeepEqual(read["consent"], body["consent"]) {
		t.Errorf("GET the new visitor's consent: %d %v, want the %v CreateVisitor answered", code, read, body["consent"])
	}

	code, body, _ = srv.rest(t, "POST", "/v1/visitors", `{"region":"germany"}`, "Authorization", "")
	if code != http.StatusBadRequest || !strings.HasPrefix(jsonPath(body, "message"), "region:") {
		t.Errorf("POST /v1/visitors with a bad region: %d %v, want 400 naming region", code, body)
	}
}

// TestTheFirstVisitNeedsNoPreflight: a page's first two calls are CORS
// simple requests (no OPTIONS round trip): POST /v1/visitors with the body
// as text/plain (what fetch sends for a string body without a Content-Type)
// and a plain GET /v1/policy.
func TestTheFirstVisitNeedsNoPreflight(t *testing.T) {
	srv := start(t, redistest.Start(t).URL(), func(c *config.Config) { c.CORSOrigins = []string{"https://shop.example"} })
	code, body, h := srv.rest(t, "POST", "/v1/visitors", `{"region":"DE"}`,
		"Authorization", "", "Origin", "https://shop.example", "Content-Type", "text/plain;charset=UTF-8")
	if code != http.StatusOK || !strings.HasPrefix(jsonPath(body, "subject_id"), "v_") || jsonPath(body, "consent.region_id") != "eea" ||
		h.Get("Access-Control-Allow-Origin") != "https://shop.example" {
		t.Fatalf("POST /v1/visitors as text/plain from the site: %d %v %v", code, body, h)
	}
	code, raw, h := srv.restRaw(t, "GET", "/v1/policy", "", "Authorization", "", "Origin", "https://shop.example")
	if code != http.StatusOK || !strings.Contains(string(raw), `"purposes"`) || h.Get("Access-Control-Allow-Origin") != "https://shop.example" ||
		!strings.Contains(strings.ToLower(h.Get("Access-Control-Expose-Headers")), "etag") {
		t.Fatalf("GET /v1/policy from the site with no credentials: %d %.200s %v", code, raw, h)
	}
}
