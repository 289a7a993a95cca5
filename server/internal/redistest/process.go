package redistest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Process is one redis-server (a cluster node, a master, a replica or a
// sentinel) started by this package.
type Process struct {
	name string // for messages: "cluster node 3", "sentinel 1"
	bin  string
	port int
	out  *lockedBuffer

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	killed bool
}

// Addr is host:port of the process.
func (p *Process) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)) }

// Name says which process it is, for test messages.
func (p *Process) Name() string { return p.name }

// Kill sends SIGKILL (no shutdown, no last replication to a replica: a
// crash) and waits until the process has exited. Killing a killed process
// does nothing.
func (p *Process) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.killed || p.cmd == nil {
		return
	}
	p.killed = true
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// Killed reports whether Kill was called.
func (p *Process) Killed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.killed
}

// startProcess runs redis-server with the arguments args(port) returns,
// on a free port, retrying with another port when the one picked was taken
// meanwhile. The process is killed when the test ends.
func startProcess(t testing.TB, name string, args func(port int) []string) *Process {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not on PATH: the store's tests need a real Redis; run `make test`, which installs it (or apt-get install redis-server)")
	}
	p := &Process{name: name, bin: bin}
	t.Cleanup(p.Kill)
	var lastErr error
	for range startAttempts {
		if p.port, err = freePort(); err != nil {
			t.Fatalf("redistest: finding a free port: %v", err)
		}
		if lastErr = p.start(args(p.port)); lastErr == nil {
			return p
		}
	}
	t.Fatalf("redistest: %s did not start after %d attempts: %v", name, startAttempts, lastErr)
	return nil
}

// start launches redis-server with args and waits until it answers PING. It
// returns an error (and leaves no process behind) if it exits or stays
// silent. It also starts a killed process again (Server.Restart).
func (p *Process) start(args []string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := &lockedBuffer{}
	cmd := exec.Command(p.bin, args...)
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running %s: %w", p.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	if err := waitReady(p.Addr(), cmd.Process.Pid, exited); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("%w; output:\n%s", err, out.tail(2000))
	}
	p.cmd, p.exited, p.out, p.killed = cmd, exited, out, false
	return nil
}

// adminClient is a client of one process for the set-up's own commands:
// quick to fail, never retrying, named "redistest" in CLIENT LIST.
func adminClient(t testing.TB, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{
		Addr: addr, ClientName: "redistest", DialTimeout: 500 * time.Millisecond, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
		MaxRetries: -1, DialerRetries: 1, PoolSize: 2,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitFor polls cond until it returns "" (done), failing the test with the
// last thing cond reported when formationTimeout passes.
func waitFor(t testing.TB, what string, cond func(ctx context.Context) string) {
	t.Helper()
	deadline := time.Now().Add(formationTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		missing := cond(ctx)
		cancel()
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: timed out after %v waiting for %s: %s", formationTimeout, what, missing)
		}
		time.Sleep(20 * time.Millisecond)
	}
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
