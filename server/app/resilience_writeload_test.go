package app

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
)

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

func (l *writeLoad) hold(subject string) { l.mu.Lock(); l.held[subject] = true; l.mu.Unlock() }

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
