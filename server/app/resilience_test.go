package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/internal/eventually"
	"github.com/consentd/consentd/server/internal/redistest"
)

// Resilience: what consentd does when its Redis is killed (kill -9, with
// the append-only file deploy/ ships), unreachable or stalled, and whether
// a long mixed load leaves its memory flat. consentd runs in-process against
// real redis-server processes. Nothing here asserts how long anything took:
// every call carries a generous deadline of its own, and a call that waited
// on Redis without a bound would come back DeadlineExceeded, not Unavailable.
//
// `make test-resilience` runs only these, verbosely (they print what the
// clients saw); CONSENTD_SOAK=3m makes the soak longer.

// callTimeout is each call's own deadline: far beyond --redis-timeout, so
// that only a call that waits on Redis without a bound reaches it.
const callTimeout = 10 * time.Second

func within(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// --- kill -9 -------------------------------------------------------------------

// Redis with appendfsync always is killed (SIGKILL) while writers write, and
// restarted on the same port and data directory: it replays its append-only
// file. consentd is not restarted. Every write carries an idempotency key;
// a writer retries a write that failed with the same key until it is
// acknowledged. Before any retry reaches the restarted Redis, every write
// acknowledged before the kill must be there; at the end each subject's
// history must be exactly its acknowledged writes, in order, once each, with
// consecutive revisions and a valid hash chain. One write is made to fail
// while Redis sleeps past --redis-timeout (Redis applies it on waking if the
// sleep caught its write script, not its read): retried after the restart
// with its key, it must apply once.
//
// What a process kill cannot show: the write Redis made to its file before
// replying survives in the OS page cache whatever the fsync policy
// (appendfsync no passes this test too). appendfsync always is what keeps
// acknowledged writes through a machine crash or power loss, which no test
// on one machine can cause; this one proves the file is written before the
// reply, replayed on start, and that retries apply once.
func TestResilienceRedisKilledUnderWriteLoadKeepsEveryAcknowledgedWriteOnce(t *testing.T) {
	redis := redistest.StartDurable(t)
	srv := start(t, redis.URL())
	var subjects []string
	for i := range 16 {
		subjects = append(subjects, fmt.Sprintf("kill9-%02d", i))
	}
	const lostAck = "kill9-lost-ack"
	load := newWriteLoad(srv, append(slices.Clone(subjects), lostAck))

	// Write 1 is acknowledged. Write 2 goes out while Redis sleeps past
	// --redis-timeout (500ms): consentd answers Unavailable. Its writer
	// holds the retry until after the restart.
	load.hold(lostAck)
	load.step(lostAck)
	sleeper := goredis.NewClient(&goredis.Options{Addr: redis.Addr(), ReadTimeout: 10 * time.Second, MaxRetries: -1})
	defer sleeper.Close()
	slept := make(chan error, 1)
	go func() { slept <- sleeper.Do(context.Background(), "DEBUG", "SLEEP", "1.5").Err() }()
	waitAsleep(t, redis)
	load.step(lostAck)
	if err := <-slept; err != nil {
		t.Fatalf("DEBUG SLEEP: %v", err)
	}
	if l := load.log(lostAck); len(l.acks) != 1 || !l.pending || l.failedAttempts != 1 {
		t.Fatalf("%s: %d acknowledged, pending %v after %d failed attempts; want write 1 acknowledged and write 2 failed once",
			lostAck, len(l.acks), l.pending, l.failedAttempts)
	}
	// What Redis received while asleep it runs on waking: the write's read,
	// and its write if the sleep began between the two (then the write is
	// applied with its reply lost). Either way the retry must apply it once.
	eventually.True(t, "Redis to wake", func() bool { return revisionOf(t, srv, lostAck) >= 1 })

	load.run()
	t.Cleanup(load.abort)
	eventually.True(t, "ten acknowledged writes to every subject", func() bool {
		return load.subjectsWithAcks(subjects, 10) == len(subjects)
	})

	inFlight := load.inFlight.Load()
	redis.Stop() // SIGKILL
	eventually.True(t, "every writer to see a write fail", func() bool { return load.subjectsFailing(subjects) == len(subjects) })

	// No writer reaches the new Redis before the test has read what it kept.
	kept := map[string]int64{}
	func() {
		load.gate.Lock()
		defer load.gate.Unlock()
		redis.Restart() // same port and directory: the append-only file is replayed
		for _, s := range append(slices.Clone(subjects), lostAck) {
			eventually.True(t, "consentd to read "+s+" from the restarted Redis", func() bool {
				kept[s] = revisionOf(t, srv, s)
				return kept[s] >= 0
			})
		}
	}()
	lostAtKill, appliedUnacknowledged := 0, 0
	for s, rev := range kept {
		l := load.log(s)
		last := l.acks[len(l.acks)-1].revision
		switch {
		case rev < last:
			lostAtKill++
			t.Errorf("%s: Redis came back at revision %d; revision %d was acknowledged before the kill", s, rev, last)
		case rev > last+1 || (rev == last+1 && !l.pending):
			t.Errorf("%s: Redis came back at revision %d, beyond the last acknowledged %d and the one write pending (%v)", s, rev, last, l.pending)
		case rev == last+1:
			appliedUnacknowledged++ // pending: applied, its reply lost; the retry must not apply it again
		}
	}
	if kept[lostAck] != 1 && kept[lostAck] != 2 {
		t.Errorf("%s: revision %d after the restart, want 1, or 2 if the write applied while consentd had given up on it", lostAck, kept[lostAck])
	}
	restartedAt := time.Now()
	load.release(lostAck)

	// consentd follows by itself: every subject is written again, three times.
	eventually.True(t, "three acknowledged writes to every subject after the restart", func() bool {
		return load.subjectsWithAcksSince(restartedAt, 3) == len(subjects)+1
	})
	load.finish()

	var lost, duplicated, acked, retried int
	for _, s := range append(slices.Clone(subjects), lostAck) {
		l, d := verifyHistory(t, srv, s, load.log(s).acks)
		lost, duplicated = lost+l, duplicated+d
		acked += len(load.log(s).acks)
		retried += load.log(s).retriedWrites
	}
	if l := load.log(lostAck); len(l.acks) < 2 || l.acks[1].revision != 2 || l.acks[1].counter != 2 {
		t.Errorf("%s: acknowledged (write@revision) %s; want write 2, retried after the restart, acknowledged at revision 2 (the stored result, not a second application)", lostAck, acksOf(l.acks))
	}
	load.report(t)
	t.Logf("kill -9 under load: %d writes in flight at the kill; Redis came back with every acknowledged write (%d missing) "+
		"and %d applied whose reply was lost (one forced)", inFlight, lostAtKill, appliedUnacknowledged)
	t.Logf("in the end: %d writes acknowledged, %d of them only after a failed attempt retried with the same key; lost %d, duplicated %d",
		acked, retried, lost, duplicated)
}

// acksOf formats acknowledged writes as write@revision.
func acksOf(acks []ackedWrite) string {
	var out []string
	for _, a := range acks {
		out = append(out, fmt.Sprintf("%d@%d", a.counter, a.revision))
	}
	return strings.Join(out, " ")
}

// waitAsleep returns once Redis stops answering (DEBUG SLEEP has begun).
func waitAsleep(t *testing.T, redis *redistest.Server) {
	t.Helper()
	prober := goredis.NewClient(&goredis.Options{Addr: redis.Addr(), ReadTimeout: 20 * time.Millisecond, MaxRetries: -1})
	defer prober.Close()
	eventually.True(t, "Redis to be asleep", func() bool { return prober.Ping(context.Background()).Err() != nil })
}

// revisionOf reads a subject's revision through consentd; -1 while consentd
// answers Unavailable. Any other error fails the test.
func revisionOf(t *testing.T, srv *consentd, subject string) int64 {
	t.Helper()
	c, cancel := within(callTimeout)
	defer cancel()
	resp, err := srv.grpc.GetConsent(c, &consentv1.GetConsentRequest{SubjectId: subject})
	if status.Code(err) == codes.Unavailable {
		return -1
	}
	if err != nil {
		t.Fatalf("reading %s: %v, want an answer or Unavailable", subject, err)
	}
	return resp.GetConsent().GetRevision()
}

// writeLoad is the writers of the kill test. Each subject has one writer,
// which writes counters 1, 2, 3... (decisionsFor: every write changes the
// state, and the state says which write it is), each with its own
// idempotency key, retries a failed write with the same key until it is
// acknowledged, and checks each acknowledged write (min_revision).
type writeLoad struct {
	srv      *consentd
	subjects []string
	// gate: each call is made holding it for reading; the test holds it for
	// writing while it reads what Redis kept.
	gate     sync.RWMutex
	inFlight atomic.Int64 // writes sent and not answered yet

	mu     sync.Mutex
	logs   map[string]*writerLog
	held   map[string]bool    // subjects whose writer waits
	failed map[codes.Code]int // failed write attempts by code
	checks map[string]int     // check answers: "answered", "failed closed"
	wrong  []string           // what no client may ever see
	stop   chan struct{}      // finish: complete the pending writes, then return
	quit   chan struct{}      // abort: return now
	done   sync.WaitGroup     // the workers
	once   sync.Once          // closes quit
}

type writerLog struct {
	counter        int  // of the last write issued
	pending        bool // that write is not acknowledged yet
	failedAttempts int  // of the pending write
	retriedWrites  int  // writes acknowledged after a failed attempt
	acks           []ackedWrite
}

func newWriteLoad(srv *consentd, subjects []string) *writeLoad {
	l := &writeLoad{srv: srv, subjects: subjects, logs: map[string]*writerLog{}, held: map[string]bool{},
		failed: map[codes.Code]int{}, checks: map[string]int{}, stop: make(chan struct{}), quit: make(chan struct{})}
	for _, s := range subjects {
		l.logs[s] = &writerLog{}
	}
	return l
}

func (l *writeLoad) hold(subject string)    { l.mu.Lock(); l.held[subject] = true; l.mu.Unlock() }
func (l *writeLoad) release(subject string) { l.mu.Lock(); delete(l.held, subject); l.mu.Unlock() }

// log is a copy of what subject's writer did.
func (l *writeLoad) log(subject string) writerLog {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := *l.logs[subject]
	c.acks = slices.Clone(c.acks)
	return c
}

// subjectsFailing counts the subjects whose pending write has failed.
func (l *writeLoad) subjectsFailing(subjects []string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range subjects {
		if l.logs[s].pending && l.logs[s].failedAttempts > 0 {
			n++
		}
	}
	return n
}

// step writes subject's next counter, or retries its pending write, then
// checks an acknowledged write.
func (l *writeLoad) step(subject string) {
	l.gate.RLock()
	defer l.gate.RUnlock()
	l.mu.Lock()
	log := l.logs[subject]
	if !log.pending {
		if log.counter == maxCounter {
			l.wrong = append(l.wrong, subject+": more writes than counterPurposes can tell apart; make the run shorter")
			l.mu.Unlock()
			return
		}
		log.counter++
		log.pending = true
	}
	counter := log.counter
	l.mu.Unlock()

	c, cancel := within(callTimeout)
	defer cancel()
	l.inFlight.Add(1)
	resp, err := l.srv.grpc.UpdateConsent(c, &consentv1.UpdateConsentRequest{SubjectId: subject, Region: "DE",
		Decisions: decisionsFor(counter), IdempotencyKey: fmt.Sprintf("%s-w%d", subject, counter)})
	l.inFlight.Add(-1)
	l.mu.Lock()
	if err != nil {
		l.failed[status.Code(err)]++
		log.failedAttempts++
		if status.Code(err) != codes.Unavailable {
			l.wrong = append(l.wrong, fmt.Sprintf("%s write %d: %v (only Unavailable means retry)", subject, counter, err))
		}
		l.mu.Unlock()
		return
	}
	revision := resp.GetConsent().GetRevision()
	if log.failedAttempts > 0 {
		log.retriedWrites++
	}
	log.pending, log.failedAttempts = false, 0
	log.acks = append(log.acks, ackedWrite{counter, revision, time.Now()})
	l.mu.Unlock()

	// A check after the write: the write's answer, or, Redis down, denied
	// with nothing read. Never an error.
	check, err := l.srv.grpc.CheckConsent(c, &consentv1.CheckConsentRequest{SubjectId: subject, Purpose: "analytics", Region: "DE", MinRevision: revision})
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err != nil:
		l.wrong = append(l.wrong, fmt.Sprintf("%s check after write %d: %v, want an answer (fail-closed when Redis is down)", subject, counter, err))
	case check.GetReason() == consentv1.Reason_REASON_STORE_UNAVAILABLE:
		l.checks["failed closed"]++
		if check.GetAllowed() || check.GetRevision() != 0 {
			l.wrong = append(l.wrong, fmt.Sprintf("%s: a check answered without the store: %v, want denied at revision 0", subject, check))
		}
	default:
		l.checks["answered"]++
		if check.GetRevision() == revision && check.GetAllowed() != decisionsFor(counter)["analytics"] {
			l.wrong = append(l.wrong, fmt.Sprintf("%s: check at revision %d = %v, but write %d set analytics %v", subject, revision, check, counter, decisionsFor(counter)["analytics"]))
		}
	}
}

