package app

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/http"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/internal/eventually"
	"github.com/consentd/consentd/server/internal/redistest"
)

// Redis stalls (DEBUG SLEEP, several times --redis-timeout) while clients
// make every kind of call, over gRPC and REST, and a change-feed watch is
// open. Each call ends by itself before its own deadline: writes and reads
// with Unavailable (503), checks fail closed, the watch with Unavailable;
// none with DeadlineExceeded or any other error. Once Redis answers again,
// so does consentd, and the test process is back to the goroutines it had
// before: no call, connection or stream left anything waiting.
func TestResilienceSlowRedisCallsEndBeforeTheirDeadlineAndLeakNoGoroutine(t *testing.T) {
	redis := redistest.Start(t)
	const redisTimeout, sleep = 250 * time.Millisecond, "4"
	srv := start(t, redis.URL(), func(c *config.Config) { c.RedisTimeout = redisTimeout })
	web := &http.Client{Timeout: callTimeout, Transport: &http.Transport{}}
	t.Cleanup(web.CloseIdleConnections)
	// The client's deadline: twelve times --redis-timeout, and shorter than
	// the sleep, so that a call that waits on Redis without a bound fails
	// with DeadlineExceeded before Redis wakes up.
	const deadline = 3 * time.Second
	calls := slowCalls(t, srv, web)

	// Warm up: every call, with Redis well, from as many goroutines as
	// below, so that pools and lazily started goroutines are in the
	// baseline.
	const workers = 8
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range 3 * len(calls) {
				call := calls[(w+i)%len(calls)]
				c, cancel := within(deadline)
				if got := call.do(c); got != outcomeOK {
					t.Errorf("%s with Redis well: %s", call.name, got)
				}
				cancel()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	web.CloseIdleConnections()
	baseline := settledGoroutines(t)

	watchCtx, stopWatch := within(callTimeout)
	defer stopWatch()
	watch, err := srv.grpc.WatchConsentChanges(as(watchCtx, apiKeys["watch"]), &consentv1.WatchConsentChangesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil {
		t.Fatalf("the watch's first message: %v", err)
	}
	watchEnded := make(chan error, 1)
	go func() {
		for {
			if _, err := watch.Recv(); err != nil {
				watchEnded <- err
				return
			}
		}
	}()

	sleeper := goredis.NewClient(&goredis.Options{Addr: redis.Addr(), ReadTimeout: 30 * time.Second, MaxRetries: -1})
	defer sleeper.Close()
	slept := make(chan struct{})
	go func() {
		defer close(slept)
		if err := sleeper.Do(context.Background(), "DEBUG", "SLEEP", sleep).Err(); err != nil {
			t.Errorf("DEBUG SLEEP: %v", err)
		}
	}()
	waitAsleep(t, redis)

	// Calls until Redis wakes up.
	var mu sync.Mutex
	outcomes := map[string]int{}
	for w := range workers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-slept:
					return
				default:
				}
				call := calls[(w+i)%len(calls)]
				c, cancel := within(deadline)
				got := call.do(c)
				cancel()
				mu.Lock()
				outcomes[call.name+": "+string(got)]++
				mu.Unlock()
				if !call.allowed[got] {
					t.Errorf("%s with Redis stalled: %s, want one of %v", call.name, got, slices.Sorted(maps.Keys(call.allowed)))
				}
			}
		})
	}
	wg.Wait()
	if err := <-watchEnded; status.Code(err) != codes.Unavailable {
		t.Errorf("the watch open while Redis stalled ended with %v, want Unavailable", err)
	}
	failed := 0
	for k, n := range outcomes {
		if !strings.HasSuffix(k, ": "+string(outcomeOK)) {
			failed += n
		}
	}
	if failed == 0 {
		t.Errorf("no call failed while Redis slept: the test did not stall it (outcomes %v)", outcomes)
	}

	// Redis is back; so is consentd.
	eventually.True(t, "a write to succeed after the stall", func() bool {
		c, cancel := within(deadline)
		defer cancel()
		_, err := srv.grpc.UpdateConsent(c, &consentv1.UpdateConsentRequest{SubjectId: "slow-after", Decisions: map[string]bool{"ads": true}})
		return err == nil
	})
	stopWatch()
	web.CloseIdleConnections()
	after := 0
	defer func() {
		if t.Failed() {
			var b bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
			t.Logf("goroutines now (%d, baseline %d):\n%s", runtime.NumGoroutine(), baseline, b.String())
		}
	}()
	eventually.True(t, "the goroutines to come back to the baseline", func() bool {
		after = runtime.NumGoroutine()
		return after <= baseline+goroutineSlack
	})
	for _, k := range slices.Sorted(maps.Keys(outcomes)) {
		t.Logf("  %-40s %d", k, outcomes[k])
	}
	t.Logf("Redis stalled %ss (--redis-timeout %v, each call's deadline %v): %d calls failed by themselves, none reached its deadline; goroutines %d before, %d after",
		sleep, redisTimeout, deadline, failed, baseline, after)
}

// goroutineSlack is what the runtime and the libraries may start or end on
// their own between two counts (a GC worker, a timer, an idle connection's
// reader closing late); a leak of one goroutine per call, stream or
// connection is far more.
const goroutineSlack = 3

