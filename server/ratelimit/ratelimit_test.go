package ratelimit

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/consentd/consentd/server/internal/redistest"
)

type inProcess struct{}

func (inProcess) Network() string { return "bufconn" }
func (inProcess) String() string  { return "bufconn" }

func TestClientIP(t *testing.T) {
	tcp := &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 51000}
	for _, tc := range []struct {
		name      string
		addr      net.Addr
		forwarded []string
		hops      int
		want      string
	}{
		{"a gRPC caller is its peer address", tcp, nil, 0, "192.0.2.7"},
		{"a gRPC caller's own X-Forwarded-For is ignored", tcp, []string{"203.0.113.9"}, 1, "192.0.2.7"},
		{"a REST caller is the gateway's last entry", inProcess{}, []string{"198.51.100.1, 192.0.2.50"}, 0, "192.0.2.50"},
		{"behind one trusted proxy, the entry before it", inProcess{}, []string{"198.51.100.1, 192.0.2.50"}, 1, "198.51.100.1"},
		{"more hops than entries stops at the first", inProcess{}, []string{"192.0.2.50"}, 3, "192.0.2.50"},
		{"entries split over several values", inProcess{}, []string{"198.51.100.1", "192.0.2.50"}, 1, "198.51.100.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: tc.addr})
			if tc.forwarded != nil {
				md := metadata.MD{}
				for _, v := range tc.forwarded {
					md.Append("x-forwarded-for", v)
				}
				ctx = metadata.NewIncomingContext(ctx, md)
			}
			if got := ClientIP(ctx, tc.hops); got != tc.want {
				t.Errorf("ClientIP = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseLimit(t *testing.T) {
	for in, want := range map[string]Limit{
		"": {}, "0": {},
		"20/s":    {Rate: 20, Burst: 20, Period: time.Second},
		"600/m":   {Rate: 600, Burst: 600, Period: time.Minute},
		"10000/h": {Rate: 10000, Burst: 10000, Period: time.Hour},
	} {
		if got, err := ParseLimit(in); err != nil || got != want {
			t.Errorf("ParseLimit(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"20", "x/s", "-1/s", "0/s", "5/d", "5/"} {
		if _, err := ParseLimit(bad); err == nil {
			t.Errorf("ParseLimit(%q) accepted", bad)
		}
	}
}

func TestLocalLimiterAllowsTheBurstThenTheRate(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := newLocalLimiter(func() time.Time { return now })
	limit, _ := ParseLimit("5/m")
	for i := range 5 {
		if ok, _ := l.allow("ip:a", limit); !ok {
			t.Fatalf("call %d of a fresh bucket refused", i+1)
		}
	}
	ok, retry := l.allow("ip:a", limit)
	if ok || retry != 12*time.Second {
		t.Fatalf("6th call in a minute: allowed %v, retry after %v; want refused, 12s", ok, retry)
	}
	if ok, _ := l.allow("ip:b", limit); !ok {
		t.Fatal("another client is limited by the first one's calls")
	}
	now = now.Add(12 * time.Second)
	if ok, _ := l.allow("ip:a", limit); !ok {
		t.Fatal("refused after waiting the retry time")
	}
	if ok, _ := l.allow("ip:a", limit); ok {
		t.Fatal("the wait bought more than one call")
	}
}

func TestLocalLimiterKeepsItsMemoryBounded(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := newLocalLimiter(func() time.Time { return now })
	limit, _ := ParseLimit("1/s")
	for i := range maxLocalBuckets {
		l.allow("ip:"+strconv.Itoa(i), limit)
	}
	l.allow("ip:one-too-many", limit)
	if len(l.tat) != maxLocalBuckets {
		t.Fatalf("%d buckets, want at most %d", len(l.tat), maxLocalBuckets)
	}
	// A second later every bucket is back at its full allowance: the same
	// as none, so they make room.
	now = now.Add(time.Second)
	l.allow("ip:new", limit)
	if len(l.tat) != 1 {
		t.Fatalf("%d buckets after they all refilled, want only the new one", len(l.tat))
	}
	if ok, _ := l.allow("ip:new", limit); ok {
		t.Fatal("the new bucket is not counted")
	}
}

// When Redis cannot keep the counters, full (maxmemory under noeviction: the
// counter's write is refused) or gone, calls are counted in memory, not let
// through.
func TestLimiterCountsInMemoryWhenRedisCannot(t *testing.T) {
	srv := redistest.Start(t, "--maxmemory-policy", "noeviction")
	rdb := srv.Client(t)
	limit, _ := ParseLimit("5/m")
	for _, tc := range []struct {
		name    string
		breakIt func()
	}{
		{"Redis full", func() {
			if err := rdb.ConfigSet(context.Background(), "maxmemory", "1").Err(); err != nil {
				t.Fatal(err)
			}
			if err := rdb.Set(context.Background(), "k", "v", 0).Err(); !redis.IsOOMError(err) {
				t.Fatalf("Redis is not full: SET answered %v", err)
			}
		}},
		{"Redis down", srv.Stop},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
			t.Cleanup(func() { _ = client.Close() })
			l := New(client, Options{PerIP: limit, IPHashKey: []byte("k")}, slog.New(slog.DiscardHandler))
			tc.breakIt()
			ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 1}})
			info := &grpc.UnaryServerInfo{FullMethod: "/consent.v1.ConsentService/GetPolicy"}
			handled := 0
			handler := func(context.Context, any) (any, error) { handled++; return nil, nil }
			var last error
			for range 8 {
				_, last = l.Unary(ctx, nil, info, handler)
			}
			if handled != 5 || status.Code(last) != codes.ResourceExhausted {
				t.Errorf("%d of 8 calls handled, last answered %v; want 5, then ResourceExhausted", handled, last)
			}
		})
	}
}

