package app

import (
	"net/http"
	"strings"
	"testing"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
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
