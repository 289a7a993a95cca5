package app

import (
	"fmt"
	"log/slog"
	"maps"
	"net"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/consentd/consentd/server/config"
)

// A start that fails must leave nothing running: main exits then, but a
// process embedding consentd, or a supervisor retrying New, would otherwise
// keep every gRPC stream worker, the gateway's connection and the tracer's
// exporter and batcher for good. Each case fails a step late in New, with
// tracing on, so that everything before it has been opened. Not parallel:
// it counts the process's goroutines.
func TestNewClosesWhatItOpenedWhenStartUpFails(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail func(t *testing.T, cfg *config.Config)
		want string
	}{
		{"TLS files missing", func(t *testing.T, cfg *config.Config) {
			cfg.TLSCert = filepath.Join(t.TempDir(), "missing.crt")
			cfg.TLSKey = filepath.Join(t.TempDir(), "missing.key")
		}, "--tls-cert/--tls-key"},
		{"gRPC port taken", func(t *testing.T, cfg *config.Config) { cfg.GRPCAddr = takenAddr(t) }, "--grpc-addr"},
		{"HTTP port taken", func(t *testing.T, cfg *config.Config) { cfg.HTTPAddr = takenAddr(t) }, "--http-addr"},
		{"debug port taken", func(t *testing.T, cfg *config.Config) { cfg.DebugAddr = takenAddr(t) }, "--debug-addr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Nothing in New dials Redis or the collector, so neither
			// needs to exist.
			cfg := testConfig(t, "redis://127.0.0.1:1/0")
			cfg.OTLPEndpoint = "127.0.0.1:1"
			tc.fail(t, &cfg)

			before := goroutines()
			a, err := New(cfg, slog.New(slog.DiscardHandler))
			if err == nil {
				a.shutdown()
				t.Fatal("consentd started")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
			// Stopped goroutines return in their own time: wait for them.
			var left map[string]string
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				if left = startedSince(before); len(left) == 0 {
					return
				}
			}
			t.Fatalf("%d goroutines New started are still running:\n%s", len(left), byCreator(left))
		})
	}
}

// takenAddr is an address another listener holds until the test ends.
func takenAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l.Addr().String()
}

// goroutines is every goroutine's stack, by goroutine id.
func goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	stacks := make(map[string]string)
	for _, stack := range strings.Split(string(buf), "\n\n") {
		id, _, _ := strings.Cut(strings.TrimPrefix(stack, "goroutine "), " ")
		stacks[id] = stack
	}
	return stacks
}

// startedSince is the goroutines running now that were not in before.
func startedSince(before map[string]string) map[string]string {
	now := goroutines()
	maps.DeleteFunc(now, func(id, _ string) bool { _, old := before[id]; return old })
	return now
}

// byCreator counts stacks by the line naming the function that started
// them: 512 stream workers read better as one line than as 512 stacks.
func byCreator(stacks map[string]string) string {
	counts := make(map[string]int)
	for _, stack := range stacks {
		creator := stack
		if i := strings.Index(stack, "created by "); i >= 0 {
			creator, _, _ = strings.Cut(stack[i:], "\n")
		}
		counts[creator]++
	}
	var b strings.Builder
	for _, creator := range slices.Sorted(maps.Keys(counts)) {
		fmt.Fprintf(&b, "%5d %s\n", counts[creator], creator)
	}
	return b.String()
}
