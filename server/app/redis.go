package app

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/keys"
	"github.com/consentd/consentd/server/store"
)

// newRedisClient builds the client of the configured Redis: one server
// (--redis-url), a Redis Cluster (--redis-addrs: seed nodes) or a master
// found through Redis Sentinel (--redis-addrs: the sentinels, --redis-master).
// The store's keys put a subject and its change-feed partition in one hash
// slot, so the same scripts run unchanged on all three.
//
// The policy is the same in every mode:
//   - Every command and pipeline waits on Redis for --redis-timeout at most,
//     all its waits together (boundWaits: the wait for a pooled connection,
//     a dial and its handshake, the write, the reply): a dead or stalled
//     Redis fails a call with Unavailable, it never hangs it, however many
//     calls are in flight. A blocking read gets its block time on top. One
//     dial attempt per connection (go-redis' default is 5 dials 100 ms
//     apart, which would make every 503 take half a second longer).
//   - No retry of a command that may have reached Redis. A write script
//     whose reply was lost (timeout, connection reset, a master killed
//     mid-reply) may have been applied, and after a failover it may have
//     been replicated too; sending it again could apply it twice. Callers
//     retry instead, with an idempotency key, which makes the retry apply at
//     most once.
//   - Connections for the calls in flight: at least 64 per node (go-redis'
//     default is 10 per CPU). A call that waits for a pooled connection parks
//     and grows its stack again; `make bench` showed the pool wait in the
//     check path's profile with 64 concurrent calls on 2 CPUs.
//   - Reads and writes go to the master, never to a replica: replication is
//     asynchronous, so a replica may not have a write yet, and a check must
//     see a withdrawal at once (read-your-write, min_revision).
func newRedisClient(cfg config.Config) (redis.UniversalClient, error) {
	poolSize := max(64, 10*runtime.GOMAXPROCS(0))
	bound := boundWaits{cfg.RedisTimeout}
	switch cfg.RedisMode {
	case "", "standalone":
		opts, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("--redis-url: %w", err)
		}
		opts.DialTimeout = cfg.RedisTimeout
		opts.ReadTimeout = cfg.RedisTimeout
		opts.WriteTimeout = cfg.RedisTimeout
		opts.PoolTimeout = cfg.RedisTimeout
		opts.ContextTimeoutEnabled = true
		opts.MaxRetries = -1
		opts.DialerRetries = 1
		opts.PoolSize = poolSize
		client := redis.NewClient(opts)
		client.AddHook(bound)
		return client, nil

	case "cluster":
		client := redis.NewClusterClient(&redis.ClusterOptions{
			Addrs:    cfg.RedisAddrs,
			Password: cfg.RedisPassword,
			// MaxRedirects bounds more than redirects: go-redis' cluster
			// client also spends it re-sending a command (or a whole
			// pipeline) after a read timeout, a reset connection or EOF,
			// which is exactly the lost-reply case above: with the default,
			// 3, a write whose reply timed out was applied four times
			// (TestClusterAWriteWhoseReplyTimesOutIsNotSentAgain). -1
			// means one attempt, nothing re-sent. The cost: a MOVED or ASK
			// reply (a slot moved by resharding, or a topology this client
			// has not seen yet) fails that one call instead of being
			// followed, though following it would be safe (Redis refuses
			// before executing). The topology is reloaded at once (by
			// go-redis on MOVED, ASK and READONLY, by reloadTopologyOnError
			// on everything else), so the next calls go to the right node.
			MaxRedirects: -1,
			MaxRetries:   -1, // per node: the same policy
			// Masters only: ReadOnly, RouteByLatency and RouteRandomly
			// would send reads to replicas, which may lag (see above).
			ReadOnly:       false,
			RouteByLatency: false,
			RouteRandomly:  false,
			DialTimeout:    cfg.RedisTimeout,
			DialerRetries:  1,
			ReadTimeout:    cfg.RedisTimeout,
			WriteTimeout:   cfg.RedisTimeout,
			PoolTimeout:    cfg.RedisTimeout,
			PoolSize:       poolSize, // per node

			// boundWaits' deadlines, on node clients too: the cluster
			// client's hooks do not run for calls made on a node directly
			// (Store.Ping).
			ContextTimeoutEnabled: true,
			NewClient: func(opt *redis.Options) *redis.Client {
				node := redis.NewClient(opt)
				node.AddHook(bound)
				return node
			},
		})
		client.AddHook(bound)
		client.AddHook(reloadTopologyOnError{client})
		return client, nil

	case "sentinel":
		// A master-only failover client: each new connection asks the
		// sentinels where the master is, and connections to a master the
		// sentinels replaced (+switch-master) are dropped. Until they have
		// promoted a replica, calls fail with Unavailable.
		client := redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:    cfg.RedisMaster,
			SentinelAddrs: cfg.RedisAddrs,
			// The data nodes' password. Sentinels are assumed to need none
			// (their own requirepass would need a setting of its own).
			Password:      cfg.RedisPassword,
			ReplicaOnly:   false,
			MaxRetries:    -1,
			DialTimeout:   cfg.RedisTimeout,
			DialerRetries: 1,
			ReadTimeout:   cfg.RedisTimeout,
			WriteTimeout:  cfg.RedisTimeout,
			PoolTimeout:   cfg.RedisTimeout,
			PoolSize:      poolSize,

			ContextTimeoutEnabled: true, // boundWaits' deadlines
		})
		client.AddHook(bound)
		return client, nil
	}
	return nil, fmt.Errorf("--redis-mode: %q is not standalone, cluster or sentinel", cfg.RedisMode)
}

