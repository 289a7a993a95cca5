package app

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
)

// failoverClient is what the traffic's clients did and saw. Each subject has
// one writer, which writes counters 1, 2, 3... with an idempotency key per
// counter, retries a failed write with the same key the next time it comes
// to the subject, and checks each acknowledged write with min_revision.
type failoverClient struct {
	mu       sync.Mutex
	subjects map[string]*subjectLog
	affected map[string]bool
	killedAt time.Time      // zero before the kill
	failures map[string]int // "write Unavailable (killed master's subjects)"
	// Calls that failed after the kill, first and last; and per subject the
	// first success after the kill.
	firstFailure, lastFailure time.Time
	inconsistentChecks        []string
	staleChecks               []string // subjects whose check said the store is behind an acknowledged revision
}

type subjectLog struct {
	counter    int    // of the last write issued
	pending    bool   // the write of counter failed and is retried
	pendingKey string // its idempotency key
	acks       []ackedWrite
	recovered  time.Time // first success after the kill
}

func (fc *failoverClient) fail(subject, call string, err error, at time.Time) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	where := "other masters' subjects"
	if fc.affected[subject] {
		where = "killed master's subjects"
	}
	fc.failures[fmt.Sprintf("%s %s (%s)", call, status.Code(err), where)]++
	if !fc.killedAt.IsZero() {
		if fc.firstFailure.IsZero() {
			fc.firstFailure = at
		}
		fc.lastFailure = at
	}
}

// step writes the subject's next counter (or retries the pending one) and
// checks it. It returns false when the subject's counter is exhausted.
func (fc *failoverClient) step(srv *consentd, subject string) bool {
	fc.mu.Lock()
	log := fc.subjects[subject]
	if !log.pending {
		if log.counter == maxCounter {
			fc.mu.Unlock()
			return false
		}
		log.counter++
		log.pending, log.pendingKey = true, fmt.Sprintf("%s-w%d", subject, log.counter)
	}
	counter, key := log.counter, log.pendingKey
	fc.mu.Unlock()

	callCtx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := srv.grpc.UpdateConsent(callCtx, &consentv1.UpdateConsentRequest{SubjectId: subject, Region: "DE",
		Decisions: decisionsFor(counter), IdempotencyKey: key})
	now := time.Now()
	if err != nil {
		fc.fail(subject, "write", err, now)
		return true
	}
	revision := resp.GetConsent().GetRevision()
	fc.mu.Lock()
	log.pending = false
	log.acks = append(log.acks, ackedWrite{counter, revision, now})
	if !fc.killedAt.IsZero() && log.recovered.IsZero() {
		log.recovered = now
	}
	fc.mu.Unlock()

	check, err := srv.grpc.CheckConsent(callCtx, &consentv1.CheckConsentRequest{SubjectId: subject, Purpose: "analytics",
		Region: "DE", MinRevision: revision})
	switch {
	case status.Code(err) == codes.FailedPrecondition:
		fc.mu.Lock()
		fc.staleChecks = append(fc.staleChecks, subject)
		fc.mu.Unlock()
		fc.fail(subject, "check", err, time.Now())
	case err != nil:
		fc.fail(subject, "check", err, time.Now())
	case check.GetRevision() == revision && check.GetAllowed() != decisionsFor(counter)["analytics"]:
		fc.mu.Lock()
		fc.inconsistentChecks = append(fc.inconsistentChecks, fmt.Sprintf("%s write %d: %v", subject, counter, check))
		fc.mu.Unlock()
	}
	return true
}

// subjectsWithAcksSince counts the subjects with at least n acknowledged writes after at.
func (fc *failoverClient) subjectsWithAcksSince(at time.Time, n int) int {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	count := 0
	for _, log := range fc.subjects {
		if acksSince(log.acks, at) >= n {
			count++
		}
	}
	return count
}

