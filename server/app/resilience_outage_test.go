package app

import (
	"context"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/internal/eventually"
	"github.com/consentd/consentd/server/internal/redistest"
)

// consentd's Redis becomes unreachable in three ways: nothing listens on its
// address (connections refused), something accepts connections and never
// answers (a black hole: a dead host behind a live load balancer, a
// firewall dropping replies), or every connection is reset. Writes and
// reads fail with Unavailable, a burst of them too (none waits past its
// deadline); checks fail closed; /readyz fails, /healthz does not. Then
// Redis is reachable again and consentd serves it, with its data, without a
// restart.
func TestResilienceUnreachableRedisFailsCallsFastChecksClosedThenConsentdRecovers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault frontMode
	}{
		{"nothing listening", frontClosed},
		{"black hole", frontBlackHole},
		{"connections reset", frontReset},
	} {
		t.Run(tc.name, func(t *testing.T) {
			front := startFront(t, redistest.Start(t).Addr())
			srv := start(t, "redis://"+front.addr+"/0", func(c *config.Config) { c.RedisTimeout = outageRedisTimeout })
			web := &http.Client{Timeout: callTimeout, Transport: &http.Transport{}}
			t.Cleanup(web.CloseIdleConnections)
			must(srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: "u", Region: "DE",
				Decisions: map[string]bool{"analytics": true}, IdempotencyKey: "u-1"})).ok(t)

			front.set(t, tc.fault)
			calls, slowest, slowestCall := outageCalls(t, srv, web)
			t.Logf("%s: %d calls answered, the slowest in %v (%s), with --redis-timeout %v",
				tc.name, calls, slowest.Round(time.Millisecond), slowestCall, outageRedisTimeout)

			front.set(t, frontForward)
			back := time.Now()
			eventually.True(t, "consentd to read from Redis again", func() bool {
				c, cancel := within(callTimeout)
				defer cancel()
				check, err := srv.grpc.CheckConsent(c, &consentv1.CheckConsentRequest{SubjectId: "u", Purpose: "analytics", Region: "DE"})
				if err != nil {
					t.Fatalf("check: %v", err)
				}
				return check.GetReason() != consentv1.Reason_REASON_STORE_UNAVAILABLE
			})
			t.Logf("%s: consentd read from Redis again %v after it was reachable", tc.name, time.Since(back).Round(time.Millisecond))
			check := must(srv.grpc.CheckConsent(ctx(t), &consentv1.CheckConsentRequest{SubjectId: "u", Purpose: "analytics", Region: "DE"})).ok(t)
			if !check.GetAllowed() || check.GetReason() != consentv1.Reason_REASON_EXPLICIT || check.GetRevision() != 1 {
				t.Fatalf("check after Redis returned: %v, want the stored grant at revision 1", check)
			}
			// The write the outage refused, retried with its key, applies
			// once (none of its attempts reached Redis: the front forwards
			// nothing while it fails).
			up := must(srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: "u", Region: "DE",
				Decisions: map[string]bool{"analytics": false}, IdempotencyKey: "u-outage"})).ok(t)
			if up.GetConsent().GetRevision() != 2 {
				t.Fatalf("the write retried after the outage: revision %d, want 2", up.GetConsent().GetRevision())
			}
			if code, _, err := restCall(web, srv, "GET", "/readyz", ""); err != nil || code != http.StatusOK {
				t.Fatalf("/readyz after Redis returned = %d, %v", code, err)
			}
		})
	}
}

// outageRedisTimeout is --redis-timeout in the outage tests.
const outageRedisTimeout = 200 * time.Millisecond

