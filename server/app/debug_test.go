package app

import (
	"net/http"
	"testing"

	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/internal/redistest"
)

func TestProfilesAreServedOnlyOnTheDebugAddress(t *testing.T) {
	srv := start(t, redistest.Start(t).URL(), func(c *config.Config) { c.DebugAddr = "127.0.0.1:0" })
	resp, err := http.Get("http://" + srv.app.debug.listener.Addr().String() + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("pprof on --debug-addr = %d", resp.StatusCode)
	}
	if code, _, _ := srv.rest(t, "GET", "/debug/pprof/", ""); code != 404 {
		t.Errorf("pprof on the API port = %d, want 404", code)
	}
	if off := start(t, redistest.Start(t).URL()); off.app.debug != nil {
		t.Error("a debug server without --debug-addr")
	}
}