// work writes and checks own, one subject after another at a steady pace,
// until stop and then until no write of its own is pending, or until abort.
func (fc *failoverClient) work(t *testing.T, srv *consentd, own []string, stop, abort <-chan struct{}) {
	pace := time.NewTicker(5 * time.Millisecond)
	defer pace.Stop()
	stopping := false
	for {
		select {
		case <-abort:
			return
		case <-stop:
			stopping = true
		default:
		}
		pending := false
		for _, s := range own {
			fc.mu.Lock()
			isPending := fc.subjects[s].pending
			fc.mu.Unlock()
			if stopping && !isPending {
				continue
			}
			if !fc.step(srv, s) {
				t.Errorf("%s: more than %d writes; make the run shorter", s, maxCounter)
				return
			}
			fc.mu.Lock()
			pending = pending || fc.subjects[s].pending
			fc.mu.Unlock()
			<-pace.C
		}
		if stopping && !pending {
			return
		}
	}
}

// verify checks what the clients were told against what Redis holds now,
// and returns how many writes were acknowledged and which of them Redis
// lost.
func (fc *failoverClient) verify(t *testing.T, srv *consentd, subjects []string, killedAt, promotedAt time.Time) (acked int, lost []string) {
	affected := fc.affected
	lostSubjects := map[string]bool{}
	for _, s := range subjects {
		log := fc.subjects[s]
		own := as(ctx(t), tokenFor(t, s, time.Now(), time.Hour))
		consent := must(srv.grpc.GetConsent(own, &consentv1.GetConsentRequest{SubjectId: s})).ok(t).GetConsent()
		events := allEvents(t, srv, own, s)
		if int64(len(events)) != consent.GetRevision() {
			t.Errorf("%s: revision %d with %d events", s, consent.GetRevision(), len(events))
		}
		// Each event is one write, in order, once; the chain holds.
		state := map[string]bool{}
		byRevision := map[int64]int{}
		last := 0
		for i, e := range events {
			if e.GetRevision() != int64(i+1) || (i > 0 && e.GetPrevHash() != events[i-1].GetHash()) {
				t.Errorf("%s: event %d has revision %d, prev %q after %q", s, i, e.GetRevision(), e.GetPrevHash(), events[max(i-1, 0)].GetHash())
			}
			for _, ch := range e.GetChanges() {
				state[ch.GetPurpose()] = ch.GetNewGranted()
			}
			counter := counterOf(state)
			if counter <= last {
				t.Errorf("%s: write %d applied at revision %d after write %d: applied twice, or out of order", s, counter, e.GetRevision(), last)
			}
			last, byRevision[e.GetRevision()] = counter, counter
		}
		current := map[string]bool{}
		for _, p := range consent.GetPurposes() {
			if p.GetDecision() != nil {
				current[p.GetPurpose()] = p.GetDecision().GetGranted()
			}
		}
		if !maps.Equal(current, state) {
			t.Errorf("%s: the state %v is not what its history adds up to %v", s, current, state)
		}
		// Every acknowledged write is in the history at the revision it was
		// acknowledged with, unless Redis lost it: acknowledged by the
		// killed master, not yet copied to its replica.
		acked += len(log.acks)
		for _, a := range log.acks {
			if byRevision[a.revision] == a.counter {
				continue
			}
			lostSubjects[s] = true
			lost = append(lost, fmt.Sprintf("%s write %d (revision %d, acknowledged %+dms from the kill)", s, a.counter, a.revision, a.at.Sub(killedAt).Milliseconds()))
			if !affected[s] || a.at.After(promotedAt) {
				t.Errorf("%s: write %d acknowledged at revision %d is gone, though the master that acknowledged it did not die", s, a.counter, a.revision)
			}
		}
	}
	for k := range fc.failures {
		if !strings.Contains(k, " Unavailable ") && !strings.HasPrefix(k, "check FailedPrecondition ") {
			t.Errorf("clients saw %q: only Unavailable (retry later) is expected while a master fails over", k)
		}
	}
	for _, s := range fc.staleChecks {
		if !lostSubjects[s] {
			t.Errorf("%s: a check said the store is behind a revision acknowledged to its writer, yet no write of it was lost", s)
		}
	}
	if len(fc.inconsistentChecks) > 0 {
		t.Errorf("checks right after an acknowledged write answered from another state: %v", fc.inconsistentChecks)
	}
	return acked, lost
}
