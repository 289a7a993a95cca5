package redistest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis Cluster and Redis Sentinel for tests: real redis-server processes on
// free loopback ports, in the test's temporary directory, killed when the
// test ends (and by the kernel if the test binary dies first).
//
// Both are tuned to fail over within a few seconds, so tests can kill a
// master and watch the service recover:
//   - cluster-node-timeout 2000 ms: a master is flagged failing after 2 s
//     without an answer and its replica takes over about a second later. Lower
//     values fail over faster but risk a spurious failover when the test
//     machine is busy (2 cores running `go test -race ./...`).
//   - Sentinel down-after-milliseconds 1000, failover-timeout 3000.
//   - repl-diskless-sync-delay 0: replicas sync at once (Redis waits 5 s by
//     default for more replicas to share a transfer), so they are ready
//     to take over when the set-up returns.
//   - nothing on disk beyond the node files Cluster and Sentinel keep.

// formationTimeout bounds how long a cluster or a sentinel set-up, and a
// failover, may take. Redis' own timings (above) decide; this is only a
// guard against a test hanging forever.
const formationTimeout = 30 * time.Second

// clusterNodeTimeout is cluster-node-timeout, in milliseconds.
const clusterNodeTimeout = 2000

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

// --- Redis Cluster -------------------------------------------------------------

// Cluster is a Redis Cluster of three masters, each with one replica.
type Cluster struct {
	t     testing.TB
	nodes []*ClusterNode
}

// ClusterNode is one node of a Cluster.
type ClusterNode struct {
	*Process
	id      string // the cluster's node id
	busPort int
	admin   *redis.Client
}

// ID is the node's cluster id.
func (n *ClusterNode) ID() string { return n.id }

// StartCluster starts six `redis-server --cluster-enabled yes` nodes, makes
// nodes 0-2 masters of a third of the slots each and nodes 3-5 their
// replicas, and returns once every node sees the same healthy cluster and
// every replica is in sync with its master.
//
// The cluster runs with cluster-require-full-coverage no, the setting
// consentd recommends: while one master is down, the others keep serving
// their slots (with the default, yes, every command fails with CLUSTERDOWN
// until the failover completes).
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	for i := range 6 {
		dir := filepath.Join(t.TempDir(), "node"+strconv.Itoa(i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		n := &ClusterNode{}
		n.Process = startProcess(t, "cluster node "+strconv.Itoa(i), func(port int) []string {
			// The cluster bus port must be free too (by default it is
			// port+10000, which may not be).
			bus, err := freePort()
			if err != nil {
				t.Fatalf("redistest: finding a free port: %v", err)
			}
			n.busPort = bus
			_ = os.Remove(filepath.Join(dir, "nodes.conf")) // from a failed attempt
			return []string{
				"--port", strconv.Itoa(port), "--cluster-port", strconv.Itoa(bus), "--bind", "127.0.0.1",
				"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
				"--cluster-node-timeout", strconv.Itoa(clusterNodeTimeout),
				"--cluster-require-full-coverage", "no",
				"--repl-diskless-sync-delay", "0",
				"--save", "", "--appendonly", "no", "--dir", dir,
				"--enable-debug-command", "local", // tests stall a node with DEBUG SLEEP
			}
		})
		n.admin = adminClient(t, n.Addr())
		c.nodes = append(c.nodes, n)
	}
	c.form()
	return c
}

// form assigns the slots, introduces the nodes to each other, makes the
// replicas and waits for all of it to settle.
func (c *Cluster) form() {
	t := c.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), formationTimeout)
	defer cancel()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("redistest: forming the cluster: %s: %v", what, err)
		}
	}
	for i, n := range c.nodes {
		id, err := n.admin.ClusterMyID(ctx).Result()
		must("CLUSTER MYID", err)
		n.id = id
		// Distinct epochs up front, as redis-cli --cluster create does,
		// so the nodes need not resolve collisions first.
		must("CLUSTER SET-CONFIG-EPOCH", n.admin.Do(ctx, "cluster", "set-config-epoch", i+1).Err())
	}
	const slots = 16384
	for i, n := range c.nodes[:3] {
		first, last := i*slots/3, (i+1)*slots/3-1
		must("CLUSTER ADDSLOTSRANGE", n.admin.Do(ctx, "cluster", "addslotsrange", first, last).Err())
	}
	for _, n := range c.nodes[1:] {
		must("CLUSTER MEET", c.nodes[0].admin.Do(ctx, "cluster", "meet", "127.0.0.1", n.port, n.busPort).Err())
	}
	waitFor(t, "every node to know every other", func(ctx context.Context) string {
		for _, n := range c.nodes {
			nodes, err := clusterNodes(ctx, n.admin)
			if err != nil {
				return err.Error()
			}
			if len(nodes) != len(c.nodes) {
				return fmt.Sprintf("%s knows %d nodes", n.name, len(nodes))
			}
			for _, o := range nodes {
				if o.handshake || o.link != "connected" {
					return fmt.Sprintf("%s sees %s %s %s", n.name, o.addr, o.flags, o.link)
				}
			}
		}
		return ""
	})
	for i, n := range c.nodes[3:] {
		must("CLUSTER REPLICATE", n.admin.Do(ctx, "cluster", "replicate", c.nodes[i].id).Err())
	}
	c.waitHealthy(c.nodes[:3], c.nodes[3:])
}

