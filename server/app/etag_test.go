package app

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/internal/redistest"
)

// compactForm is the consent answer of a GET .../consent body in the SDK
// cookie's compact form, quoted: what its ETag must be.
func compactForm(t *testing.T, body []byte) string {
	t.Helper()
	var resp struct {
		Consent struct {
			Revision string `json:"revision"`
			Purposes []struct {
				Purpose string `json:"purpose"`
				Allowed bool   `json:"allowed"`
				Reason  string `json:"reason"`
			} `json:"purposes"`
		} `json:"consent"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("consent body %s: %v", body, err)
	}
	letters := map[string]string{"EXPLICIT": "e", "DEFAULT": "d", "GPC": "g", "EXPIRED": "x", "POLICY_CHANGED": "p",
		"NECESSARY": "n", "RESTRICTED": "r", "AWAITING_GUARDIAN": "a"}
	var parts []string
	for _, p := range resp.Consent.Purposes {
		letter := letters[strings.TrimPrefix(p.Reason, "REASON_")]
		if p.Allowed {
			letter = strings.ToUpper(letter)
		}
		parts = append(parts, p.Purpose+":"+letter)
	}
	return `"` + resp.Consent.Revision + "|" + strings.Join(parts, "/") + `"`
}

// TestConsentRevalidatesByETag: a GET of a subject's consent carries its
// answer in the SDK cookie's compact form as ETag; the same If-None-Match
// gets 304 without a body until the answer changes: a write, another
// region, a decision expiring.
func TestConsentRevalidatesByETag(t *testing.T) {
	redisSrv := redistest.Start(t)
	srv := start(t, redisSrv.URL())
	const subject = "/v1/subjects/etag-ann/consent"
	if code, body, _ := srv.rest(t, "PATCH", subject, `{"decisions": {"analytics": true, "ads": false}, "region": "DE"}`); code != 200 {
		t.Fatalf("PATCH: %d %v", code, body)
	}
	get := func(query string, header ...string) (int, []byte, http.Header) {
		t.Helper()
		return srv.restRaw(t, "GET", subject+query, "", header...)
	}

	code, body, h := get("")
	etag := h.Get("ETag")
	want := `"1|necessary:N/functional:d/analytics:E/ads:e/marketing.email:d/marketing.sms:d/marketing.phone:d/marketing.push:d/marketing.in_app:d"`
	if code != 200 || etag != want || etag != compactForm(t, body) {
		t.Fatalf("GET: %d, ETag %s, want %s (the body's answer: %s)", code, etag, want, compactForm(t, body))
	}
	if cc := h.Get("Cache-Control"); cc != "private, no-cache" {
		t.Errorf("Cache-Control %q, want private, no-cache", cc)
	}

	for _, inm := range []string{etag, `"0|old", ` + etag, "W/" + etag, "*"} {
		code, body, h := get("", "If-None-Match", inm, "X-Request-Id", "req-etag-1")
		if code != http.StatusNotModified || len(body) != 0 {
			t.Errorf("If-None-Match: %s: %d with %d bytes, want 304 without a body", inm, code, len(body))
		}
		if h.Get("ETag") != etag || h.Get("X-Request-Id") != "req-etag-1" || h.Get("Content-Type") != "" || h.Get("Cache-Control") != "private, no-cache" {
			t.Errorf("If-None-Match: %s: the 304's headers %v, want the ETag, Cache-Control and X-Request-Id only", inm, h)
		}
	}

	// A malformed If-None-Match is a miss, never an error.
	for _, inm := range []string{"garbage", `"unterminated`, `W/`, `"a" "b"`, `""`, strings.Repeat(",", 100)} {
		if code, body, h := get("", "If-None-Match", inm); code != 200 || h.Get("ETag") != etag || compactForm(t, body) != etag {
			t.Errorf("If-None-Match: %s: %d, ETag %s, want 200 with the answer", inm, code, h.Get("ETag"))
		}
	}

	// Another region, another answer: functional is allowed by default in
	// an opt-out region.
	code, body, h = get("?region=US-CA", "If-None-Match", etag)
	californian := h.Get("ETag")
	if code != 200 || californian == etag || californian != compactForm(t, body) || !strings.Contains(californian, "functional:D") {
		t.Errorf("?region=US-CA with the German ETag: %d, ETag %s, want 200 with its own", code, californian)
	}
	if code, _, _ := get("?region=US-CA", "If-None-Match", californian); code != http.StatusNotModified {
		t.Errorf("?region=US-CA with its own ETag: %d, want 304", code)
	}

	// A write.
	if code, body, _ := srv.rest(t, "PATCH", subject, `{"decisions": {"ads": true}}`); code != 200 {
		t.Fatalf("PATCH: %d %v", code, body)
	}
	code, body, h = get("", "If-None-Match", etag)
	written := h.Get("ETag")
	if code != 200 || !strings.HasPrefix(written, `"2|`) || !strings.Contains(written, "ads:E") || written != compactForm(t, body) {
		t.Errorf("after a write, with the old ETag: %d, ETag %s, want 200 with the new answer", code, written)
	}

	// Analytics expires: nothing is written, time passes. The stored
	// decision is moved into the past, as time would move it.
	client := redisSrv.Client(t)
	state := client.Keys(ctx(t), "*:s:"+keyID(t, "etag-ann")).Val()
	if len(state) != 1 {
		t.Fatalf("state keys: %v", state)
	}
	stored := strings.Split(client.HGet(ctx(t), state[0], "analytics").Val(), "|")
	past := time.Now().Add(-400 * 24 * time.Hour).Unix()
	stored[1], stored[2] = strconv.FormatInt(past, 10), strconv.FormatInt(past+390*24*3600, 10)
	client.HSet(ctx(t), state[0], "analytics", strings.Join(stored, "|"))
	code, body, h = get("", "If-None-Match", written)
	if expired := h.Get("ETag"); code != 200 || !strings.HasPrefix(expired, `"2|`) || !strings.Contains(expired, "analytics:x") || expired != compactForm(t, body) {
		t.Errorf("after analytics expired, with the ETag from before: %d, ETag %s, want 200 with analytics:x", code, expired)
	}

	// No ETag where the compact form cannot tell answers apart, and none on errors.
	visitor := createVisitor(t, srv)
	if code, body, _ := srv.rest(t, "POST", "/v1/subjects/etag-ben:link", `{"visitor_id": "`+visitor.GetSubjectId()+`"}`); code != 200 {
		t.Fatalf("link: %d %v", code, body)
	}
	if code, body, h := srv.restRaw(t, "GET", "/v1/subjects/"+visitor.GetSubjectId()+"/consent", "", "If-None-Match", "*"); code != 200 || h.Get("ETag") != "" || !strings.Contains(string(body), `"linked":true`) {
		t.Errorf("a linked visitor's consent: %d, ETag %q, want 200 without one: %s", code, h.Get("ETag"), body)
	}
	if code, _, h := get("?min_revision=99", "If-None-Match", "*"); code != http.StatusPreconditionFailed || h.Get("ETag") != "" {
		t.Errorf("min_revision not reached: %d, ETag %q, want 412 without one", code, h.Get("ETag"))
	}
	// Only GETs are conditional here.
	if code, body, _ := srv.restRaw(t, "PATCH", subject, `{"decisions": {"ads": false}}`, "If-None-Match", "*"); code != 200 || len(body) == 0 {
		t.Errorf("PATCH with If-None-Match: *: %d %s, want the write applied", code, body)
	}
}

