package main

import (
	"net"
	"net/http"
	"net/http/httptest"
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
