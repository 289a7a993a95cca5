// Package store keeps consentd's data in Redis: each subject's current
// decisions (a hash), its hash-chained history (a list), idempotency records,
// and a change feed (one stream per partition).
//
// A write reads the subject with one script, computes the new state, the
// event and their MACs in Go (the MAC keys never go to Redis), and applies
// them with a second script only if the subject's revision and data key are
// still what it read; otherwise it starts again. Concurrent writers therefore
// never lose an update. Reads are single commands (HGETALL, HMGET; concurrent
// checks' HMGETs share pipelines, see Store.reads) or a pipeline of them
// (while a previous HMAC key is known, a small read script each, see
// "Rotating the HMAC key"). The code takes a redis.UniversalClient and keeps
// all keys of a subject in one cluster slot, so the same code runs on a
// single Redis and on Redis Cluster.
//
// Where things are: this file holds Store, New and Options. A check (the
// consent API's hot path) is GetPurposes or GetMany in reads.go: one HMGET,
// or one pipeline of them, decoded by statecodec.go. A write is write.go
// and writestate.go; the stored event eventcodec.go; history pages and the
// verified chain history.go; erasure erase.go; the change feed feed*.go;
// integrity MACs integrity.go; key names keys.go; the per-day consent
// statistics (counted by the write script, read by Stats) stats.go; every
// Lua script is in lua/, run through scripts.go.
//
// Give the store a client without automatic retries (MaxRetries: -1): a
// write script retried after a lost reply could apply twice. Callers retry
// safely with an idempotency key.
//
// # Rotating the HMAC key
//
// Key names are HMACs of subject ids (see keys.go), so a new HMAC key gives
// every subject new key names. A store knows the active key
// (Options.HMACKey) and any number of previous ones
// (Options.PreviousHMACKeys). A subject's data (state hash and history list)
// lives under exactly one of its known names at any time:
//
//   - reads look under all known names atomically, in one round trip, and
//     use the one that holds data;
//   - a write first moves (RENAMEs) the data from a previous name to the
//     active one when it is not already there, in the same atomic script, so
//     subjects move to the new key as they are written.
//
// An instance whose active key is the other one moves the data back on its
// next write: still one place, and instances on the old and the new
// configuration both see every subject while both keys are known to both.
// Idempotency records are looked up under every known name too, so a write
// retried across the switch still applies once; records under a key that has
// been removed from the key file are no longer found (they expire after
// Options.IdempotencyTTL anyway). Anything that deletes a subject's data
// (erasure) must delete it under every known name.
//
// The procedure:
//
//  1. Add the new key to every instance's key file as known but not active
//     (keep `active_hmac_key: <old id>`), and roll out. Every instance now
//     reads names under both keys but still writes under the old one.
//  2. Make the new key active (point `active_hmac_key` at the new id, or
//     remove it and list the new key first), and roll out. Instances still on
//     step 1 and those on step 2 see the same data throughout the rollout.
//  3. Subjects move to the new key on their next write; nothing migrates in
//     the background. Data still under the old key stays readable as long as
//     the old key is listed: remove the old key only after its data has moved
//     or expired (e.g. after the retention period of inactive records). A
//     subject still under a removed key reads as never written.
//
// Never skip step 1: an instance that does not know the new key cannot see
// subjects already moved to it, and would start them again at revision 1
// under the old key.
package store

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/keys"
)

// Defaults of Options.
const (
	DefaultPrefix         = "consentd"
	DefaultPartitions     = 64
	DefaultIdempotencyTTL = 24 * time.Hour
	DefaultFeedRetention  = 35 * 24 * time.Hour
	// DefaultVisitorRetention is 13 months (396 days) without a write.
	DefaultVisitorRetention = 396 * 24 * time.Hour
	// MinHMACKeyBytes is the shortest HMAC key accepted: 256 bits.
	MinHMACKeyBytes = 32
	// MaxPartitions: a partition is chosen by 16 bits of the subject's hash.
	MaxPartitions = 1 << 16
	// DefaultSharedReadTimeout is consentd's default --redis-timeout.
	DefaultSharedReadTimeout = time.Second
)