// run starts the workers: four, each with its share of the subjects.
func (l *writeLoad) run() {
	const workers = 4
	for w := range workers {
		l.done.Add(1)
		go func() {
			defer l.done.Done()
			var own []string
			for i, s := range l.subjects {
				if i%workers == w {
					own = append(own, s)
				}
			}
			stopping := false
			for {
				select {
				case <-l.quit:
					return
				case <-l.stop:
					stopping = true
				default:
				}
				pending := false
				for _, s := range own {
					l.mu.Lock()
					held, isPending := l.held[s], l.logs[s].pending
					l.mu.Unlock()
					if held || (stopping && !isPending) {
						continue
					}
					l.step(s)
					l.mu.Lock()
					pending = pending || l.logs[s].pending
					l.mu.Unlock()
				}
				if stopping && !pending {
					return
				}
				time.Sleep(time.Millisecond) // pacing: a busy service, not a flood
			}
		}()
	}
}

// finish lets every pending write complete, then stops the workers.
func (l *writeLoad) finish() { close(l.stop); l.done.Wait() }

// abort stops the workers at once (the test has failed or finished).
func (l *writeLoad) abort() { l.once.Do(func() { close(l.quit) }); l.done.Wait() }

func (l *writeLoad) subjectsWithAcks(subjects []string, n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	count := 0
	for _, s := range subjects {
		if len(l.logs[s].acks) >= n {
			count++
		}
	}
	return count
}