// outageCalls makes every kind of call with Redis unreachable and checks
// the answers. It returns how many calls it made and the slowest of them,
// for the log.
func outageCalls(t *testing.T, srv *consentd, web *http.Client) (calls int, slowest time.Duration, slowestCall string) {
	t.Helper()
	var mu sync.Mutex
	timed := func(name string, call func()) {
		began := time.Now()
		call()
		took := time.Since(began)
		mu.Lock()
		defer mu.Unlock()
		calls++
		if took > slowest {
			slowest, slowestCall = took, name
		}
	}
	// A burst of writes, more than the connection pool holds (20 on two
	// cores): those without a connection wait for one at most
	// --redis-timeout too. Each has a deadline of its own far beyond that,
	// so a call that waited without a bound says DeadlineExceeded.
	const burst = 48
	codesSeen := make([]codes.Code, burst)
	var wg sync.WaitGroup
	for i := range burst {
		wg.Go(func() {
			timed("UpdateConsent in a burst", func() {
				c, cancel := within(callTimeout)
				defer cancel()
				_, err := srv.grpc.UpdateConsent(c, &consentv1.UpdateConsentRequest{SubjectId: "u", Region: "DE",
					Decisions: map[string]bool{"analytics": false}, IdempotencyKey: "u-outage"})
				codesSeen[i] = status.Code(err)
			})
		})
	}
	wg.Wait()
	for i, code := range codesSeen {
		if code != codes.Unavailable {
			t.Fatalf("write %d of a burst of %d with Redis unreachable: %v, want Unavailable (each of them)", i, burst, code)
		}
	}

	unavailable := map[string]func(context.Context) error{
		"GetConsent": func(c context.Context) error {
			_, err := srv.grpc.GetConsent(c, &consentv1.GetConsentRequest{SubjectId: "u"})
			return err
		},
		"WithdrawConsent": func(c context.Context) error {
			_, err := srv.grpc.WithdrawConsent(c, &consentv1.WithdrawConsentRequest{SubjectId: "u"})
			return err
		},
		"FilterSubjects": func(c context.Context) error {
			_, err := srv.grpc.FilterSubjects(c, &consentv1.FilterSubjectsRequest{Purpose: "analytics", SubjectIds: []string{"u"}})
			return err
		},
		"ListConsentEvents": func(c context.Context) error {
			_, err := srv.grpc.ListConsentEvents(c, &consentv1.ListConsentEventsRequest{SubjectId: "u", Reason: "test"})
			return err
		},
		"WatchConsentChanges": func(c context.Context) error {
			stream, err := srv.grpc.WatchConsentChanges(c, &consentv1.WatchConsentChangesRequest{})
			if err != nil {
				return err
			}
			_, err = stream.Recv()
			return err
		},
	}
	for _, name := range slices.Sorted(maps.Keys(unavailable)) {
		var err error
		timed(name, func() {
			c, cancel := within(callTimeout)
			defer cancel()
			err = unavailable[name](c)
		})
		if status.Code(err) != codes.Unavailable {
			t.Errorf("%s with Redis unreachable: %v, want Unavailable", name, err)
		}
	}

	for purpose, want := range map[string]consentv1.Reason{"analytics": consentv1.Reason_REASON_STORE_UNAVAILABLE, "necessary": consentv1.Reason_REASON_NECESSARY} {
		var check *consentv1.CheckConsentResponse
		var err error
		timed("CheckConsent "+purpose, func() {
			c, cancel := within(callTimeout)
			defer cancel()
			check, err = srv.grpc.CheckConsent(c, &consentv1.CheckConsentRequest{SubjectId: "u", Purpose: purpose, Region: "DE"})
		})
		if err != nil || check.GetReason() != want || check.GetAllowed() != (purpose == "necessary") || check.GetRevision() != 0 {
			t.Errorf("check of %s with Redis unreachable: %v, %v; want fail-closed %v at revision 0", purpose, check, err, want)
		}
	}
	var batch *consentv1.BatchCheckConsentResponse
	var err error
	timed("BatchCheckConsent", func() {
		c, cancel := within(callTimeout)
		defer cancel()
		batch, err = srv.grpc.BatchCheckConsent(c, &consentv1.BatchCheckConsentRequest{Checks: []*consentv1.ConsentCheck{
			{SubjectId: "u", Purpose: "analytics"}, {SubjectId: "u", Purpose: "necessary"}}})
	})
	if err != nil || len(batch.GetResults()) != 2 || batch.GetResults()[0].GetAllowed() ||
		batch.GetResults()[0].GetReason() != consentv1.Reason_REASON_STORE_UNAVAILABLE || !batch.GetResults()[1].GetAllowed() {
		t.Errorf("batch check with Redis unreachable: %v, %v; want analytics denied (store unavailable), necessary allowed", batch, err)
	}

	for _, tc := range []struct {
		method, path, body string
		code               int
		reason             string
	}{
		{"PATCH", "/v1/subjects/u/consent", `{"decisions": {"ads": false}, "idempotency_key": "u-rest"}`, 503, ""},
		{"GET", "/v1/subjects/u/consent", "", 503, ""},
		{"GET", "/v1/subjects/u/purposes/analytics:check", "", 200, "REASON_STORE_UNAVAILABLE"},
		{"GET", "/readyz", "", 503, ""},
		{"GET", "/healthz", "", 200, ""},
	} {
		var code int
		var body map[string]any
		var err error
		timed("REST "+tc.method+" "+tc.path, func() { code, body, err = restCall(web, srv, tc.method, tc.path, tc.body) })
		if err != nil || code != tc.code || (tc.reason != "" && (jsonPath(body, "reason") != tc.reason || jsonPath(body, "allowed") != "false")) {
			t.Errorf("%s %s with Redis unreachable: %d %v, %v; want %d %s", tc.method, tc.path, code, body, err, tc.code, tc.reason)
		}
	}
	return calls, slowest, slowestCall
}

