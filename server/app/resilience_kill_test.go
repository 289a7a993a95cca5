package app

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/internal/eventually"
	"github.com/consentd/consentd/server/internal/redistest"
)

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