func (l *writeLoad) subjectsWithAcksSince(at time.Time, n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	count := 0
	for _, log := range l.logs {
		if acksSince(log.acks, at) >= n {
			count++
		}
	}
	return count
}

func (l *writeLoad) report(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, w := range l.wrong {
		t.Error(w)
	}
	for _, code := range slices.Sorted(maps.Keys(l.failed)) {
		t.Logf("  failed write attempts, %v: %d", code, l.failed[code])
	}
	t.Logf("  checks after a write: %d answered, %d failed closed (Redis down)", l.checks["answered"], l.checks["failed closed"])
}

// verifyHistory checks subject's history against the writes its writer was
// told were done (all of them, in the end), and returns how many of those
// are missing and how many writes are in it more than once.
func verifyHistory(t *testing.T, srv *consentd, subject string, acks []ackedWrite) (lost, duplicated int) {
	t.Helper()
	own := as(ctx(t), tokenFor(t, subject, time.Now(), time.Hour))
	consent := must(srv.grpc.GetConsent(own, &consentv1.GetConsentRequest{SubjectId: subject})).ok(t).GetConsent()
	events := allEvents(t, srv, own, subject)
	if int64(len(events)) != consent.GetRevision() {
		t.Errorf("%s: revision %d with %d events", subject, consent.GetRevision(), len(events))
	}
	state := map[string]bool{}
	var applied []int // the write each event holds, oldest first
	times := map[int]int{}
	for i, e := range events {
		if e.GetRevision() != int64(i+1) || (i > 0 && e.GetPrevHash() != events[i-1].GetHash()) {
			t.Errorf("%s: event %d has revision %d and previous hash %q after %q", subject, i, e.GetRevision(), e.GetPrevHash(), events[max(i-1, 0)].GetHash())
		}
		for _, ch := range e.GetChanges() {
			state[ch.GetPurpose()] = ch.GetNewGranted()
		}
		applied = append(applied, counterOf(state))
		times[counterOf(state)]++
	}
	for counter, n := range times {
		if n > 1 {
			duplicated += n - 1
			t.Errorf("%s: write %d applied %d times", subject, counter, n)
		}
	}
	var ackedCounters []int
	for _, a := range acks {
		ackedCounters = append(ackedCounters, a.counter)
		if a.revision < 1 || a.revision > int64(len(applied)) || applied[a.revision-1] != a.counter {
			lost++
			t.Errorf("%s: write %d was acknowledged at revision %d; the history does not hold it there", subject, a.counter, a.revision)
		}
	}
	if !slices.Equal(applied, ackedCounters) {
		t.Errorf("%s: the history holds writes %v; the writer was told %v were done", subject, applied, ackedCounters)
	}
	current := map[string]bool{}
	for _, p := range consent.GetPurposes() {
		if p.GetDecision() != nil {
			current[p.GetPurpose()] = p.GetDecision().GetGranted()
		}
	}
	if !maps.Equal(current, state) {
		t.Errorf("%s: the state %v is not what its history adds up to %v", subject, current, state)
	}
	export := must(srv.grpc.ExportSubject(as(ctx(t), apiKeys["rights"]), &consentv1.ExportSubjectRequest{SubjectId: subject, Reason: "resilience test"})).ok(t)
	if c := export.GetChain(); !c.GetValid() || c.GetEventsChecked() != int64(len(events)+1) {
		t.Errorf("%s: the export's chain check = %v, want valid over %d events (the export's own included)", subject, c, len(events)+1)
	}
	return lost, duplicated
}