// Options configure a Store. Zero values take the defaults above.
type Options struct {
	// Prefix starts every key name; default "consentd". Tests use a unique
	// prefix per subtest so they can share one Redis.
	Prefix string
	// Partitions is the fixed number of change-feed partitions, default 64.
	// Subjects are mapped to partitions by a hash, so changing this on
	// existing data moves every subject's keys: never do that.
	Partitions int
	// HMACKey is the operator's active secret that turns subject ids into key
	// names (at least 32 bytes): writes put data under these names.
	HMACKey []byte
	// PreviousHMACKeys are secrets still known but not active (each at least
	// 32 bytes, none equal to another or to HMACKey): data still under their
	// names is read, and moved to HMACKey's names on the subject's next write.
	// Each one adds a name to every read while it is listed; with none, reads
	// are single commands. See "Rotating the HMAC key" above.
	PreviousHMACKeys [][]byte
	// Sealer seals the raw subject id in change-feed entries (required): the
	// feed holds no plaintext subject id, and consumers open it with the
	// operator's encryption keys.
	Sealer *keys.Sealer
	// IdempotencyTTL is how long a write's idempotency key is remembered;
	// default 24h.
	IdempotencyTTL time.Duration
	// FeedRetention: change-feed entries older than this are trimmed on
	// write (XADD MINID ~, so a little more may be kept); default 35 days.
	FeedRetention time.Duration
	// VisitorRetention: an anonymous visitor's record (state and history,
	// see domain.IsVisitorID) is deleted by Redis this long after its last
	// write (a TTL renewed by every write); default 13 months.
	VisitorRetention time.Duration
	// HistoryRetention: a subject's history is deleted this long after its
	// last write; 0 (the default) keeps it as long as the state.
	HistoryRetention time.Duration
	// SharedReadTimeout bounds how long a check's read waits for a pipeline
	// it shares with other checks' (see readHMGet); default 1s. Give it the
	// client's bound on one command (consentd: --redis-timeout): the client
	// bounds the commands it sends, but not a wait in the queue of a
	// pipeline.
	SharedReadTimeout time.Duration
	// StatsRetention: a partition's hash of one day's statistics (stats.go)
	// expires this long after its first count; default 400 days.
	StatsRetention time.Duration
}

// Store is consentd's Redis storage. It is safe for concurrent use.
type Store struct {
	client redis.UniversalClient
	// reads sends checks' reads (HMGET) when more than a few are in flight
	// (see readHMGet): go-redis' auto-pipeliner queues concurrent calls'
	// commands and writes them as one pipeline while the previous one is in
	// flight, so one write and one read syscall serve a whole batch instead of
	// each call (`make bench`: the check path's Redis round trip was about 40%
	// of consentd's CPU per check). go-redis marks the API experimental; the
	// version is pinned in go.mod. Reads only: nothing here may re-send a
	// write whose reply was lost (see the package comment), and a pipeline
	// library is the wrong place to prove that. A read waits for it
	// Options.SharedReadTimeout at most (see readHMGet).
	reads         *redis.AutoPipeliner
	readsInFlight atomic.Int64 // checks' reads, see readHMGet
	// activeMACs are HMAC-SHA256 hashes keyed with Options.HMACKey, reused
	// (see keyedID).
	activeMACs sync.Pool
	opts       Options
}