// TestPolicyRevalidatesByETag: the policy's ETag is a hash of its content,
// so a reloaded file with new content is a miss even under the same version
// label.
func TestPolicyRevalidatesByETag(t *testing.T) {
	shipped, err := os.ReadFile("../../deploy/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, shipped, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := start(t, redistest.Start(t).URL(), func(c *config.Config) { c.PolicyPath = path })

	code, body, h := srv.restRaw(t, "GET", "/v1/policy", "")
	etag := h.Get("ETag")
	if code != 200 || len(etag) != 34 || !strings.HasPrefix(etag, `"`) || !strings.Contains(string(body), `"purposes"`) {
		t.Fatalf("GET /v1/policy: %d, ETag %s", code, etag)
	}
	if cc := h.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("Cache-Control %q, want no-cache", cc)
	}
	code, body, h = srv.restRaw(t, "GET", "/v1/policy", "", "If-None-Match", etag)
	if code != http.StatusNotModified || len(body) != 0 || h.Get("ETag") != etag || h.Get("X-Request-Id") == "" {
		t.Fatalf("GET /v1/policy with its ETag: %d, %d bytes, headers %v; want 304 without a body", code, len(body), h)
	}

	changed := strings.Replace(string(shipped), "en: Personalised advertising", "en: Advertising and offers", 1)
	if changed == string(shipped) {
		t.Fatal("the shipped policy has no 'en: Personalised advertising' title to change")
	}
	if err := os.WriteFile(path, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := srv.app.ReloadPolicy(); err != nil {
		t.Fatal(err)
	}
	code, body, h = srv.restRaw(t, "GET", "/v1/policy", "", "If-None-Match", etag)
	if code != 200 || h.Get("ETag") == etag || !strings.Contains(string(body), "Advertising and offers") {
		t.Errorf("after a reload with a changed title: %d, ETag %s (was %s), want 200 with a new one", code, h.Get("ETag"), etag)
	}
}

// TestCORSLetsTheSiteRevalidate: a page of an allowed origin may send
// If-None-Match (a preflighted header) and read the ETag.
func TestCORSLetsTheSiteRevalidate(t *testing.T) {
	srv := start(t, redistest.Start(t).URL(), func(c *config.Config) { c.CORSOrigins = []string{"https://shop.example"} })
	req, _ := http.NewRequest(http.MethodOptions, srv.baseURL+"/v1/subjects/etag-cy/consent", nil)
	req.Header.Set("Origin", "https://shop.example")
	req.Header.Set("Access-Control-Request-Method", "GET")
	req.Header.Set("Access-Control-Request-Headers", "authorization, if-none-match")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if h := resp.Header; resp.StatusCode >= 300 || h.Get("Access-Control-Allow-Origin") != "https://shop.example" ||
		!strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "if-none-match") {
		t.Fatalf("preflight for If-None-Match: %d %v", resp.StatusCode, h)
	}
	for _, path := range []string{"/v1/subjects/etag-cy/consent", "/v1/policy"} {
		code, _, h := srv.restRaw(t, "GET", path, "", "Origin", "https://shop.example")
		if code != 200 || h.Get("ETag") == "" || !strings.Contains(strings.ToLower(h.Get("Access-Control-Expose-Headers")), "etag") {
			t.Fatalf("GET %s from the site: %d %v, want the ETag exposed", path, code, h)
		}
		code, _, h = srv.restRaw(t, "GET", path, "", "Origin", "https://shop.example", "If-None-Match", h.Get("ETag"))
		if code != http.StatusNotModified || h.Get("Access-Control-Allow-Origin") != "https://shop.example" || !strings.Contains(strings.ToLower(h.Get("Access-Control-Expose-Headers")), "etag") {
			t.Errorf("revalidating %s from the site: %d %v, want a 304 the page can read", path, code, h)
		}
	}
}
