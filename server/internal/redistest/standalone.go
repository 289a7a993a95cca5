package redistest

import (
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Server is one running redis-server: a Process (see process.go) that can
// be stopped and restarted on the same port and directory.
type Server struct {
	*Process
	t   testing.TB
	dir string
	// durable: AOF with appendfsync always in dir, replayed on Restart.
	durable bool
	extra   []string // more redis-server arguments (Start)
}

// Start runs a redis-server on a free loopback port and stops it when the
// test ends. It fails the test (never skips it) when redis-server is missing.
// extra are more redis-server arguments, e.g. "--maxmemory", "4mb",
// "--maxmemory-policy", "noeviction" (deploy/'s setting) for a Redis that
// can fill up; they are kept on Restart.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	return startServer(t, false, extra...)
}

// StartDurable is Start with persistence as deploy/ ships it: an append-only
// file with appendfsync always (each write is on disk before Redis replies)
// in the server's directory. Stop is a SIGKILL and Restart comes back on the
// same port and directory, so a test can kill -9 Redis under load and see
// what it kept: Restart replays the file before it returns.
func StartDurable(t testing.TB) *Server {
	t.Helper()
	return startServer(t, true)
}

func startServer(t testing.TB, durable bool, extra ...string) *Server {
	t.Helper()
	s := &Server{t: t, dir: t.TempDir(), durable: durable, extra: extra}
	s.Process = startProcess(t, "redis-server", s.args)
	return s
}

// args are the server's command line on port.
func (s *Server) args(port int) []string {
	persistence := []string{"--appendonly", "no"}
	if s.durable {
		persistence = []string{"--appendonly", "yes", "--appendfsync", "always"}
	}
	return append([]string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--dir", s.dir,
		// Tests simulate a stalled Redis with DEBUG SLEEP, which Redis 7
		// refuses unless enabled; "local" allows it from loopback only.
		"--enable-debug-command", "local",
	}, append(persistence, s.extra...)...)
}

// Dir is the server's working directory: its append-only files are under
// appendonlydir.
func (s *Server) Dir() string { return s.dir }

// URL is a redis:// URL of database 0, as consentd's --redis-url takes it.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Client returns a client of the server, closed when the test ends.
func (s *Server) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Stop kills the server (SIGKILL, as kill -9: nothing is flushed on the way
// out) and waits for it to exit, so that tests can see how their code
// behaves with Redis down. Stopping a stopped server does nothing.
func (s *Server) Stop() { s.Kill() }

// Restart starts the server again on the same port and directory and waits
// until it answers. A server from Start persists nothing, so it comes back
// empty; one from StartDurable comes back with its append-only file replayed.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	// The port was ours a moment ago; redis-server binds with SO_REUSEADDR,
	// so only another process grabbing it in between makes this fail.
	err := s.start(s.args(s.port))
	if err == nil && s.durable {
		if err = waitLoaded(s.Addr(), s.exited); err != nil {
			s.Kill()
		}
	}
	if err != nil {
		s.t.Fatalf("redistest: restarting redis-server on port %d: %v", s.port, err)
	}
}

// waitLoaded polls until the server at addr has replayed its append-only
// file: INFO answers while it loads, other commands get LOADING.
func waitLoaded(addr string, exited <-chan struct{}) error {
	return pollInfo(addr, "persistence", exited, "while loading its data", func(info string) (bool, error) {
		return strings.Contains(info, "\r\nloading:0\r\n"), nil
	})
}