// A prefix must not contain braces (they would change the cluster hash tag)
// nor spaces; this keeps it to plain key-name characters.
var validPrefix = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// New checks the options and returns a Store. It does not talk to Redis (the
// service may start before Redis does): scripts are sent on first use, see
// runScript.
func New(client redis.UniversalClient, opts Options) (*Store, error) {
	if client == nil {
		return nil, errors.New("store: no Redis client")
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if !validPrefix.MatchString(opts.Prefix) {
		return nil, fmt.Errorf("store: prefix %q: use 1-64 of A-Z a-z 0-9 . _ : - (no braces: they would break the cluster hash tag)", opts.Prefix)
	}
	if opts.Partitions == 0 {
		opts.Partitions = DefaultPartitions
	}
	if opts.Partitions < 1 || opts.Partitions > MaxPartitions {
		return nil, fmt.Errorf("store: partitions %d: must be 1 to %d (default %d)", opts.Partitions, MaxPartitions, DefaultPartitions)
	}
	if len(opts.HMACKey) < MinHMACKeyBytes {
		return nil, fmt.Errorf("store: HMAC key has %d bytes: at least %d random bytes are required", len(opts.HMACKey), MinHMACKeyBytes)
	}
	// Copy the keys: the caller's slices may be reused or zeroed.
	opts.HMACKey = bytes.Clone(opts.HMACKey)
	previous := make([][]byte, 0, len(opts.PreviousHMACKeys))
	for i, key := range opts.PreviousHMACKeys {
		if len(key) < MinHMACKeyBytes {
			return nil, fmt.Errorf("store: previous HMAC key %d has %d bytes: at least %d random bytes are required", i, len(key), MinHMACKeyBytes)
		}
		// A repeated key would name the same keys twice: harmless, but a
		// sign of a mistaken key file.
		if bytes.Equal(key, opts.HMACKey) {
			return nil, fmt.Errorf("store: previous HMAC key %d is the active HMAC key", i)
		}
		for j, other := range previous {
			if bytes.Equal(key, other) {
				return nil, fmt.Errorf("store: previous HMAC keys %d and %d are the same", j, i)
			}
		}
		previous = append(previous, bytes.Clone(key))
	}
	opts.PreviousHMACKeys = previous
	if opts.Sealer == nil {
		return nil, errors.New("store: no Sealer: change-feed entries must not hold raw subject ids (build one with keys.NewSealer)")
	}
	if opts.IdempotencyTTL == 0 {
		opts.IdempotencyTTL = DefaultIdempotencyTTL
	}
	if opts.IdempotencyTTL < time.Millisecond {
		return nil, fmt.Errorf("store: idempotency TTL %v: must be positive (default %v)", opts.IdempotencyTTL, DefaultIdempotencyTTL)
	}
	if opts.FeedRetention == 0 {
		opts.FeedRetention = DefaultFeedRetention
	}
	if opts.FeedRetention < time.Millisecond {
		return nil, fmt.Errorf("store: feed retention %v: must be positive (default %v)", opts.FeedRetention, DefaultFeedRetention)
	}
	if opts.VisitorRetention == 0 {
		opts.VisitorRetention = DefaultVisitorRetention
	}
	if opts.VisitorRetention < time.Millisecond {
		return nil, fmt.Errorf("store: visitor retention %v: must be positive (default %v)", opts.VisitorRetention, DefaultVisitorRetention)
	}
	if opts.SharedReadTimeout == 0 {
		opts.SharedReadTimeout = DefaultSharedReadTimeout
	}
	if opts.SharedReadTimeout < time.Millisecond {
		return nil, fmt.Errorf("store: shared read timeout %v: must be positive (default %v)", opts.SharedReadTimeout, DefaultSharedReadTimeout)
	}
	if opts.StatsRetention == 0 {
		opts.StatsRetention = DefaultStatsRetention
	}
	if opts.StatsRetention < time.Millisecond {
		return nil, fmt.Errorf("store: stats retention %v: must be positive (default %v)", opts.StatsRetention, DefaultStatsRetention)
	}
	if opts.HistoryRetention < 0 {
		return nil, fmt.Errorf("store: history retention %v: must be 0 (kept with the state) or positive", opts.HistoryRetention)
	}
	reads, err := client.AsyncAutoPipeline()
	if err != nil {
		return nil, fmt.Errorf("store: auto-pipeliner: %w", err)
	}
	s := &Store{client: client, reads: reads, opts: opts}
	s.activeMACs.New = func() any { return hmac.New(sha256.New, s.opts.HMACKey) }
	return s, nil
}

// Ping reports whether Redis answers; /readyz uses it.
//
// On a cluster it is ready when any master answers: a master failing over
// makes some subjects unavailable for seconds, but taking every instance out
// of the load balancer would make them all unavailable.
func (s *Store) Ping(ctx context.Context) error {
	cluster, ok := s.client.(*redis.ClusterClient)
	if !ok {
		return wrapErr("ping", s.client.Ping(ctx).Err())
	}
	var answered atomic.Bool
	err := cluster.ForEachMaster(ctx, func(ctx context.Context, master *redis.Client) error {
		err := master.Ping(ctx).Err()
		if err == nil {
			answered.Store(true)
		}
		return err
	})
	if answered.Load() {
		return nil
	}
	return wrapErr("ping", err)
}

// StorageFull reports whether Redis refuses writes for memory now (on a
// cluster: any master), without writing anything. Reads still work then.
// An error means it could not tell (Redis unreachable; a replica, which
// refuses every write; a Redis older than 7.0); Ping says whether Redis
// answers at all.
func (s *Store) StorageFull(ctx context.Context) (bool, error) {
	probe := func(ctx context.Context, c redis.Scripter) (bool, error) {
		err := writeProbeScript.Run(ctx, c, nil).Err()
		if redis.IsOOMError(err) {
			return true, nil
		}
		return false, wrapErr("storage probe", err)
	}
	cluster, ok := s.client.(*redis.ClusterClient)
	if !ok {
		return probe(ctx, s.client)
	}
	var full atomic.Bool
	err := cluster.ForEachMaster(ctx, func(ctx context.Context, master *redis.Client) error {
		f, err := probe(ctx, master)
		if f {
			full.Store(true)
		}
		return err
	})
	if full.Load() {
		return true, nil
	}
	return false, err
}