// commandCounter counts the commands a client sends.
type commandCounter struct{ n atomic.Int64 }

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.n.Add(1); return next(ctx, cmd) }
}
func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// With Redis stalled, the limiter gives up on it after RedisWait (not the
// call's whole Redis timeout, which the handler still needs) and then
// counts locally for a while without asking Redis at all: a stall costs one
// call a short wait, not every call two timeouts.
func TestLimiterAsksAStalledRedisOnceThenCountsLocally(t *testing.T) {
	srv := redistest.Start(t)
	// As consentd builds its client: a context deadline bounds the socket
	// wait too.
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1, ReadTimeout: 10 * time.Second, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = client.Close() })
	sent := &commandCounter{}
	client.AddHook(sent)
	limit, _ := ParseLimit("5/m")
	l := New(client, Options{PerIP: limit, IPHashKey: []byte("k"), RedisWait: 50 * time.Millisecond}, slog.New(slog.DiscardHandler))
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.ParseIP("192.0.2.8"), Port: 1}})
	info := &grpc.UnaryServerInfo{FullMethod: "/consent.v1.ConsentService/GetPolicy"}
	handled := 0
	handler := func(context.Context, any) (any, error) { handled++; return nil, nil }
	if _, err := l.Unary(ctx, nil, info, handler); err != nil || sent.n.Load() == 0 {
		t.Fatalf("a call with Redis up: %v, %d commands", err, sent.n.Load())
	}

	srv.Pause()
	t.Cleanup(srv.Resume)
	caller, cancel := context.WithTimeout(ctx, 5*time.Second) // far beyond RedisWait
	defer cancel()
	before := sent.n.Load()
	if _, err := l.Unary(caller, nil, info, handler); err != nil || caller.Err() != nil {
		t.Fatalf("the first call with Redis stalled: %v (caller: %v), want counted locally before the caller's deadline", err, caller.Err())
	}
	if sent.n.Load() != before+1 {
		t.Fatalf("the first call with Redis stalled sent %d commands, want 1", sent.n.Load()-before)
	}
	for range 3 {
		if _, err := l.Unary(caller, nil, info, handler); err != nil {
			t.Fatal(err)
		}
	}
	if sent.n.Load() != before+1 || handled != 5 {
		t.Errorf("later calls sent %d commands to the stalled Redis and %d calls were handled; want none sent, all 5 handled", sent.n.Load()-before-1, handled)
	}
}