// --- Redis unreachable ---------------------------------------------------------

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

func restCallContext(c context.Context, web *http.Client, srv *consentd, method, path, body string) (int, map[string]any, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(c, method, srv.baseURL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+apiKeys["admin"])
	resp, err := web.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	var out map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		_ = json.Unmarshal(raw, &out)
	}
	return resp.StatusCode, out, nil
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

// --- Redis slow ----------------------------------------------------------------

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
			_, err := srv.grpc.UpdateConsent(c, &consentv1.UpdateConsentRequest{SubjectId: "slow-1",
				Decisions: map[string]bool{"ads": n.Add(1)%2 == 0}, IdempotencyKey: fmt.Sprintf("slow-%d", n.Load())})
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
			return restOutcome(restCallContext(c, web, srv, "PATCH", "/v1/subjects/slow-2/consent",
				fmt.Sprintf(`{"decisions": {"analytics": %v}, "idempotency_key": "slow-rest-%d"}`, n.Add(1)%2 == 0, n.Load())))
		}, readOrWrite},
		{"REST check", func(c context.Context) outcome {
			return restOutcome(restCallContext(c, web, srv, "GET", "/v1/subjects/slow-2/purposes/analytics:check", ""))
		}, check},
	}
}

// --- soak ------------------------------------------------------------------------

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

