// Package ratelimit limits calls per client, with the counters in Redis so
// that every consentd instance shares them (GCRA, through go-redis/redis_rate).
// Services are limited per API key; browsers and anonymous callers per
// client IP, which is hashed before it reaches Redis. When Redis cannot keep
// the counters (full, unreachable), each instance counts in memory instead.
package ratelimit

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/consentd/consentd/server/auth"
	"github.com/consentd/consentd/server/middleware"
)

// Limit is a rate; the zero Limit means unlimited.
type Limit = redis_rate.Limit

// ParseLimit reads "20/s", "600/m" or "10000/h"; "0" or "" is unlimited.
// The burst equals the rate: a client may spend one period's allowance at once.
func ParseLimit(s string) (Limit, error) {
	if s == "" || s == "0" {
		return Limit{}, nil
	}
	n, unit, ok := strings.Cut(s, "/")
	rate, err := strconv.Atoi(n)
	if !ok || err != nil || rate < 1 {
		return Limit{}, fmt.Errorf("%q is not a rate like 20/s, 600/m or 10000/h (0: unlimited)", s)
	}
	switch unit {
	case "s":
		return redis_rate.PerSecond(rate), nil
	case "m":
		return redis_rate.PerMinute(rate), nil
	case "h":
		return redis_rate.PerHour(rate), nil
	}
	return Limit{}, fmt.Errorf("%q: the unit must be s, m or h", s)
}

// Options configure a Limiter.
type Options struct {
	PerIP  Limit // browsers (subject tokens) and anonymous callers
	PerKey Limit // each API key
	// TrustedProxyHops is how many proxies in front of consentd append to
	// X-Forwarded-For: the client is that many entries from the end. 0 means
	// the address that connected to consentd is the client.
	TrustedProxyHops int
	// IPHashKey keys the hash of client IPs in Redis key names, so no raw
	// IP is ever stored.
	IPHashKey []byte
	Prefix    string // Redis key prefix, default "consentd:" (redis_rate puts "rate:" before it)
	// RedisWait is how long counting a call in Redis may take before the
	// call is counted locally instead; 0: DefaultRedisWait. The call itself
	// waits for Redis afterwards, within its own bound (--redis-timeout):
	// keep this a small part of it, or a stalled Redis makes every call wait
	// for both.
	RedisWait time.Duration
}

// DefaultRedisWait: counting a call takes well under a millisecond.
const DefaultRedisWait = 100 * time.Millisecond

// localFor is how long the limiter counts locally after Redis failed to
// count a call, before it asks Redis again: during an outage only one call
// a second waits RedisWait.
const localFor = time.Second

// Limiter is the rate-limiting interceptor.
type Limiter struct {
	limiter *redis_rate.Limiter
	local   *localLimiter // when Redis cannot keep the counters
	opts    Options
	logger  *slog.Logger
	// lastWarning is when the fallback to local counters was last logged
	// (unix nanoseconds): once per fallbackLogEvery, not once per call.
	lastWarning atomic.Int64
	// localUntil: until then (unix nanoseconds) calls are counted locally
	// without asking Redis (see localFor).
	localUntil atomic.Int64
}

// fallbackLogEvery spaces the warnings while the limiter counts locally.
const fallbackLogEvery = 10 * time.Second

// New returns a limiter whose counters live in client.
func New(client redis.UniversalClient, opts Options, logger *slog.Logger) *Limiter {
	if opts.Prefix == "" {
		opts.Prefix = "consentd:"
	}
	if opts.RedisWait <= 0 {
		opts.RedisWait = DefaultRedisWait
	}
	return &Limiter{limiter: redis_rate.NewLimiter(client), local: newLocalLimiter(time.Now), opts: opts, logger: logger}
}

// Unary is the unary interceptor; it must run after authentication, whose
// principal says which limit applies.
func (l *Limiter) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !strings.HasPrefix(info.FullMethod, "/consent.v1.") {
		return handler(ctx, req)
	}
	key, limit := l.bucket(ctx)
	if limit.IsZero() {
		return handler(ctx, req)
	}
	allowed, retryAfter, err := l.allow(ctx, key, limit)
	if err != nil {
		return nil, err // the caller gave up
	}
	if !allowed {
		seconds := int(math.Ceil(retryAfter.Seconds()))
		_ = grpc.SetHeader(ctx, metadata.Pairs("retry-after", strconv.Itoa(max(seconds, 1))))
		return nil, status.Errorf(codes.ResourceExhausted, "rate limit exceeded (%s): retry after %d s", limit, max(seconds, 1))
	}
	return handler(ctx, req)
}

