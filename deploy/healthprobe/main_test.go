package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestProbeIsHealthyOnlyOn200(t *testing.T) {
	var status atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(int(status.Load())) }))
	t.Cleanup(srv.Close)
	hung := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(hung.Close)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + closed.Addr().String() + "/healthz"
	closed.Close()

	for _, tc := range []struct {
		name    string
		status  int
		url     string
		healthy bool
	}{
		{"ready", http.StatusOK, srv.URL + "/readyz", true},
		{"not ready (Redis down, or draining)", http.StatusServiceUnavailable, srv.URL + "/readyz", false},
		{"not found", http.StatusNotFound, srv.URL + "/nope", false},
		{"nothing listening", http.StatusOK, closedURL, false},
		{"hung", http.StatusOK, hung.URL + "/healthz", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status.Store(int32(tc.status))
			err := probe(tc.url, 200*time.Millisecond)
			if (err == nil) != tc.healthy {
				t.Fatalf("probe(%s) = %v, want healthy=%v", tc.url, err, tc.healthy)
			}
		})
	}
}

func TestWithoutAURLItAsksWhereConsentdServesHealth(t *testing.T) {
	for _, tc := range []struct {
		admin, http, want string
	}{
		{"", "", "http://127.0.0.1:8080/healthz"},
		{"", "0.0.0.0:8080", "http://127.0.0.1:8080/healthz"},
		{"", ":9000", "http://127.0.0.1:9000/healthz"},
		{"0.0.0.0:8082", "0.0.0.0:8080", "http://127.0.0.1:8082/healthz"},
		{"[::]:8082", "", "http://127.0.0.1:8082/healthz"},
		{"10.1.2.3:8082", "", "http://10.1.2.3:8082/healthz"},
		{"[fd00::5]:8082", "", "http://[fd00::5]:8082/healthz"},
	} {
		env := map[string]string{"CONSENTD_ADMIN_ADDR": tc.admin, "CONSENTD_HTTP_ADDR": tc.http}
		got, err := healthURL(func(k string) string { return env[k] })
		if err != nil || got != tc.want {
			t.Errorf("admin %q, http %q: %q, %v; want %q", tc.admin, tc.http, got, err, tc.want)
		}
	}
	for _, bad := range []string{"8082", "host"} {
		env := map[string]string{"CONSENTD_ADMIN_ADDR": bad}
		if _, err := healthURL(func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "CONSENTD_ADMIN_ADDR") {
			t.Errorf("admin %q: %v, want an error naming CONSENTD_ADMIN_ADDR", bad, err)
		}
	}
}
