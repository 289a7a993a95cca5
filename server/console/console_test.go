package console

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(t *testing.T, path string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Result()
}

func TestIndexIsServedWithAStrictPolicyAndNeverCached(t *testing.T) {
	resp := get(t, "/console/")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `<script src="console.js"`) {
		t.Fatalf("GET /console/: %d %.200s", resp.StatusCode, body)
	}
	for header, want := range map[string]string{
		"Content-Security-Policy": CSP,
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-store",
		"Content-Type":            "text/html; charset=utf-8",
	} {
		if got := resp.Header.Get(header); got != want {
			t.Errorf("%s = %q, want %q", header, got, want)
		}
	}
	// No inline script or style: the page would break under its own CSP.
	for _, bad := range []string{"<script>", "<style", " style=", "javascript:"} {
		if strings.Contains(string(body), bad) {
			t.Errorf("index.html contains %q", bad)
		}
	}
}

func TestAssetsAreServedWithThePolicyAndUnknownNamesAre404(t *testing.T) {
	for path, ctype := range map[string]string{"/console/console.js": "text/javascript; charset=utf-8", "/console/console.css": "text/css; charset=utf-8"} {
		resp := get(t, path)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ctype || resp.Header.Get("Content-Security-Policy") != CSP ||
			resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: %d %v", path, resp.StatusCode, resp.Header)
		}
	}
	for _, path := range []string{"/console/nope.js", "/console/../console.go", "/console/a/b", "/consolex"} {
		if resp := get(t, path); resp.StatusCode != 404 {
			t.Errorf("GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
	if resp := get(t, "/console"); resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/console/" {
		t.Errorf("GET /console: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}