// soak is the soak's traffic. Every worker records what went wrong instead
// of failing the test from its goroutine.
type soak struct {
	srv *consentd
	web *http.Client

	restCalls, writes, feedChanges atomic.Int64
	quit, feedQuit                 chan struct{}
	workers, feed                  sync.WaitGroup
	stopOnce, feedOnce             sync.Once

	mu       sync.Mutex
	problems map[string]int    // what went wrong, by kind
	examples map[string]string // the first of each kind
	replays  int               // writes retried on purpose, answered with the first answer
}

const (
	soakSubjectsPerWriter = 200
	soakGRPCWriters       = 2
)

func newSoak(srv *consentd) *soak {
	return &soak{srv: srv, web: &http.Client{Timeout: callTimeout, Transport: &http.Transport{}},
		quit: make(chan struct{}), feedQuit: make(chan struct{}), problems: map[string]int{}, examples: map[string]string{}}
}

func (s *soak) problem(kind string, detail any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.problems[kind]++; s.problems[kind] == 1 {
		s.examples[kind] = fmt.Sprint(detail)
	}
}

func (s *soak) report(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range slices.Sorted(maps.Keys(s.problems)) {
		t.Errorf("%s: %d times, first: %s", k, s.problems[k], s.examples[k])
	}
	t.Logf("writes retried on purpose with the same idempotency key, answered with the first result: %d", s.replays)
}

// loop runs step until the soak stops, paced: a steady load that leaves the
// machine's other tests some CPU.
func (s *soak) loop(step func(i int)) {
	s.workers.Go(func() {
		pace := time.NewTicker(2 * time.Millisecond)
		defer pace.Stop()
		for i := 0; ; i++ {
			select {
			case <-s.quit:
				return
			case <-pace.C:
			}
			step(i)
		}
	})
}

func soakSubject(writer, i int) string {
	return fmt.Sprintf("soak-%d-%d", writer, i%soakSubjectsPerWriter)
}

