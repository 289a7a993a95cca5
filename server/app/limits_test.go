package app

import (
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/internal/redistest"
	"github.com/consentd/consentd/server/ratelimit"
)

func TestCORSAllowsOnlyTheConfiguredSiteOrigins(t *testing.T) {
	srv := start(t, redistest.Start(t).URL(), func(c *config.Config) { c.CORSOrigins = []string{"https://shop.example"} })
	preflight := func(origin string) http.Header {
		req, _ := http.NewRequest(http.MethodOptions, srv.baseURL+"/v1/subjects/v1/consent", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "PATCH")
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Fatalf("preflight from %s: %d", origin, resp.StatusCode)
		}
		return resp.Header
	}
	h := preflight("https://shop.example")
	if h.Get("Access-Control-Allow-Origin") != "https://shop.example" || !strings.Contains(h.Get("Access-Control-Allow-Methods"), "PATCH") ||
		!strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "authorization") {
		t.Errorf("preflight from the site: %v", h)
	}
	if h.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("credentials (cookies) allowed: %v", h)
	}
	if h := preflight("https://evil.example"); h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin got CORS headers: %v", h)
	}
	_, _, h = srv.rest(t, "GET", "/v1/policy", "", "Origin", "https://shop.example")
	if h.Get("Access-Control-Allow-Origin") != "https://shop.example" || !strings.Contains(h.Get("Access-Control-Expose-Headers"), "X-Request-Id") {
		t.Errorf("a request from the site: %v", h)
	}
	if _, _, h = srv.rest(t, "GET", "/v1/policy", "", "Origin", "https://evil.example"); h.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("a request from another origin got CORS headers: %v", h)
	}
}

func TestAnOversizedBodyIsRefusedAndChangesNothing(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	body := `{"decisions": {"ads": true}, "idempotency_key": "` + strings.Repeat("x", 2<<20) + `"}`
	code, resp, _ := srv.rest(t, "PATCH", "/v1/subjects/big/consent", body)
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(jsonPath(resp, "message"), "body") {
		t.Fatalf("2 MiB body: %d %v, want 413 naming the body", code, resp)
	}
	if code, resp, _ := srv.rest(t, "GET", "/v1/subjects/big/consent", ""); code != 200 || jsonPath(resp, "consent.revision") != "0" {
		t.Fatalf("after the refused write: %d %v", code, resp)
	}
}

func TestRateLimitsPerClientIPAndPerAPIKeyAreSharedThroughRedis(t *testing.T) {
	redis := redistest.Start(t)
	limits := func(c *config.Config) {
		c.RateLimitIP, _ = ratelimit.ParseLimit("3/m")
		c.RateLimitKey, _ = ratelimit.ParseLimit("4/m")
	}
	// Two instances on one Redis: the counters are shared.
	one, two := start(t, redis.URL(), limits), start(t, redis.URL(), limits)

	// Public calls, per client IP (all of this test's calls come from 127.0.0.1).
	for i, srv := range []*consentd{one, two, one} {
		if code, body, _ := srv.rest(t, "POST", "/v1/visitors", "{}", "Authorization", ""); code != 200 {
			t.Fatalf("visitor %d: %d %v", i, code, body)
		}
	}
	code, body, h := two.rest(t, "POST", "/v1/visitors", "{}", "Authorization", "")
	if code != http.StatusTooManyRequests || h.Get("Retry-After") == "" || !strings.Contains(jsonPath(body, "message"), "rate limit") {
		t.Fatalf("4th public call in a minute: %d %v %v, want 429 with Retry-After", code, body, h)
	}
	_, err := one.grpc.CreateVisitor(as(ctx(t), ""), &consentv1.CreateVisitorRequest{})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("over gRPC: %v, want ResourceExhausted", err)
	}

	// API keys have their own budget each, not the IP's.
	for i := range 4 {
		if _, err := one.grpc.CheckConsent(as(ctx(t), apiKeys["check"]), &consentv1.CheckConsentRequest{SubjectId: "s", Purpose: "ads"}); err != nil {
			t.Fatalf("check %d: %v", i, err)
		}
	}
	_, err = two.grpc.CheckConsent(as(ctx(t), apiKeys["check"]), &consentv1.CheckConsentRequest{SubjectId: "s", Purpose: "ads"})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("5th call of one key: %v, want ResourceExhausted", err)
	}
	if _, err := two.grpc.CheckConsent(as(ctx(t), apiKeys["admin"]), &consentv1.CheckConsentRequest{SubjectId: "s", Purpose: "ads"}); err != nil {
		t.Fatalf("another key is limited by the first one's calls: %v", err)
	}

	// Health is never limited.
	if code, _, _ := one.rest(t, "GET", "/healthz", ""); code != 200 {
		t.Fatalf("/healthz = %d", code)
	}
	// Redis holds no raw IP.
	keys, _ := redis.Client(t).Keys(ctx(t), "rate:consentd:*").Result()
	for _, k := range keys {
		if strings.Contains(k, "127.0.0.1") {
			t.Errorf("rate limit key holds a raw IP: %s", k)
		}
	}
	if len(keys) == 0 {
		t.Error("no rate limit counters in Redis")
	}
}
