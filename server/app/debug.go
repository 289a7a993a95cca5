package app

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// debugServer serves Go's profiles (--debug-addr) on a listener of its own,
// never on the API port: profiles reveal internals, so an operator opts in
// and keeps the address on loopback. `make bench` profiles consentd with it.
type debugServer struct {
	http     *http.Server
	listener net.Listener
}

func newDebugServer(addr string, logger *slog.Logger) (*debugServer, error) {
	if addr == "" {
		return nil, nil
	}
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--debug-addr: %w", err)
	}
	mux := http.NewServeMux()
	servePprof(mux)
	logger.Warn("profiling served on --debug-addr: keep it off the network", "addr", listener.Addr().String())
	return &debugServer{http: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, listener: listener}, nil
}

// servePprof adds Go's profiles at /debug/pprof/ to mux: on --debug-addr,
// or on --admin-addr with --pprof.
func servePprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}

func (d *debugServer) serve() {
	if d != nil {
		go func() { _ = d.http.Serve(d.listener) }()
	}
}

func (d *debugServer) close() error {
	if d == nil {
		return nil
	}
	if err := d.http.Close(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
