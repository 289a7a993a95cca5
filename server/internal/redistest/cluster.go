package redistest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterNodeTimeout is cluster-node-timeout, in milliseconds.
const clusterNodeTimeout = 2000

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
