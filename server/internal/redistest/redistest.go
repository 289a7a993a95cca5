// Package redistest starts a real, throwaway redis-server for tests.
//
// Each server listens on a free loopback port (never a fixed one: other
// processes share the machine), keeps nothing on disk beyond the test's
// temporary directory, and is killed when the test ends. Start keeps nothing
// at all; StartDurable keeps an append-only file that survives a kill.
package redistest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// startAttempts bounds the retries when the port picked is taken by someone
// else between our probe and redis-server binding it.
const startAttempts = 5

// readyTimeout is how long a started redis-server may take to answer PING.
const readyTimeout = 15 * time.Second

// Server is one running redis-server: a Process (see cluster.go) that can
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

// waitReady polls until the server at addr answers and is the process we
// started (a port we probed may have been taken by another Redis meanwhile).
func waitReady(addr string, pid int, exited <-chan struct{}) error {
	want := "process_id:" + strconv.Itoa(pid) + "\r\n"
	return pollInfo(addr, "server", exited, "before answering (port taken?)", func(info string) (bool, error) {
		if !strings.Contains(info, want) {
			return false, errors.New("another redis-server answers on the port")
		}
		return true, nil
	})
}

// pollInfo asks the server at addr for an INFO section until done says so
// or fails, the process exits, or readyTimeout passes.
func pollInfo(addr, section string, exited <-chan struct{}, exitedWhen string, done func(info string) (bool, error)) error {
	c := redis.NewClient(&redis.Options{
		Addr: addr, DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond,
		MaxRetries: -1, PoolSize: 1,
	})
	defer c.Close()
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-exited:
			return errors.New("redis-server exited " + exitedWhen)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		info, err := c.Info(ctx, section).Result()
		cancel()
		if err == nil {
			ok, err := done(info)
			if ok || err != nil {
				return err
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %v (INFO %s, last error: %v)", readyTimeout, section, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// freePort asks the kernel for a free loopback port. Another process may take
// it before redis-server binds it; Start then retries with another one.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lockedBuffer collects the server's output; the exec package writes to it
// from its own goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}