// settledGoroutines is the goroutine count once two readings agree.
func settledGoroutines(t *testing.T) int {
	t.Helper()
	prev := -1
	n := 0
	eventually.True(t, "the goroutine count to settle", func() bool {
		n = runtime.NumGoroutine()
		settled := n == prev
		prev = n
		if !settled {
			time.Sleep(20 * time.Millisecond) // two readings apart, not back to back
		}
		return settled
	})
	return n
}

type outcome string

const (
	outcomeOK          outcome = "ok"
	outcomeUnavailable outcome = "unavailable"
	outcomeFailClosed  outcome = "failed closed"
)

// slowCall is one kind of call; do says what it got: ok, unavailable
// (Unavailable, or 503), failed closed (a check answered denied, store
// unavailable, revision 0), or what else came back.
type slowCall struct {
	name    string
	do      func(context.Context) outcome
	allowed map[outcome]bool // while Redis may be asleep
}

func slowCalls(t *testing.T, srv *consentd, web *http.Client) []slowCall {
	var n atomic.Int64
	grpcOutcome := func(err error) outcome {
		switch status.Code(err) {
		case codes.OK:
			return outcomeOK
		case codes.Unavailable:
			return outcomeUnavailable
		}
		return outcome(status.Code(err).String() + " " + status.Convert(err).Message())
	}
	checkOutcome := func(allowed bool, reason consentv1.Reason, revision int64) outcome {
		if reason != consentv1.Reason_REASON_STORE_UNAVAILABLE {
			return outcomeOK
		}
		if allowed || revision != 0 {
			return outcome(fmt.Sprintf("store unavailable but allowed %v at revision %d", allowed, revision))
		}
		return outcomeFailClosed
	}
	restOutcome := func(code int, body map[string]any, err error) outcome {
		switch {
		case err != nil:
			return outcome("no answer: " + err.Error())
		case code == http.StatusOK && jsonPath(body, "reason") == "REASON_STORE_UNAVAILABLE":
			if rev := jsonPath(body, "revision"); jsonPath(body, "allowed") != "false" || (rev != "<missing>" && rev != "0") {
				return outcome(fmt.Sprintf("store unavailable but %v", body))
			}
			return outcomeFailClosed
		case code == http.StatusOK:
			return outcomeOK
		case code == http.StatusServiceUnavailable:
			return outcomeUnavailable
		}
		return outcome(fmt.Sprintf("HTTP %d %v", code, body))
	}
	readOrWrite := map[outcome]bool{outcomeOK: true, outcomeUnavailable: true}
	check := map[outcome]bool{outcomeOK: true, outcomeFailClosed: true}
	own := tokenFor(t, "slow-1", time.Now(), time.Hour)
	return []slowCall{
		{"gRPC UpdateConsent", func(c context.Context) outcome {
			// One number per call: Add then Load could read another
			// worker's number, and reuse its key for other decisions.
			i := n.Add(1)
			_, err := srv.grpc.UpdateConsent(c, &consentv1.UpdateConsentRequest{SubjectId: "slow-1",
				Decisions: map[string]bool{"ads": i%2 == 0}, IdempotencyKey: fmt.Sprintf("slow-%d", i)})
			return grpcOutcome(err)
		}, readOrWrite},
		{"gRPC GetConsent", func(c context.Context) outcome {
			_, err := srv.grpc.GetConsent(c, &consentv1.GetConsentRequest{SubjectId: "slow-1"})
			return grpcOutcome(err)
		}, readOrWrite},
		{"gRPC ListConsentEvents", func(c context.Context) outcome {
			_, err := srv.grpc.ListConsentEvents(as(c, own), &consentv1.ListConsentEventsRequest{SubjectId: "slow-1", PageSize: 10})
			return grpcOutcome(err)
		}, readOrWrite},
		{"gRPC FilterSubjects", func(c context.Context) outcome {
			_, err := srv.grpc.FilterSubjects(c, &consentv1.FilterSubjectsRequest{Purpose: "ads", SubjectIds: []string{"slow-1", "slow-2"}})
			return grpcOutcome(err)
		}, readOrWrite},
		{"gRPC CheckConsent", func(c context.Context) outcome {
			r, err := srv.grpc.CheckConsent(c, &consentv1.CheckConsentRequest{SubjectId: "slow-1", Purpose: "ads"})
			if err != nil {
				return grpcOutcome(err)
			}
			return checkOutcome(r.GetAllowed(), r.GetReason(), r.GetRevision())
		}, check},
		{"gRPC BatchCheckConsent", func(c context.Context) outcome {
			r, err := srv.grpc.BatchCheckConsent(c, &consentv1.BatchCheckConsentRequest{Checks: []*consentv1.ConsentCheck{
				{SubjectId: "slow-1", Purpose: "ads"}, {SubjectId: "slow-2", Purpose: "analytics"}}})
			if err != nil {
				return grpcOutcome(err)
			}
			return checkOutcome(r.GetResults()[0].GetAllowed(), r.GetResults()[0].GetReason(), r.GetResults()[0].GetRevision())
		}, check},
		{"REST PATCH consent", func(c context.Context) outcome {
			i := n.Add(1)
			return restOutcome(restCallContext(c, web, srv, "PATCH", "/v1/subjects/slow-2/consent",
				fmt.Sprintf(`{"decisions": {"analytics": %v}, "idempotency_key": "slow-rest-%d"}`, i%2 == 0, i)))
		}, readOrWrite},
		{"REST check", func(c context.Context) outcome {
			return restOutcome(restCallContext(c, web, srv, "GET", "/v1/subjects/slow-2/purposes/analytics:check", ""))
		}, check},
	}
}