// allow counts the call in Redis, shared by every instance. When Redis
// cannot (full: maxmemory under noeviction refuses the counter's write;
// unreachable; too slow), the call is counted in this instance's memory
// instead, with the same limit. Letting every call through would leave a
// full Redis, which still serves checks, open to any flood, and refusing
// every call would fail the checks it can still serve (and hide an outage
// the call itself reports). Locally each instance allows the whole limit,
// so with N instances a client may get up to N times it: looser, never
// stricter, until Redis keeps the counters again.
//
// Counting in Redis waits Options.RedisWait at most, and after a failure
// the limiter counts locally for localFor without asking Redis: a call
// then waits for a stalled Redis only once, in its own handler, within
// --redis-timeout.
func (l *Limiter) allow(ctx context.Context, key string, limit Limit) (bool, time.Duration, error) {
	if time.Now().UnixNano() >= l.localUntil.Load() {
		counting, cancel := context.WithTimeout(ctx, l.opts.RedisWait)
		res, err := l.limiter.Allow(counting, l.opts.Prefix+key, limit)
		cancel()
		if err == nil {
			return res.Allowed > 0, res.RetryAfter, nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return false, 0, status.FromContextError(ctxErr).Err()
		}
		l.localUntil.Store(time.Now().Add(localFor).UnixNano())
		l.warn(ctx, err)
	}
	allowed, retryAfter := l.local.allow(key, limit)
	return allowed, retryAfter, nil
}

func (l *Limiter) warn(ctx context.Context, err error) {
	if now := time.Now().UnixNano(); now-l.lastWarning.Load() >= int64(fallbackLogEvery) {
		l.lastWarning.Store(now)
		l.logger.WarnContext(ctx, "rate limiter: Redis cannot keep the counters; counting in this instance",
			"request_id", middleware.RequestID(ctx), "oom", redis.IsOOMError(err), "error", err)
	}
}

// maxLocalBuckets bounds the local counters' memory (about 100 bytes each).
// A bucket whose allowance is full again is the same as none and is pruned;
// beyond the bound, new clients are let through uncounted until some are.
const maxLocalBuckets = 100_000

// localLimiter is the same GCRA as redis_rate's script, in memory: per
// bucket, the theoretical arrival time (tat) of the next call.
type localLimiter struct {
	now func() time.Time

	mu        sync.Mutex
	tat       map[string]time.Time
	lastPrune time.Time
}

func newLocalLimiter(now func() time.Time) *localLimiter {
	return &localLimiter{now: now, tat: map[string]time.Time{}}
}

// allow counts one call of key under limit and says whether it may go on,
// or when to retry.
func (l *localLimiter) allow(key string, limit Limit) (bool, time.Duration) {
	interval := limit.Period / time.Duration(limit.Rate)
	burst := interval * time.Duration(limit.Burst)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	tat, known := l.tat[key]
	if !known || tat.Before(now) {
		tat = now
	}
	next := tat.Add(interval)
	if allowAt := next.Add(-burst); now.Before(allowAt) {
		return false, allowAt.Sub(now)
	}
	if !known && len(l.tat) >= maxLocalBuckets {
		l.prune(now)
		if len(l.tat) >= maxLocalBuckets {
			return true, 0
		}
	}
	l.tat[key] = next
	return true, 0
}

// prune drops the buckets back at their full allowance, at most once a
// second (it walks them all).
func (l *localLimiter) prune(now time.Time) {
	if now.Sub(l.lastPrune) < time.Second {
		return
	}
	l.lastPrune = now
	for key, tat := range l.tat {
		if !tat.After(now) {
			delete(l.tat, key)
		}
	}
}

// bucket names the caller's counter and its limit.
func (l *Limiter) bucket(ctx context.Context) (string, Limit) {
	p := auth.FromContext(ctx)
	if p.Kind == auth.Service {
		return "key:" + p.Name, l.opts.PerKey
	}
	mac := hmac.New(sha256.New, l.opts.IPHashKey)
	mac.Write([]byte(ClientIP(ctx, l.opts.TrustedProxyHops)))
	return "ip:" + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:12]), l.opts.PerIP
}

// ClientIP is the address of the client. A call from the REST gateway
// arrives over the in-process connection; the gateway put the HTTP peer at
// the end of X-Forwarded-For, after any entries proxies added. A gRPC
// caller's own X-Forwarded-For is never believed.
func ClientIP(ctx context.Context, trustedHops int) string {
	pr, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	if pr.Addr.Network() != "bufconn" {
		host, _, err := net.SplitHostPort(pr.Addr.String())
		if err != nil {
			return pr.Addr.String()
		}
		return host
	}
	var hops []string
	for _, v := range metadata.ValueFromIncomingContext(ctx, "x-forwarded-for") {
		for _, h := range strings.Split(v, ",") {
			hops = append(hops, strings.TrimSpace(h))
		}
	}
	if len(hops) == 0 {
		return ""
	}
	return hops[max(len(hops)-1-trustedHops, 0)]
}