// waitHealthy waits until every live node reports cluster_state:ok and the
// same slot map, in which masters[i] serves a third of the slots with
// replicas[i] as its replica (nil: none), and every replica is in sync.
func (c *Cluster) waitHealthy(masters, replicas []*ClusterNode) {
	c.t.Helper()
	want := map[string]string{} // master id -> replica id, "" for none
	for i, m := range masters {
		want[m.id] = ""
		if replicas[i] != nil {
			want[m.id] = replicas[i].id
		}
	}
	waitFor(c.t, "the cluster to be healthy and every node to agree", func(ctx context.Context) string {
		for _, n := range c.nodes {
			if n.Killed() {
				continue
			}
			info, err := n.admin.ClusterInfo(ctx).Result()
			if err != nil {
				return fmt.Sprintf("%s: %v", n.name, err)
			}
			if !strings.Contains(info, "cluster_state:ok\r\n") || !strings.Contains(info, "cluster_slots_ok:16384\r\n") {
				return fmt.Sprintf("%s: %s", n.name, firstLines(info, 4))
			}
			nodes, err := clusterNodes(ctx, n.admin)
			if err != nil {
				return fmt.Sprintf("%s: %v", n.name, err)
			}
			// Masters serving slots, each with its live replica ("" for none).
			got := map[string]string{}
			for _, o := range nodes {
				if o.master && !o.fail && len(o.slots) > 0 {
					got[o.id] = ""
				}
			}
			for _, o := range nodes {
				if _, ok := got[o.masterID]; ok && !o.master && !o.fail {
					got[o.masterID] = o.id
				}
			}
			if !maps.Equal(got, want) {
				return fmt.Sprintf("%s sees masters and replicas %v, want %v", n.name, got, want)
			}
		}
		for _, r := range replicas {
			if r == nil {
				continue
			}
			info, err := r.admin.Info(ctx, "replication").Result()
			if err != nil || !strings.Contains(info, "master_link_status:up\r\n") {
				return fmt.Sprintf("%s not in sync with its master: %v", r.name, err)
			}
		}
		return ""
	})
}

// Addrs are the addresses of all six nodes: consentd's --redis-addrs.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, n := range c.nodes {
		out = append(out, n.Addr())
	}
	return out
}

// Nodes are the six nodes; 0-2 started as masters, 3-5 as their replicas.
func (c *Cluster) Nodes() []*ClusterNode { return slices.Clone(c.nodes) }

// Client is a cluster client with go-redis' defaults, closed when the test
// ends.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// MasterFor is the node serving key's slot now, as a live node sees it.
func (c *Cluster) MasterFor(key string) *ClusterNode {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, n := range c.nodes {
		if n.Killed() {
			continue
		}
		slot, err := n.admin.ClusterKeySlot(ctx, key).Result()
		if err != nil {
			c.t.Fatalf("redistest: CLUSTER KEYSLOT on %s: %v", n.name, err)
		}
		nodes, err := clusterNodes(ctx, n.admin)
		if err != nil {
			c.t.Fatalf("redistest: CLUSTER NODES on %s: %v", n.name, err)
		}
		for _, o := range nodes {
			if o.master && !o.fail && o.serves(int(slot)) {
				return c.node(o.id)
			}
		}
		c.t.Fatalf("redistest: no master serves slot %d of %q", slot, key)
	}
	c.t.Fatal("redistest: every cluster node is dead")
	return nil
}

