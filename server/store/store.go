// Package store keeps consentd's data in Redis: each subject's current
// decisions (a hash), its hash-chained history (a list), idempotency records,
// and a change feed (one stream per partition).
//
// Every write is one Lua script: one round trip, atomic, so concurrent writers
// never lose an update. Reads are single commands (HGETALL, HMGET) or a
// pipeline of them. The code takes a redis.UniversalClient and keeps all keys
// of a subject in one cluster slot, so the same code runs on a single Redis
// and on Redis Cluster.
//
// Give the store a client without automatic retries (MaxRetries: -1): a
// write script retried after a lost reply could apply twice. Callers retry
// safely with an idempotency key.
package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of Options.
const (
	DefaultPrefix         = "consentd"
	DefaultPartitions     = 64
	DefaultIdempotencyTTL = 24 * time.Hour
	DefaultFeedRetention  = 35 * 24 * time.Hour
	// MinHMACKeyBytes is the shortest HMAC key accepted: 256 bits.
	MinHMACKeyBytes = 32
	// MaxPartitions: a partition is chosen by 16 bits of the subject's hash.
	MaxPartitions = 1 << 16
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
	// HMACKey is the operator's secret that turns subject ids into key names
	// (at least 32 bytes).
	HMACKey []byte
	// IdempotencyTTL is how long a write's idempotency key is remembered;
	// default 24h.
	IdempotencyTTL time.Duration
	// FeedRetention: change-feed entries older than this are trimmed on
	// write (XADD MINID ~, so a little more may be kept); default 35 days.
	FeedRetention time.Duration
}

// Store is consentd's Redis storage. It is safe for concurrent use.
type Store struct {
	client redis.UniversalClient
	opts   Options
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
	// Copy the key: the caller's slice may be reused or zeroed.
	opts.HMACKey = append([]byte(nil), opts.HMACKey...)
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
	return &Store{client: client, opts: opts}, nil
}

// Ping reports whether Redis answers; /readyz uses it.
func (s *Store) Ping(ctx context.Context) error {
	return wrapErr("ping", s.client.Ping(ctx).Err())
}

// runScript runs a script by EVALSHA and, when Redis does not have it cached
// (first use, after a restart or SCRIPT FLUSH, or on a new cluster node),
// by EVAL, which also caches it. Scripts are only ever run this way, one call
// at a time: EVALSHA inside a pipeline would not fall back to EVAL.
func (s *Store) runScript(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	return script.Run(ctx, s.client, keys, args...)
}