// boundWaits gives every command and pipeline a deadline of --redis-timeout
// (a context deadline, which go-redis applies to the connection's reads and
// writes with ContextTimeoutEnabled, and to the wait for a pooled
// connection). go-redis' own timeouts bound each wait by itself, one after
// the other: a call that waited for a pooled connection, dialled a new one,
// then waited for the handshake's reply and for its own could wait several
// times --redis-timeout. The caller's deadline, when it is sooner, still
// ends the call first.
//
// A blocking read may wait its block time, then --redis-timeout for the
// reply. consentd sends none today: the change feed polls with XREADGROUP
// without BLOCK (see api.WithFeed). blockTime knows the BLOCK argument of
// XREAD and XREADGROUP; any other blocking command (BLPOP, WAIT, ...) would
// be cut at --redis-timeout, so one that is ever sent must be taught to it
// first.
type boundWaits struct{ timeout time.Duration }

func (b boundWaits) DialHook(next redis.DialHook) redis.DialHook { return next }

func (b boundWaits) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		ctx, cancel := context.WithTimeout(ctx, b.timeout+blockTime(cmd))
		defer cancel()
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook: Redis runs a pipeline's blocking reads one after the
// other, so their block times add up.
func (b boundWaits) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		timeout := b.timeout
		for _, cmd := range cmds {
			timeout += blockTime(cmd)
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return next(ctx, cmds)
	}
}

// blockTime is how long Redis may hold cmd before replying by design: the
// BLOCK of an XREAD or XREADGROUP, nothing for other commands. BLOCK 0
// (forever) gets nothing either: no call waits forever.
func blockTime(cmd redis.Cmder) time.Duration {
	if name := cmd.Name(); name != "xread" && name != "xreadgroup" {
		return 0
	}
	args := cmd.Args()
	for i := 1; i+1 < len(args); i++ {
		word, _ := args[i].(string)
		switch strings.ToLower(word) {
		case "streams": // the options end here; keys and ids follow
			return 0
		case "block":
			ms, _ := args[i+1].(int64)
			return time.Duration(max(ms, 0)) * time.Millisecond
		}
	}
	return 0
}

// reloadTopologyOnError asks the cluster client to reload the slot map
// whenever a command or pipeline fails in a way that may mean the topology
// changed: no reply at all (a node refused, reset or timed out: killed,
// failing over) or a reply saying so (CLUSTERDOWN, TRYAGAIN, MOVED, ASK,
// READONLY, MASTERDOWN, LOADING). Without it, with nothing re-sent
// (MaxRedirects -1), the client would keep sending a dead master's slots
// to it until its periodic reload (every 60 s), long after a replica took
// over. The reload is asynchronous and go-redis coalesces requests (one
// CLUSTER SLOTS at a time, at most one every 200 ms), so an outage costs a
// few cheap commands per second, and no call waits for it.
type reloadTopologyOnError struct{ client *redis.ClusterClient }

func (h reloadTopologyOnError) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h reloadTopologyOnError) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if topologyMayHaveChanged(err) {
			h.client.ReloadState(context.Background())
		}
		return err
	}
}

func (h reloadTopologyOnError) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		changed := topologyMayHaveChanged(err)
		for _, cmd := range cmds { // err is the first error, maybe a harmless NOSCRIPT
			changed = changed || topologyMayHaveChanged(cmd.Err())
		}
		if changed {
			h.client.ReloadState(context.Background())
		}
		return err
	}
}

func topologyMayHaveChanged(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) || errors.Is(err, context.Canceled) {
		return false
	}
	var reply redis.Error
	if !errors.As(err, &reply) {
		return true // no reply: a network error or a timeout
	}
	_, moved := redis.IsMovedError(err)
	_, ask := redis.IsAskError(err)
	return moved || ask || redis.IsClusterDownError(err) || redis.IsTryAgainError(err) ||
		redis.IsReadOnlyError(err) || redis.IsMasterDownError(err) || redis.IsLoadingError(err)
}

// OpenStore builds the store of cfg the way the server does (its Redis
// client, key file and retention), for the subcommands that work on it
// directly (`consentd verify`, `consentd rekey`). Close the client when done.
func OpenStore(cfg config.Config) (*store.Store, redis.UniversalClient, error) {
	keySet, err := keys.Load(cfg.KeysFile)
	if err != nil {
		return nil, nil, err
	}
	return newStore(cfg, keySet)
}

// newStore connects the store: the Redis client of cfg (standalone,
// cluster or sentinel; timeouts and no retries, see newRedisClient) and the
// keys of keySet.
func newStore(cfg config.Config, keySet keys.Set) (*store.Store, redis.UniversalClient, error) {
	client, err := newRedisClient(cfg)
	if err != nil {
		return nil, nil, err
	}
	sealer, err := keys.NewSealer(keySet.Encryption)
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("encryption keys: %w", err), client.Close())
	}
	var previousHMAC [][]byte
	for _, k := range keySet.HMAC[1:] {
		previousHMAC = append(previousHMAC, k.Secret)
	}
	s, err := store.New(client, store.Options{HMACKey: keySet.ActiveHMAC().Secret, PreviousHMACKeys: previousHMAC, Sealer: sealer,
		VisitorRetention: cfg.VisitorRetention, HistoryRetention: cfg.HistoryRetention, FeedRetention: cfg.FeedRetention,
		StatsRetention:    cfg.StatsRetention,
		SharedReadTimeout: cfg.RedisTimeout})
	if err != nil {
		return nil, nil, errors.Join(err, client.Close())
	}
	return s, client, nil
}