// KillMasterFor kills (SIGKILL) the master serving key's slot and returns it.
func (c *Cluster) KillMasterFor(key string) *ClusterNode {
	c.t.Helper()
	m := c.MasterFor(key)
	m.Kill()
	return m
}

// WaitForFailover waits until the replica of the killed master has taken
// over its slots, as every live node sees it, and returns that replica.
func (c *Cluster) WaitForFailover(killed *ClusterNode) *ClusterNode {
	c.t.Helper()
	var masters, replicas []*ClusterNode
	var promoted *ClusterNode
	for i, m := range c.nodes[:3] {
		r := c.nodes[3+i]
		if m.Killed() && r.Killed() {
			c.t.Fatalf("redistest: %s and its replica are both dead: no failover possible", m.name)
		}
		// A pair whose master died: the replica becomes master, alone.
		switch {
		case m.Killed():
			masters, replicas = append(masters, r), append(replicas, nil)
		case r.Killed():
			masters, replicas = append(masters, m), append(replicas, nil)
		default:
			// Roles may have been swapped by an earlier failover: ask.
			if c.isMaster(r) {
				m, r = r, m
			}
			masters, replicas = append(masters, m), append(replicas, r)
		}
		if m == killed {
			promoted = r
		}
	}
	if promoted == nil {
		for i, r := range c.nodes[3:] {
			if r == killed {
				promoted = c.nodes[i]
			}
		}
	}
	if !killed.Killed() {
		c.t.Fatalf("redistest: WaitForFailover(%s): it was not killed", killed.name)
	}
	c.waitHealthy(masters, replicas)
	return promoted
}

func (c *Cluster) isMaster(n *ClusterNode) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := n.admin.Info(ctx, "replication").Result()
	if err != nil {
		c.t.Fatalf("redistest: INFO replication on %s: %v", n.name, err)
	}
	return strings.Contains(info, "role:master\r\n")
}

func (c *Cluster) node(id string) *ClusterNode {
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	c.t.Fatalf("redistest: no node has id %s", id)
	return nil
}

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct {
	id, addr, flags, masterID, link string
	master, fail, handshake         bool
	slots                           [][2]int
}

func (n clusterNode) serves(slot int) bool {
	for _, r := range n.slots {
		if r[0] <= slot && slot <= r[1] {
			return true
		}
	}
	return false
}

func clusterNodes(ctx context.Context, c *redis.Client) ([]clusterNode, error) {
	text, err := c.ClusterNodes(ctx).Result()
	if err != nil {
		return nil, err
	}
	var out []clusterNode
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		n := clusterNode{id: f[0], addr: f[1], flags: f[2], link: f[7]}
		if f[3] != "-" {
			n.masterID = f[3]
		}
		for flag := range strings.SplitSeq(f[2], ",") {
			switch flag {
			case "master":
				n.master = true
			case "fail", "fail?":
				n.fail = true
			case "handshake", "noaddr":
				n.handshake = true
			}
		}
		for _, s := range f[8:] {
			if strings.HasPrefix(s, "[") { // a slot being migrated
				continue
			}
			first, last, _ := strings.Cut(s, "-")
			if last == "" {
				last = first
			}
			a, err1 := strconv.Atoi(first)
			b, err2 := strconv.Atoi(last)
			if err := errors.Join(err1, err2); err != nil {
				return nil, fmt.Errorf("CLUSTER NODES slot %q: %w", s, err)
			}
			n.slots = append(n.slots, [2]int{a, b})
		}
		out = append(out, n)
	}
	return out, nil
}

func firstLines(s string, n int) string {
	lines := strings.Split(strings.ReplaceAll(s, "\r", ""), "\n")
	return strings.Join(lines[:min(n, len(lines))], " ")
}

// --- Redis Sentinel ------------------------------------------------------------

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
