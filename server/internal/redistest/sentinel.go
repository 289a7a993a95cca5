package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the name the sentinels know the master by: consentd's
// --redis-master.
const SentinelMaster = "consentd"

// Sentinel is a master, one replica, and three sentinels watching them
// (quorum 2).
type Sentinel struct {
	t         testing.TB
	data      []*Process // the master and the replica, in either role
	sentinels []*Process
}

// StartSentinel starts a master, its replica and three sentinels, and
// returns once the replica is in sync and every sentinel knows the replica
// and the other two sentinels (so that a failover can be agreed on).
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	s := &Sentinel{t: t}
	dataArgs := func(dir string, extra ...string) func(port int) []string {
		return func(port int) []string {
			return append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
				"--repl-diskless-sync-delay", "0", "--save", "", "--appendonly", "no", "--dir", dir}, extra...)
		}
	}
	master := startProcess(t, "master", dataArgs(t.TempDir()))
	replica := startProcess(t, "replica", dataArgs(t.TempDir(), "--replicaof", "127.0.0.1", strconv.Itoa(master.port)))
	s.data = []*Process{master, replica}
	for i := range 3 {
		dir := t.TempDir()
		s.sentinels = append(s.sentinels, startProcess(t, "sentinel "+strconv.Itoa(i), func(port int) []string {
			// Sentinel insists on a config file it can rewrite.
			conf := filepath.Join(dir, "sentinel.conf")
			text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n"+
				"sentinel monitor %s 127.0.0.1 %d 2\n"+
				"sentinel down-after-milliseconds %[3]s 1000\n"+
				"sentinel failover-timeout %[3]s 3000\n"+
				"sentinel parallel-syncs %[3]s 1\n", port, dir, SentinelMaster, master.port)
			if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			return []string{conf, "--sentinel"}
		}))
	}
	s.waitReady(master, replica)
	return s
}

// waitReady waits until master is the master every sentinel names, replica
// is in sync with it, and every sentinel knows the replica and both other
// sentinels.
func (s *Sentinel) waitReady(master, replica *Process) {
	s.t.Helper()
	replicaAdmin := adminClient(s.t, replica.Addr())
	admins := make([]*redis.SentinelClient, len(s.sentinels))
	for i, p := range s.sentinels {
		admins[i] = redis.NewSentinelClient(&redis.Options{Addr: p.Addr(), DialTimeout: 500 * time.Millisecond,
			ReadTimeout: 2 * time.Second, MaxRetries: -1, DialerRetries: 1, PoolSize: 2})
	}
	defer func() {
		for _, a := range admins {
			_ = a.Close()
		}
	}()
	waitFor(s.t, "the sentinels to agree on "+master.Addr()+" with its replica in sync", func(ctx context.Context) string {
		info, err := replicaAdmin.Info(ctx, "replication").Result()
		if err != nil || !strings.Contains(info, "master_link_status:up\r\n") ||
			!strings.Contains(info, "master_port:"+strconv.Itoa(master.port)+"\r\n") {
			return fmt.Sprintf("%s is not in sync with %s: %v", replica.name, master.name, err)
		}
		for i, a := range admins {
			if s.sentinels[i].Killed() {
				continue
			}
			addr, err := a.GetMasterAddrByName(ctx, SentinelMaster).Result()
			if err != nil || len(addr) != 2 || net.JoinHostPort(addr[0], addr[1]) != master.Addr() {
				return fmt.Sprintf("sentinel %d names master %v (%v), want %s", i, addr, err, master.Addr())
			}
			replicas, err := a.Replicas(ctx, SentinelMaster).Result()
			if err != nil || len(replicas) != 1 || replicas[0]["port"] != strconv.Itoa(replica.port) ||
				strings.Contains(replicas[0]["flags"], "down") || strings.Contains(replicas[0]["flags"], "disconnected") {
				return fmt.Sprintf("sentinel %d knows replicas %v (%v)", i, replicas, err)
			}
			others, err := a.Sentinels(ctx, SentinelMaster).Result()
			if err != nil || len(others) != len(s.sentinels)-1 {
				return fmt.Sprintf("sentinel %d knows %d other sentinels (%v)", i, len(others), err)
			}
		}
		return ""
	})
}

// Addrs are the sentinels' addresses: consentd's --redis-addrs.
func (s *Sentinel) Addrs() []string {
	var out []string
	for _, p := range s.sentinels {
		out = append(out, p.Addr())
	}
	return out
}

// Master is the data node the sentinels currently name master.
func (s *Sentinel) Master() *Process {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, p := range s.sentinels {
		if p.Killed() {
			continue
		}
		a := redis.NewSentinelClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1})
		addr, err := a.GetMasterAddrByName(ctx, SentinelMaster).Result()
		_ = a.Close()
		if err != nil {
			s.t.Fatalf("redistest: SENTINEL GET-MASTER-ADDR-BY-NAME on %s: %v", p.name, err)
		}
		for _, d := range s.data {
			if d.Addr() == net.JoinHostPort(addr[0], addr[1]) {
				return d
			}
		}
		s.t.Fatalf("redistest: the sentinels name an unknown master %v", addr)
	}
	s.t.Fatal("redistest: every sentinel is dead")
	return nil
}

// Client is a failover client (it asks the sentinels where the master is)
// with go-redis' defaults, closed when the test ends.
func (s *Sentinel) Client(t testing.TB) *redis.Client {
	c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: SentinelMaster, SentinelAddrs: s.Addrs()})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// KillMaster kills (SIGKILL) the current master and returns it.
func (s *Sentinel) KillMaster() *Process {
	s.t.Helper()
	m := s.Master()
	m.Kill()
	return m
}

// WaitForFailover waits until every sentinel names the surviving data node
// as master and it has taken the role, and returns it. The killed one is
// not restarted: the new master has no replica.
func (s *Sentinel) WaitForFailover(killed *Process) *Process {
	s.t.Helper()
	var promoted *Process
	for _, d := range s.data {
		if d != killed {
			promoted = d
		}
	}
	admin := adminClient(s.t, promoted.Addr())
	waitFor(s.t, "the sentinels to promote "+promoted.Addr(), func(ctx context.Context) string {
		info, err := admin.Info(ctx, "replication").Result()
		if err != nil || !strings.Contains(info, "role:master\r\n") {
			return fmt.Sprintf("%s is not master yet (%v)", promoted.name, err)
		}
		for _, p := range s.sentinels {
			if p.Killed() {
				continue
			}
			a := redis.NewSentinelClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1})
			addr, err := a.GetMasterAddrByName(ctx, SentinelMaster).Result()
			_ = a.Close()
			if err != nil || len(addr) != 2 || net.JoinHostPort(addr[0], addr[1]) != promoted.Addr() {
				return fmt.Sprintf("%s names master %v (%v)", p.name, addr, err)
			}
		}
		return ""
	})
	return promoted
}