func (s *soak) run(t *testing.T) {
	// gRPC writers: each owns its subjects, so it knows the revision each
	// write must get; every tenth write is sent twice with its key.
	for w := range soakGRPCWriters {
		revisions := map[string]int64{}
		s.loop(func(i int) {
			subject := soakSubject(w, i)
			req := &consentv1.UpdateConsentRequest{SubjectId: subject, Region: "DE", IdempotencyKey: fmt.Sprintf("%s-%d", subject, i),
				Decisions: map[string]bool{"analytics": i%2 == 0, "marketing.email": i%3 == 0, "ads": i%5 == 0}}
			c, cancel := within(callTimeout)
			defer cancel()
			resp, err := s.srv.grpc.UpdateConsent(c, req)
			if err != nil {
				s.problem("write failed", err)
				return
			}
			s.writes.Add(1)
			rev := resp.GetConsent().GetRevision()
			if rev != revisions[subject]+1 {
				s.problem("write answered an unexpected revision", fmt.Sprintf("%s: %d after %d", subject, rev, revisions[subject]))
			}
			revisions[subject] = rev
			if i%10 == 0 {
				again, err := s.srv.grpc.UpdateConsent(c, req)
				if err != nil || again.GetConsent().GetRevision() != rev {
					s.problem("a retried write did not get the first answer", fmt.Sprintf("%v, %v", again.GetConsent().GetRevision(), err))
				} else {
					s.mu.Lock()
					s.replays++
					s.mu.Unlock()
				}
			}
			// Read your write.
			check, err := s.srv.grpc.CheckConsent(c, &consentv1.CheckConsentRequest{SubjectId: subject, Purpose: "analytics", Region: "DE", MinRevision: rev})
			if err != nil || check.GetAllowed() != (i%2 == 0) || check.GetReason() != consentv1.Reason_REASON_EXPLICIT {
				s.problem("a check after a write did not see it", fmt.Sprintf("%v, %v", check, err))
			}
		})
	}
	// A REST writer, and REST checks.
	restRevisions := map[string]int64{}
	s.loop(func(i int) {
		subject := fmt.Sprintf("soak-rest-%d", i%soakSubjectsPerWriter)
		c, cancel := within(callTimeout)
		defer cancel()
		if i%2 == 1 {
			code, body, err := restCallContext(c, s.web, s.srv, "GET", "/v1/subjects/"+subject+"/purposes/ads:check?region=US-CA", "")
			s.restCalls.Add(1)
			if err != nil || code != 200 || jsonPath(body, "reason") == "REASON_STORE_UNAVAILABLE" {
				s.problem("REST check failed", fmt.Sprintf("%d %v %v", code, body, err))
			}
			return
		}
		code, body, err := restCallContext(c, s.web, s.srv, "PATCH", "/v1/subjects/"+subject+"/consent",
			fmt.Sprintf(`{"decisions": {"ads": %v}, "region": "US-CA", "idempotency_key": "%s-%d"}`, i%4 == 0, subject, i))
		s.restCalls.Add(1)
		if err != nil || code != 200 {
			s.problem("REST write failed", fmt.Sprintf("%d %v %v", code, body, err))
			return
		}
		s.writes.Add(1)
		if want := strconv.FormatInt(restRevisions[subject]+1, 10); jsonPath(body, "consent.revision") != want {
			s.problem("REST write answered an unexpected revision", fmt.Sprintf("%s: %s, want %s", subject, jsonPath(body, "consent.revision"), want))
		}
		restRevisions[subject]++
	})
	// Checks and batch checks of the writers' subjects.
	s.loop(func(i int) {
		c, cancel := within(callTimeout)
		defer cancel()
		if i%4 != 0 {
			r, err := s.srv.grpc.CheckConsent(c, &consentv1.CheckConsentRequest{SubjectId: soakSubject(i%soakGRPCWriters, i*7), Purpose: counterPurposes[i%len(counterPurposes)]})
			if err != nil || r.GetReason() == consentv1.Reason_REASON_STORE_UNAVAILABLE {
				s.problem("check failed", fmt.Sprintf("%v, %v", r, err))
			}
			return
		}
		var checks []*consentv1.ConsentCheck
		for j := range 100 {
			checks = append(checks, &consentv1.ConsentCheck{SubjectId: soakSubject(j%soakGRPCWriters, i+j), Purpose: counterPurposes[j%len(counterPurposes)]})
		}
		r, err := s.srv.grpc.BatchCheckConsent(c, &consentv1.BatchCheckConsentRequest{Checks: checks})
		if err != nil || len(r.GetResults()) != len(checks) {
			s.problem("batch check failed", err)
			return
		}
		for _, res := range r.GetResults() {
			if res.GetReason() == consentv1.Reason_REASON_STORE_UNAVAILABLE {
				s.problem("batch check failed closed", res)
			}
		}
	})
	// Send-list filters and history reads (as the subject: an operator's
	// read would be recorded, and so count as a write).
	tokens := map[string]string{}
	var ids []string
	for w := range soakGRPCWriters {
		for i := range soakSubjectsPerWriter {
			subject := soakSubject(w, i)
			ids = append(ids, subject)
			tokens[subject] = tokenFor(t, subject, time.Now(), time.Hour)
		}
	}
	s.loop(func(i int) {
		c, cancel := within(callTimeout)
		defer cancel()
		if i%3 == 0 {
			if _, err := s.srv.grpc.FilterSubjects(c, &consentv1.FilterSubjectsRequest{Purpose: "marketing.email", Region: "DE", SubjectIds: ids}); err != nil {
				s.problem("filter failed", err)
			}
			return
		}
		subject := ids[i%len(ids)]
		page, err := s.srv.grpc.ListConsentEvents(as(c, tokens[subject]), &consentv1.ListConsentEventsRequest{SubjectId: subject, PageSize: 20})
		if err != nil {
			s.problem("history read failed", err)
			return
		}
		events := page.GetEvents()
		for j := 1; j < len(events); j++ { // newest first
			if events[j].GetRevision() != events[j-1].GetRevision()-1 || events[j-1].GetPrevHash() != events[j].GetHash() {
				s.problem("history not chained", fmt.Sprintf("%s: %d after %d", subject, events[j-1].GetRevision(), events[j].GetRevision()))
			}
		}
	})
	// The feed consumer: watches, checks each subject's changes come in
	// order and once, and acknowledges every message.
	s.feed.Go(func() {
		watchCtx, cancel := context.WithCancel(as(context.Background(), apiKeys["watch"]))
		defer cancel()
		go func() { <-s.feedQuit; cancel() }()
		stream, err := s.srv.grpc.WatchConsentChanges(watchCtx, &consentv1.WatchConsentChangesRequest{Consumer: "soak-mailer", BatchSize: 200})
		if err != nil {
			s.problem("watch failed", err)
			return
		}
		last := map[string]int64{}
		for {
			msg, err := stream.Recv()
			if err != nil {
				select {
				case <-s.feedQuit:
				default:
					s.problem("watch ended", err)
				}
				return
			}
			var ids []string
			for _, ch := range msg.GetChanges() {
				if ch.GetRevision() <= last[ch.GetSubjectId()] {
					s.problem("a change came twice or out of order", fmt.Sprintf("%s: revision %d after %d", ch.GetSubjectId(), ch.GetRevision(), last[ch.GetSubjectId()]))
				}
				last[ch.GetSubjectId()] = ch.GetRevision()
				ids = append(ids, ch.GetId())
			}
			if len(ids) == 0 {
				continue
			}
			c, cancelAck := within(callTimeout)
			resp, err := s.srv.grpc.AcknowledgeConsentChanges(as(c, apiKeys["watch"]), &consentv1.AcknowledgeConsentChangesRequest{Consumer: "soak-mailer", ChangeIds: ids})
			cancelAck()
			if err != nil || resp.GetAcknowledged() != int64(len(ids)) {
				s.problem("acknowledging failed", fmt.Sprintf("%v, %v", resp, err))
			}
			s.feedChanges.Add(int64(len(ids)))
		}
	})
}

// stop ends the traffic but the feed consumer, which drains what is left.
func (s *soak) stop() {
	s.stopOnce.Do(func() { close(s.quit) })
	s.workers.Wait()
	s.web.CloseIdleConnections()
}

func (s *soak) stopFeed() {
	s.feedOnce.Do(func() { close(s.feedQuit) })
	s.feed.Wait()
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
func (w *warningCounter) WithGroup(string) slog.Handler      { return w }

func (w *warningCounter) count() (int, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n, w.first
}
