package storetest

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/store"
)

// NewHMACKey is the key the rotation tests rotate HMACKey to.
var NewHMACKey = []byte("storetest-new-hmac-key-0123456789abcdef")

// assertReads checks that every read of s gives subjectID's record rec and
// history evs (newest first), and that the chain verifies.
func assertReads(t *testing.T, s *store.Store, subjectID string, rec domain.Record, evs []store.Event) {
	t.Helper()
	if got := get(t, s, subjectID); !reflect.DeepEqual(got, rec) {
		t.Errorf("Get(%s) = %+v, want %+v", subjectID, got, rec)
	}
	purposes := []string{"analytics", "ads", "functional"}
	want := rec
	want.Decisions = map[string]domain.Decision{}
	for _, p := range purposes {
		if d, ok := rec.Decisions[p]; ok {
			want.Decisions[p] = d
		}
	}
	if got, err := s.GetPurposes(ctx(t), subjectID, purposes); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("GetPurposes(%s) = %+v, %v; want %+v", subjectID, got, err, want)
	}
	if got, err := s.GetMany(ctx(t), []store.Lookup{{SubjectID: "nobody"}, {SubjectID: subjectID, Purposes: purposes}}); err != nil ||
		len(got) != 2 || got[0].Revision != 0 || !reflect.DeepEqual(got[1], want) {
		t.Errorf("GetMany(nobody, %s) = %+v, %v; want the zero record and %+v", subjectID, got, err, want)
	}
	if got := events(t, s, subjectID); !reflect.DeepEqual(got, evs) {
		t.Errorf("Events(%s) = %+v\nwant %+v", subjectID, got, evs)
	}
	if err := s.VerifyChain(ctx(t), subjectID); err != nil {
		t.Errorf("VerifyChain(%s): %v", subjectID, err)
	}
}

func events(t testing.TB, s *store.Store, subjectID string) []store.Event {
	t.Helper()
	evs, err := s.Events(ctx(t), subjectID, 0, 1000)
	if err != nil {
		t.Fatalf("events: %v", err)
	}
	return evs
}

// subjectKeyNames are the state hashes and history lists under prefix, sorted.
func subjectKeyNames(t testing.TB, client redis.UniversalClient, prefix string) []string {
	t.Helper()
	var names []string
	for _, k := range scanKeys(t, client, prefix+":*") {
		if strings.Contains(k, ":s:") || strings.Contains(k, ":h:") {
			names = append(names, k)
		}
	}
	return names
}

