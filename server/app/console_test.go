package app

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/console"
	"github.com/consentd/consentd/server/internal/redistest"
)

// The console is served from the binary with its CSP when on (the
// default: config_test.go), and not at all with --console=false. Its
// behaviour is tested in a browser by server/console/test.
func TestConsoleIsServedOnlyWhenOn(t *testing.T) {
	redisURL := redistest.Start(t).URL()
	on := start(t, redisURL, func(c *config.Config) { c.Console = true })
	resp, err := http.Get(on.baseURL + "/console/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Security-Policy") != console.CSP || !strings.Contains(string(body), "console.js") {
		t.Errorf("console on: GET /console/ = %d %v %.100s", resp.StatusCode, resp.Header, body)
	}
	off := start(t, redisURL, func(c *config.Config) { c.Console = false })
	for _, path := range []string{"/console/", "/console/console.js"} {
		resp, err := http.Get(off.baseURL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("console off: GET %s = %d, want 404", path, resp.StatusCode)
		}
	}
}
