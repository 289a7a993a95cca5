package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Scanning, for `consentd verify` and `consentd rekey`: both walk the
// subjects' keys with SCAN, which visits one node's keyspace, so on Redis
// Cluster they SCAN every master, one after the other in the order of their
// addresses (ForEachMaster would run them at once and leave no single place
// to resume from). A partition's keys share one slot, so a scan of one
// partition asks only the master that serves it (MasterForKey).
//
// A scan is resumable: its position is a cursor, plain text an operator can
// read,
//
//	<scope>/<phase>/<where>/<at>
//
// scope "all" or "p<partition>" (a cursor resumes only the scope it came
// from); phase "done" (nothing left), "keys" (where: the node's address, "-" on a single server or
// through Sentinel; at: SCAN's cursor on that node) or, for verify, "feed"
// (where: the partition; at: the last stream entry checked). Everything
// before the position is done. SCAN's cursor is only meaningful on the node
// that gave it: after a failover or a resharding, resuming on that address
// may visit keys twice or miss keys that moved; run again from the start
// for a complete pass.

// ScanScope says what a scan covers: one partition, or (All) every one.
type ScanScope struct {
	All       bool
	Partition int
}

func (sc ScanScope) name() string {
	if sc.All {
		return "all"
	}
	return "p" + strconv.Itoa(sc.Partition)
}

func (s *Store) checkScope(sc ScanScope) error {
	if !sc.All && (sc.Partition < 0 || sc.Partition >= s.opts.Partitions) {
		return fmt.Errorf("store: partition %d: must be 0 to %d", sc.Partition, s.opts.Partitions-1)
	}
	return nil
}

// scanPos is a position in a scan; the zero value is the start.
type scanPos struct {
	phase string // "" (the start), "keys" or "feed"
	where string
	at    string
}

func (p scanPos) cursor(sc ScanScope) string {
	return sc.name() + "/" + p.phase + "/" + p.where + "/" + p.at
}

func parseScanCursor(sc ScanScope, cursor string) (scanPos, error) {
	if cursor == "" {
		return scanPos{}, nil
	}
	parts := strings.Split(cursor, "/")
	if len(parts) != 4 || (parts[1] != "keys" && parts[1] != "feed" && parts[1] != "done") || parts[2] == "" || parts[3] == "" {
		return scanPos{}, fmt.Errorf("store: cursor %q: not one this command printed", cursor)
	}
	if parts[0] != sc.name() {
		return scanPos{}, fmt.Errorf("store: cursor %q is of a scan of %q, not of %q", cursor, parts[0], sc.name())
	}
	return scanPos{phase: parts[1], where: parts[2], at: parts[3]}, nil
}

// scanNode is one node to SCAN, with the pattern to match there.
type scanNode struct {
	addr   string // "-" for the only node
	client redis.Cmdable
}

// scanNodes lists the nodes a scan of sc visits, in the order it visits them.
func (s *Store) scanNodes(ctx context.Context, sc ScanScope) ([]scanNode, error) {
	cluster, ok := s.client.(*redis.ClusterClient)
	if !ok {
		return []scanNode{{addr: "-", client: s.client}}, nil
	}
	if !sc.All {
		master, err := cluster.MasterForKey(ctx, s.feedKey(sc.Partition))
		if err != nil {
			return nil, wrapErr("scan", err)
		}
		return []scanNode{{addr: master.Options().Addr, client: master}}, nil
	}
	var (
		mu    sync.Mutex
		nodes []scanNode
	)
	err := cluster.ForEachMaster(ctx, func(_ context.Context, master *redis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		nodes = append(nodes, scanNode{addr: master.Options().Addr, client: master})
		return nil
	})
	if err != nil {
		return nil, wrapErr("scan", err)
	}
	slices.SortFunc(nodes, func(a, b scanNode) int { return strings.Compare(a.addr, b.addr) })
	return nodes, nil
}

// scanPattern matches the keys of the given kinds ("shk": state, history,
// data key; see keys.go) in sc. The prefix holds no glob characters (see
// validPrefix).
func (s *Store) scanPattern(sc ScanScope, kinds string) string {
	part := "*"
	if !sc.All {
		part = strconv.Itoa(sc.Partition)
	}
	return s.opts.Prefix + ":{p" + part + "}:[" + kinds + "]:*"
}

// scanBatch is how many keys one SCAN call asks a node to look at.
const scanBatch = 500

// scanKeys SCANs the nodes of sc from pos for keys of the given kinds,
// calling each with the keys of one SCAN reply and the position after them
// (done after the last). It returns at the end (nil) or at the first error,
// each's included.
func (s *Store) scanKeys(ctx context.Context, sc ScanScope, kinds string, pos, done scanPos,
	each func(keys []string, after scanPos) error) error {
	if pos.phase == "done" {
		return nil
	}
	nodes, err := s.scanNodes(ctx, sc)
	if err != nil {
		return err
	}
	start, at := 0, uint64(0)
	if pos.phase == "keys" {
		// Nodes before the cursor's are done; one no longer there (the
		// topology changed) is where the next one in order begins.
		start, _ = slices.BinarySearchFunc(nodes, pos.where, func(n scanNode, addr string) int { return strings.Compare(n.addr, addr) })
		if start < len(nodes) && nodes[start].addr == pos.where {
			if at, err = strconv.ParseUint(pos.at, 10, 64); err != nil {
				return fmt.Errorf("store: cursor: %q is not a SCAN cursor", pos.at)
			}
		}
	}
	match := s.scanPattern(sc, kinds)
	for i := start; i < len(nodes); i++ {
		node := nodes[i]
		for {
			keys, next, err := node.client.Scan(ctx, at, match, scanBatch).Result()
			if err != nil {
				return wrapErr("scan", err)
			}
			after := scanPos{phase: "keys", where: node.addr, at: strconv.FormatUint(next, 10)}
			switch {
			case next == 0 && i+1 < len(nodes):
				after = scanPos{phase: "keys", where: nodes[i+1].addr, at: "0"}
			case next == 0:
				after = done
			}
			if err := each(keys, after); err != nil {
				return err
			}
			if at = next; at == 0 {
				break
			}
		}
	}
	return nil
}

// parsedKey is a key name of the layout in keys.go taken apart.
type parsedKey struct {
	partition int
	base      string // <prefix>:{p<partition>}
	kind      byte   // 's', 'h', 'k', ...
	rest      string // the keyed id, or a data key's handle
}

func (s *Store) parseKey(key string) (parsedKey, bool) {
	body, ok := strings.CutPrefix(key, s.opts.Prefix+":{p")
	if !ok {
		return parsedKey{}, false
	}
	num, tail, ok := strings.Cut(body, "}:")
	if !ok || len(tail) < 3 || tail[1] != ':' {
		return parsedKey{}, false
	}
	p, err := strconv.Atoi(num)
	if err != nil || p < 0 || p >= s.opts.Partitions || strconv.Itoa(p) != num {
		return parsedKey{}, false
	}
	return parsedKey{partition: p, base: s.partitionBase(p), kind: tail[0], rest: tail[2:]}, true
}
