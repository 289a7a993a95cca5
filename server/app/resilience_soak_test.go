package app

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/internal/eventually"
	"github.com/consentd/consentd/server/internal/redistest"
)

// soakDuration is the soak's length in `make test`; CONSENTD_SOAK (a Go
// duration, e.g. 3m) sets another.
const soakDuration = 45 * time.Second

// A bounded soak: writers (gRPC and REST, idempotency keys, some retried on
// purpose), checkers, batch checkers, send-list filters, history readers and
// a feed consumer that watches and acknowledges, all at once. Every call
// must succeed with the expected answer, nothing may be logged at warning
// or above, the consumer must get every change once, and consentd's heap
// must stay flat: its state does not grow with the data, only Redis' does.
func TestResilienceSoakMixedTrafficKeepsMemoryFlatWithoutErrors(t *testing.T) {
	duration := soakDuration
	if v := os.Getenv("CONSENTD_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("CONSENTD_SOAK=%q: want a positive Go duration such as 3m", v)
		}
		duration = d
	}
	if end, ok := t.Deadline(); ok && time.Until(end) < duration+time.Minute {
		t.Fatalf("a soak of %v does not fit in go test's -timeout (%v left): pass -timeout %v or more", duration, time.Until(end).Round(time.Second), duration+5*time.Minute)
	}
	redis := redistest.Start(t)
	rdb := redis.Client(t)
	srv, logged, grpcCalls := startQuiet(t, redis.URL(), func(c *config.Config) { c.FeedMonitorInterval = time.Second })
	s := newSoak(srv)
	must(srv.grpc.CreateFeedConsumer(as(ctx(t), apiKeys["watch"]), &consentv1.CreateFeedConsumerRequest{Consumer: "soak-mailer"})).ok(t)

	s.run(t)
	t.Cleanup(s.stopFeed)
	t.Cleanup(s.stop)
	warmUp := max(duration/4, 5*time.Second)
	time.Sleep(warmUp) // the soak's length is the point: this waits for nothing else
	heapStart, goroutinesStart := heapInUse()
	redisStart, writesStart, callsStart := redisMemory(t, rdb), s.writes.Load(), grpcCalls.Load()+s.restCalls.Load()
	samples := []uint64{heapStart}
	var heapEnd uint64
	var goroutinesEnd int
	for range 4 {
		time.Sleep((duration - warmUp) / 4)
		heapEnd, goroutinesEnd = heapInUse()
		samples = append(samples, heapEnd)
	}
	redisEnd, writesEnd := redisMemory(t, rdb), s.writes.Load()
	s.stop()

	// The consumer gets every change, then has nothing left to acknowledge.
	eventually.True(t, "the feed consumer to acknowledge every change", func() bool {
		list := must(srv.grpc.ListFeedConsumers(as(ctx(t), apiKeys["watch"]), &consentv1.ListFeedConsumersRequest{})).ok(t)
		return s.feedChanges.Load() == s.writes.Load() && list.GetConsumers()[0].GetUnacknowledged() == 0
	})
	s.stopFeed()

	s.report(t)
	if n, first := logged.count(); n > 0 {
		t.Errorf("consentd logged %d warnings or errors during the soak, first: %v", n, first)
	}
	calls := grpcCalls.Load() + s.restCalls.Load()
	t.Logf("soak: %v, %d calls (%d over REST; %.0f/s) and a watch, %d writes, %d changes received and acknowledged by the consumer",
		duration, calls, s.restCalls.Load(), float64(calls)/duration.Seconds(), s.writes.Load(), s.feedChanges.Load())
	var series []string
	for _, h := range samples {
		series = append(series, mib(h))
	}
	t.Logf("Go heap in use (least of three readings, each after a GC) from the end of the %v warm-up: %s; goroutines %d -> %d",
		warmUp, strings.Join(series, " -> "), goroutinesStart, goroutinesEnd)
	perWrite := float64(int64(redisEnd)-int64(redisStart)) / float64(max(writesEnd-writesStart, 1))
	t.Logf("Redis used_memory %s -> %s over %d writes: %.0f bytes per write (state, history event, feed entry, idempotency record)",
		mib(redisStart), mib(redisEnd), writesEnd-writesStart, perWrite)

	// Flat: the heap at the end may exceed the heap after the warm-up by an
	// eighth of it plus 2 MiB, whatever the duration. consentd keeps no
	// per-subject or per-call state, so its live heap is connection
	// buffers, pools and caches that the warm-up has filled; readings in a
	// run without a leak spread over about 1 MiB (5.8 to 6.9 MiB here), so
	// the bound is about three times that spread. It is a memory bound, not
	// a timing one: a slower machine makes fewer calls, and the log says how
	// small a leak per call it would still have caught (about 150 bytes in
	// the default run here); a longer run catches smaller ones.
	limit := heapStart + heapStart/8 + 2<<20
	t.Logf("heap bound %s: a leak of %.0f bytes per call would exceed it in this run",
		mib(limit), float64(limit-heapStart)/float64(max(calls-callsStart, 1)))
	if heapEnd > limit {
		t.Errorf("Go heap grew from %s to %s during the soak (bound %s)", mib(heapStart), mib(heapEnd), mib(limit))
	}
	if goroutinesEnd > goroutinesStart+goroutineSlack {
		t.Errorf("goroutines grew from %d to %d during the soak", goroutinesStart, goroutinesEnd)
	}
	// Redis grows with the data written, not with the reads: a write adds a
	// history event, a feed entry and an idempotency record, together well
	// under 4 KiB; anything kept per read would add far more per write (the
	// soak makes several reads per write).
	if perWrite > 4096 {
		t.Errorf("Redis grew %.0f bytes per write, want under 4 KiB", perWrite)
	}
}