// restCall is a REST call with the admin key that any goroutine may make:
// it returns what came back, or the error of a call that got no answer
// (the client's timeout).
func restCall(web *http.Client, srv *consentd, method, path, body string) (int, map[string]any, error) {
	return restCallContext(context.Background(), web, srv, method, path, body)
}

type frontMode int

const (
	frontForward   frontMode = iota // a plain TCP proxy to Redis
	frontBlackHole                  // accepts, reads, never answers
	frontReset                      // accepts and resets at once
	frontClosed                     // nothing listens: connections are refused
)

// redisFront stands at a fixed loopback address in front of a real Redis,
// and fails the way the test tells it to.
type redisFront struct {
	addr, backend string

	mu    sync.Mutex
	mode  frontMode
	ln    net.Listener // nil while closed
	conns map[net.Conn]bool
	wg    sync.WaitGroup // the accept loop and the copiers
}

func startFront(t *testing.T, backend string) *redisFront {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &redisFront{addr: ln.Addr().String(), backend: backend, ln: ln, conns: map[net.Conn]bool{}}
	f.serve(ln)
	t.Cleanup(func() {
		f.mu.Lock()
		if f.ln != nil {
			f.ln.Close()
		}
		f.cutLocked()
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func (f *redisFront) serve(ln net.Listener) {
	f.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.handle(c)
		}
	})
}

func (f *redisFront) handle(c net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch f.mode {
	case frontReset:
		_ = c.(*net.TCPConn).SetLinger(0)
		c.Close()
	case frontBlackHole:
		f.conns[c] = true
		f.wg.Go(func() { _, _ = io.Copy(io.Discard, c) })
	default:
		b, err := net.Dial("tcp", f.backend)
		if err != nil {
			c.Close()
			return
		}
		f.conns[c], f.conns[b] = true, true
		f.wg.Go(func() { _, _ = io.Copy(b, c); b.Close() })
		f.wg.Go(func() { _, _ = io.Copy(c, b); c.Close() })
	}
}

// set switches the mode. Open connections are cut, so that no pooled
// connection keeps the old behaviour.
func (f *redisFront) set(t *testing.T, mode frontMode) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cutLocked()
	switch {
	case mode == frontClosed && f.ln != nil:
		f.ln.Close()
		f.ln = nil
	case mode != frontClosed && f.ln == nil:
		// The address was ours a moment ago; only another process binding
		// it in between makes this fail.
		ln, err := net.Listen("tcp", f.addr)
		if err != nil {
			t.Fatalf("listening on %s again: %v", f.addr, err)
		}
		f.ln = ln
		f.serve(ln)
	}
	f.mode = mode
}

func (f *redisFront) cutLocked() {
	for c := range f.conns {
		c.Close()
	}
	clear(f.conns)
}
