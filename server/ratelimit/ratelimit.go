// Package ratelimit limits calls per client, with the counters in Redis so
// that every consentd instance shares them (GCRA, through go-redis/redis_rate).
// Services are limited per API key; browsers and anonymous callers per
// client IP, which is hashed before it reaches Redis.
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
}

// Limiter is the rate-limiting interceptor.
type Limiter struct {
	limiter *redis_rate.Limiter
	opts    Options
	logger  *slog.Logger
}

// New returns a limiter whose counters live in client.
func New(client redis.UniversalClient, opts Options, logger *slog.Logger) *Limiter {
	if opts.Prefix == "" {
		opts.Prefix = "consentd:"
	}
	return &Limiter{limiter: redis_rate.NewLimiter(client), opts: opts, logger: logger}
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
	res, err := l.limiter.Allow(ctx, l.opts.Prefix+key, limit)
	if err != nil {
		// The store is down too, most likely; the call will say so itself.
		// Refusing every call here would only hide that.
		l.logger.WarnContext(ctx, "rate limiter unavailable; call let through", "request_id", middleware.RequestID(ctx), "error", err)
		return handler(ctx, req)
	}
	if res.Allowed == 0 {
		seconds := int(math.Ceil(res.RetryAfter.Seconds()))
		_ = grpc.SetHeader(ctx, metadata.Pairs("retry-after", strconv.Itoa(max(seconds, 1))))
		return nil, status.Errorf(codes.ResourceExhausted, "rate limit exceeded (%s): retry after %d s", limit, max(seconds, 1))
	}
	return handler(ctx, req)
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