// difference is the elements of a not in b, in a's order.
func difference(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// The rotation tests step through the configurations of the procedure in
// the store's package documentation:
//
//	before     HMACKey active, nothing else known
//	step 1     HMACKey active, NewHMACKey known
//	step 2     NewHMACKey active, HMACKey known

func testRotation(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	before, prefix := NewStore(t, client)
	step1 := NewStoreOn(t, client, prefix, HMACKey, NewHMACKey)
	step2 := NewStoreOn(t, client, prefix, NewHMACKey, HMACKey)

	write(t, before, store.Write{SubjectID: "alice", Region: "DE", Decisions: decisions(t0, "analytics", true, "ads", false)})
	write(t, before, store.Write{SubjectID: "alice", GPC: true, Decisions: decisions(t0, "ads", true), Now: t0.Add(time.Hour)})
	retried := store.Write{SubjectID: "alice", IdempotencyKey: "req-3", Decisions: decisions(t0, "analytics", false),
		Event: apiEvent(), Now: t0.Add(2 * time.Hour)}
	write(t, before, retried)
	write(t, before, store.Write{SubjectID: "bob", Decisions: decisions(t0, "ads", true)}) // never written again
	alice, bob := get(t, before, "alice"), get(t, before, "bob")
	aliceEvents := events(t, before, "alice")
	keysBefore := subjectKeyNames(t, client, prefix)
	if len(keysBefore) != 4 {
		t.Fatalf("keys before the rotation: %q, want alice's and bob's state and history", keysBefore)
	}

	// Step 2's store reads what was written under the old key.
	for _, s := range []*store.Store{step1, step2} {
		assertReads(t, s, "alice", alice, aliceEvents)
		assertReads(t, s, "bob", bob, events(t, before, "bob"))
	}
	// A retry reaching an instance with the new key still applies once.
	if res, err := step2.Write(ctx(t), retried); err != nil || !res.Replayed || res.Record.Revision != 3 {
		t.Fatalf("retry through the new key: %+v, %v; want a replay of revision 3", res, err)
	}
	if got := subjectKeyNames(t, client, prefix); !slices.Equal(got, keysBefore) {
		t.Fatalf("reads and a replay moved keys: %q, were %q", got, keysBefore)
	}

	// A write through step 2 moves alice to the new key and continues her
	// revision and chain; no key is left under her old names.
	res := write(t, step2, store.Write{SubjectID: "alice", Decisions: decisions(t0, "functional", true), Now: t0.Add(3 * time.Hour)})
	if res.Record.Revision != 4 || len(res.Record.Decisions) != 3 || res.Record.Region != "DE" || !res.Record.GPCSeenAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("write after the rotation = %+v, want revision 4 on top of the old state", res.Record)
	}
	keysMoved := subjectKeyNames(t, client, prefix)
	gone, added := difference(keysBefore, keysMoved), difference(keysMoved, keysBefore)
	if len(keysMoved) != 4 || len(gone) != 2 || len(added) != 2 {
		t.Fatalf("keys after the move: %q, were %q: want alice's two keys renamed", keysMoved, keysBefore)
	}
	for i := range gone {
		if keySlot(t, client, gone[i]) != keySlot(t, client, added[i]) {
			t.Errorf("alice moved from slot %d to %d", keySlot(t, client, gone[i]), keySlot(t, client, added[i]))
		}
	}
	moved := get(t, step2, "alice")
	movedEvents := events(t, step2, "alice")
	if len(movedEvents) != 4 || movedEvents[0].PrevHash != aliceEvents[0].Hash || !reflect.DeepEqual(movedEvents[1:], aliceEvents) {
		t.Fatalf("events after the move = %+v, want the 3 old ones and a 4th linked to them", movedEvents)
	}
	for _, s := range []*store.Store{step1, step2} {
		assertReads(t, s, "alice", moved, movedEvents)
		assertReads(t, s, "bob", bob, events(t, before, "bob"))
	}
	// This is why step 1 exists: a store that does not know the new key
	// no longer sees alice.
	if rec := get(t, before, "alice"); rec.Revision != 0 {
		t.Fatalf("a store without the new key reads alice at revision %d", rec.Revision)
	}

	// An instance still on step 1 moves her back on its next write: still
	// in one place, with one chain.
	res = write(t, step1, store.Write{SubjectID: "alice", Decisions: decisions(t0, "functional", false), Now: t0.Add(4 * time.Hour)})
	if res.Record.Revision != 5 {
		t.Fatalf("write through step 1 = revision %d, want 5", res.Record.Revision)
	}
	if got := subjectKeyNames(t, client, prefix); !slices.Equal(got, keysBefore) {
		t.Fatalf("keys after moving back: %q, want the old names %q", got, keysBefore)
	}
	back := get(t, step1, "alice")
	backEvents := events(t, step1, "alice")
	if len(backEvents) != 5 || backEvents[0].PrevHash != movedEvents[0].Hash {
		t.Fatalf("events after moving back = %+v", backEvents)
	}
	for _, s := range []*store.Store{step1, step2, before} {
		assertReads(t, s, "alice", back, backEvents)
	}

	// Bob, never written since, is still where he was and reads the same.
	assertReads(t, step2, "bob", bob, events(t, before, "bob"))
	many, err := step2.GetMany(ctx(t), []store.Lookup{{SubjectID: "bob", Purposes: []string{"ads"}}, {SubjectID: "alice"}, {SubjectID: "nobody"}})
	if err != nil || len(many) != 3 || many[0].Revision != 1 || !many[0].Decisions["ads"].Granted ||
		many[1].Revision != 5 || many[2].Revision != 0 {
		t.Fatalf("GetMany after the rotation = %+v, %v", many, err)
	}
}