// heapInUse is the live heap, the least of three readings 50ms apart, each
// after a full collection: a reading also holds what the calls in flight at
// that moment hold (batches and filters of hundreds of ids: up to a few
// MiB), and the least of three leaves out such a spike, never a leak.
func heapInUse() (heap uint64, goroutines int) {
	heap = math.MaxUint64
	for i := range 3 {
		if i > 0 {
			time.Sleep(50 * time.Millisecond) // readings apart, not back to back
		}
		runtime.GC()
		runtime.GC() // the second empties the sync.Pools' victim caches the first filled
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		heap = min(heap, m.HeapAlloc)
	}
	return heap, runtime.NumGoroutine()
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func redisMemory(t *testing.T, rdb *goredis.Client) uint64 {
	t.Helper()
	info := rdb.Info(ctx(t), "memory").Val()
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no used_memory in INFO memory: %s", info)
	return 0
}

// startQuiet is start with a logger that keeps no call log (a long run
// would grow the test's heap with it), only a count of the warnings and
// errors consentd logs and the first of them; its client counts its unary
// calls.
func startQuiet(t *testing.T, redisURL string, tweak ...func(*config.Config)) (*consentd, *warningCounter, *atomic.Int64) {
	t.Helper()
	cfg := testConfig(t, redisURL)
	for _, f := range tweak {
		f(&cfg)
	}
	warnings := &warningCounter{}
	a, err := New(cfg, slog.New(warnings))
	if err != nil {
		t.Fatal(err)
	}
	stop := runInBackground(t, a)
	calls := &atomic.Int64{}
	counting := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		calls.Add(1)
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(withCredentials, counting), grpc.WithStreamInterceptor(withStreamCredentials))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &consentd{app: a, grpc: consentv1.NewConsentServiceClient(conn), conn: conn, baseURL: "http://" + a.HTTPAddr(), logs: &syncBuffer{}, stop: stop}, warnings, calls
}

// warningCounter is a slog handler that counts records at warning and above.
type warningCounter struct {
	mu    sync.Mutex
	n     int
	first string
}

func (w *warningCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (w *warningCounter) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n++; w.n == 1 {
		var b strings.Builder
		b.WriteString(r.Level.String() + " " + r.Message)
		r.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
		w.first = b.String()
	}
	return nil
}

func (w *warningCounter) WithAttrs([]slog.Attr) slog.Handler { return w }

func (w *warningCounter) WithGroup(string) slog.Handler { return w }

func (w *warningCounter) count() (int, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n, w.first
}