func testRotationUnderTraffic(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	before, prefix := NewStore(t, client)
	step1 := NewStoreOn(t, client, prefix, HMACKey, NewHMACKey)
	step2 := NewStoreOn(t, client, prefix, NewHMACKey, HMACKey)
	other := map[*store.Store]*store.Store{step1: step2, step2: step1}

	subjects := make([]string, 6)
	acked := make(map[string]*atomic.Int64, len(subjects))
	for i := range subjects {
		subjects[i] = fmt.Sprintf("subject-%d", i)
		acked[subjects[i]] = new(atomic.Int64)
		for range i%3 + 1 { // some history under the old key
			write(t, before, store.Write{SubjectID: subjects[i], Decisions: decisions(t0, "ads", i%2 == 0)})
			acked[subjects[i]].Add(1)
		}
	}

	// Step 1 is rolled out everywhere; then half the workers switch to
	// step 2 at once and the others partway: instances of both steps
	// serve the same subjects concurrently, as during a rolling update.
	const workers, ops = 8, 60
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			seen := map[string]int64{} // the newest revision this worker has seen, per subject
			observe := func(op, subject string, rev int64) bool {
				if rev < seen[subject] {
					t.Errorf("worker %d: %s of %s returned revision %d after it had seen %d", w, op, subject, rev, seen[subject])
					return false
				}
				seen[subject] = rev
				return true
			}
			for i := range ops {
				s := step1
				if w%2 == 1 || i >= ops*2/3 {
					s = step2
				}
				subject := subjects[rng.IntN(len(subjects))]
				var err error
				switch i % 6 {
				case 0, 3: // a write
					wr := store.Write{SubjectID: subject, Decisions: decisions(t0, fmt.Sprintf("p%d", w), i%4 == 0),
						Event: apiEvent(), Now: t0}
					if i%12 == 0 {
						wr.IdempotencyKey = fmt.Sprintf("w%d-%d", w, i)
					}
					var res store.WriteResult
					if res, err = s.Write(ctx(t), wr); err != nil {
						break
					}
					acked[subject].Add(1)
					if res.Record.Revision <= seen[subject] {
						t.Errorf("worker %d: a write of %s returned revision %d after it had seen %d", w, subject, res.Record.Revision, seen[subject])
						return
					}
					seen[subject] = res.Record.Revision
					if wr.IdempotencyKey != "" { // the client retries through the other step
						retry, err := other[s].Write(ctx(t), wr)
						if err != nil || !retry.Replayed || retry.Record.Revision != res.Record.Revision {
							t.Errorf("worker %d: retry across the rotation = %+v, %v; want a replay of revision %d", w, retry, err, res.Record.Revision)
							return
						}
					}
				case 1:
					var rec domain.Record
					if rec, err = s.Get(ctx(t), subject); err == nil && !observe("Get", subject, rec.Revision) {
						return
					}
				case 2:
					var rec domain.Record
					if rec, err = s.GetPurposes(ctx(t), subject, []string{"ads"}); err == nil && !observe("GetPurposes", subject, rec.Revision) {
						return
					}
				case 4:
					second := subjects[rng.IntN(len(subjects))]
					var recs []domain.Record
					if recs, err = s.GetMany(ctx(t), []store.Lookup{{SubjectID: subject}, {SubjectID: second}}); err == nil &&
						(!observe("GetMany", subject, recs[0].Revision) || !observe("GetMany", second, recs[1].Revision)) {
						return
					}
				case 5:
					var evs []store.Event
					if evs, err = s.Events(ctx(t), subject, 0, 1); err != nil {
						break
					}
					if len(evs) != 1 {
						t.Errorf("worker %d: Events of %s = %d events, want 1", w, subject, len(evs))
						return
					}
					if !observe("Events", subject, evs[0].Revision) {
						return
					}
					err = s.VerifyChain(ctx(t), subject)
				}
				if err != nil {
					t.Errorf("worker %d, op %d through %s: %v", w, i, map[*store.Store]string{step1: "step 1", step2: "step 2"}[s], err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	assertRotatedWholly(t, client, prefix, step1, step2, subjects, acked)
}

// assertRotatedWholly checks, after traffic through both steps of a
// rotation, that each subject holds its acknowledged writes once, in one
// place, with one feed entry each.
func assertRotatedWholly(t *testing.T, client redis.UniversalClient, prefix string, step1, step2 *store.Store, subjects []string, acked map[string]*atomic.Int64) {
	t.Helper()
	var total int64
	for _, subject := range subjects {
		want := acked[subject].Load()
		total += want
		for name, s := range map[string]*store.Store{"step 1": step1, "step 2": step2} {
			if rec := get(t, s, subject); rec.Revision != want {
				t.Errorf("%s reads %s at revision %d, want %d acknowledged writes", name, subject, rec.Revision, want)
			}
			if err := s.VerifyChain(ctx(t), subject); err != nil {
				t.Errorf("%s: VerifyChain(%s): %v", name, subject, err)
			}
		}
		if evs := events(t, step2, subject); int64(len(evs)) != want {
			t.Errorf("%s has %d events, want %d", subject, len(evs), want)
		}
	}
	// Each subject reads a revision > 0, so has data somewhere; as many
	// state hashes and history lists as subjects: each in one place.
	var states, histories int
	for _, k := range subjectKeyNames(t, client, prefix) {
		if strings.Contains(k, ":s:") {
			states++
		} else {
			histories++
		}
	}
	if states != len(subjects) || histories != len(subjects) {
		t.Errorf("%d state hashes and %d history lists for %d subjects", states, histories, len(subjects))
	}
	// One feed entry per acknowledged write, each naming its subject
	// (sealed with its data key, which the rotation left in place).
	var entries int64
	for _, c := range readAll(t, watch(t, step2, store.FeedQuery{FromOldest: true})) {
		entries++
		if acked[c.SubjectID] == nil {
			t.Errorf("feed change %s names %q: not one of the subjects", c.ID, c.SubjectID)
		}
	}
	if entries != total {
		t.Errorf("%d feed entries for %d acknowledged writes", entries, total)
	}
}
