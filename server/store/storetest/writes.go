package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/store"
)

func testWriteStoresEveryField(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, _ := NewStore(t, client)
	want := domain.Decision{
		Granted: true, DecidedAt: t0, ExpiresAt: t0.Add(390 * 24 * time.Hour),
		Source: domain.SourcePreferenceCenter, PolicyVersion: 3, Region: "US-CA",
	}
	never := domain.Decision{Granted: false, DecidedAt: t0, Source: domain.SourceLink, PolicyVersion: 1}
	res := write(t, s, store.Write{SubjectID: "alice", Region: "US-CA",
		Decisions: map[string]domain.Decision{"analytics": want, "ads": never}})
	want.Revision, never.Revision = 1, 1 // the write's revision
	for name, rec := range map[string]domain.Record{"write result": res.Record, "Get": get(t, s, "alice")} {
		if got := rec.Decisions["analytics"]; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: analytics = %+v, want %+v", name, got, want)
		}
		if got := rec.Decisions["ads"]; !reflect.DeepEqual(got, never) {
			t.Errorf("%s: ads = %+v, want %+v (zero ExpiresAt: never expires)", name, got, never)
		}
	}
}

func testDecisionKeepsItsWriteRevision(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, _ := NewStore(t, client)
	write(t, s, store.Write{SubjectID: "alice", Decisions: decisions(t0, "analytics", true, "ads", false)})
	// A decision copied from another record (as a link merge does)
	// comes with that record's revision: the write's replaces it.
	copied := decisions(t0, "ads", true, "functional", true)
	for p, d := range copied {
		d.Revision = 41
		copied[p] = d
	}
	res := write(t, s, store.Write{SubjectID: "alice", Decisions: copied})
	write(t, s, store.Write{SubjectID: "alice", Restrict: boolPtr(true)}) // a status write stores no decision
	want := map[string]int64{"analytics": 1, "ads": 2, "functional": 2}
	purposes, err := s.GetPurposes(ctx(t), "alice", []string{"analytics", "ads", "functional"})
	if err != nil {
		t.Fatal(err)
	}
	many, err := s.GetMany(ctx(t), []store.Lookup{{SubjectID: "alice", Purposes: []string{"analytics", "ads", "functional"}}})
	if err != nil {
		t.Fatal(err)
	}
	for name, rec := range map[string]domain.Record{"write result": res.Record, "Get": get(t, s, "alice"), "GetPurposes": purposes, "GetMany": many[0]} {
		for p, rev := range want {
			if got := rec.Decisions[p].Revision; got != rev {
				t.Errorf("%s: %s stored at revision %d, want %d", name, p, got, rev)
			}
		}
	}
}

func testDecisionsStoredBeforeRevisions(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, prefix := NewStore(t, client)
	write(t, s, store.Write{SubjectID: "alice", Decisions: decisions(t0, "analytics", true)})
	state := onlyKey(t, client, prefix, ":s:")
	// The layout before: six parts to a decision, the confirmation's time alone.
	legacy := "g|1750000000|1783696000|b|2|DE"
	client.HSet(ctx(t), state, "ads", legacy, "_min", "1749990000", "_gdn", "1750000000")
	rec := get(t, s, "alice")
	wantAds := domain.Decision{Granted: true, DecidedAt: t0, ExpiresAt: time.Unix(1783696000, 0).UTC(), Source: domain.SourceBanner, PolicyVersion: 2, Region: "DE"}
	if !reflect.DeepEqual(rec.Decisions["ads"], wantAds) || !rec.GuardianAt.Equal(t0) || rec.GuardianRevision != 0 || rec.Decisions["analytics"].Revision != 1 {
		t.Fatalf("Get = %+v, want ads %+v without a revision and a confirmation without one", rec, wantAds)
	}
	// A later write of another purpose leaves the old value as it was.
	write(t, s, store.Write{SubjectID: "alice", Decisions: decisions(t0, "functional", false)})
	if got := client.HGet(ctx(t), state, "ads").Val(); got != legacy {
		t.Errorf("ads is stored as %q after another purpose's write, want %q untouched", got, legacy)
	}
	if got := client.HGet(ctx(t), state, "functional").Val(); got != "d|1750000000|0|a|1|DE|2" {
		t.Errorf("functional is stored as %q, want the write's revision appended", got)
	}
}

func testPartialUpdate(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, _ := NewStore(t, client)
	write(t, s, store.Write{SubjectID: "alice", Decisions: decisions(t0, "analytics", true, "ads", false)})
	first := get(t, s, "alice")
	res := write(t, s, store.Write{SubjectID: "alice", Decisions: decisions(t0.Add(time.Hour), "ads", true), Now: t0.Add(time.Hour)})
	rec := get(t, s, "alice")
	if !reflect.DeepEqual(rec, res.Record) {
		t.Fatalf("the write returned %+v but Get reads %+v", res.Record, rec)
	}
	if !reflect.DeepEqual(rec.Decisions["analytics"], first.Decisions["analytics"]) {
		t.Errorf("analytics changed: %+v, was %+v", rec.Decisions["analytics"], first.Decisions["analytics"])
	}
	if ads := rec.Decisions["ads"]; !ads.Granted || !ads.DecidedAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("ads = %+v, want granted at %v", ads, t0.Add(time.Hour))
	}
	if len(rec.Decisions) != 2 {
		t.Errorf("decisions = %v, want analytics and ads only", rec.Decisions)
	}
}

func testRevisionRisesByOne(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, _ := NewStore(t, client)
	for want := int64(1); want <= 3; want++ {
		res := write(t, s, store.Write{SubjectID: "alice", Decisions: decisions(t0, "analytics", want%2 == 0)})
		if res.Record.Revision != want || res.Replayed {
			t.Fatalf("write %d returned revision %d (replayed %v)", want, res.Record.Revision, res.Replayed)
		}
	}
	if rec := get(t, s, "alice"); rec.Revision != 3 {
		t.Fatalf("Get revision = %d, want 3", rec.Revision)
	}
}

func testExpectedRevision(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, _ := NewStore(t, client)
	write(t, s, store.Write{SubjectID: "alice", ExpectedRevision: ptr(0), Decisions: decisions(t0, "analytics", true)})
	write(t, s, store.Write{SubjectID: "alice", ExpectedRevision: ptr(1), Decisions: decisions(t0, "analytics", false)})
	before := get(t, s, "alice")

	_, err := s.Write(ctx(t), store.Write{SubjectID: "alice", ExpectedRevision: ptr(1),
		Decisions: decisions(t0, "analytics", true), Event: apiEvent()})
	var conflict *store.ConflictError
	if !errors.Is(err, store.ErrConflict) || !errors.As(err, &conflict) {
		t.Fatalf("write with a stale expected revision: %v, want ErrConflict", err)
	}
	if conflict.Expected != 1 || conflict.Current != 2 {
		t.Errorf("conflict = %+v, want expected 1, current 2", conflict)
	}
	_, err = s.Write(ctx(t), store.Write{SubjectID: "bob", ExpectedRevision: ptr(5),
		Decisions: decisions(t0, "analytics", true), Event: apiEvent()})
	if !errors.As(err, &conflict) || conflict.Current != 0 {
		t.Fatalf("expecting revision 5 of a new subject: %v, want a conflict with current 0", err)
	}
	assertUnchanged(t, s, "alice", before, 2)
	assertUnchanged(t, s, "bob", domain.Record{Decisions: map[string]domain.Decision{}}, 0)
}

func testFirstGPCSignalKept(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, _ := NewStore(t, client)
	write(t, s, store.Write{SubjectID: "alice", Decisions: decisions(t0, "ads", true)})
	if rec := get(t, s, "alice"); !rec.GPCSeenAt.IsZero() {
		t.Fatalf("GPC seen at %v without a signal", rec.GPCSeenAt)
	}
	write(t, s, store.Write{SubjectID: "alice", GPC: true, Now: t0.Add(time.Hour)}) // a signal alone, no decisions
	write(t, s, store.Write{SubjectID: "alice", GPC: true, Now: t0.Add(2 * time.Hour), Decisions: decisions(t0, "ads", false)})
	write(t, s, store.Write{SubjectID: "alice", Now: t0.Add(3 * time.Hour), Decisions: decisions(t0, "ads", true)})
	if rec := get(t, s, "alice"); !rec.GPCSeenAt.Equal(t0.Add(time.Hour)) || rec.Revision != 4 {
		t.Fatalf("GPC seen at %v (revision %d), want the first signal at %v", rec.GPCSeenAt, rec.Revision, t0.Add(time.Hour))
	}
}

func testRegionKept(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, _ := NewStore(t, client)
	write(t, s, store.Write{SubjectID: "alice", Region: "DE", Decisions: decisions(t0, "ads", true)})
	write(t, s, store.Write{SubjectID: "alice", Decisions: decisions(t0, "ads", false)})
	if rec := get(t, s, "alice"); rec.Region != "DE" {
		t.Fatalf("region = %q, want DE kept", rec.Region)
	}
	write(t, s, store.Write{SubjectID: "alice", Region: "US-CA", Decisions: decisions(t0, "ads", false)})
	if rec := get(t, s, "alice"); rec.Region != "US-CA" {
		t.Fatalf("region = %q, want US-CA", rec.Region)
	}
}

func testConcurrentWriters(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, _ := NewStore(t, client)
	const writers, writes = 20, 10
	var (
		mu   sync.Mutex
		revs []int64
		wg   sync.WaitGroup
	)
	errs := make(chan error, writers*writes)
	for g := range writers {
		wg.Go(func() {
			for i := range writes {
				purpose := fmt.Sprintf("p%02d", g)
				res, err := s.Write(ctx(t), store.Write{SubjectID: "alice", Event: apiEvent(), Now: t0,
					Decisions: decisions(t0, purpose, i%2 == 0)})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				revs = append(revs, res.Record.Revision)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent write: %v", err)
	}
	slices.Sort(revs)
	for i, r := range revs {
		if r != int64(i+1) {
			t.Fatalf("returned revisions are not 1..%d: %v", writers*writes, revs)
		}
	}
	rec := get(t, s, "alice")
	if rec.Revision != writers*writes || len(rec.Decisions) != writers {
		t.Fatalf("final revision %d with %d purposes, want %d and %d", rec.Revision, len(rec.Decisions), writers*writes, writers)
	}
	events, err := s.Events(ctx(t), "alice", 0, 1000)
	if err != nil || len(events) != writers*writes {
		t.Fatalf("%d events, %v; want %d", len(events), err, writers*writes)
	}
	if err := s.VerifyChain(ctx(t), "alice"); err != nil {
		t.Fatalf("VerifyChain: %v", err)
	}
}

func testBadInput(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, prefix := NewStore(t, client)
	for name, w := range map[string]store.Write{
		"internal field as purpose": {SubjectID: "alice", Decisions: decisions(t0, "_rev", true), Event: apiEvent()},
		"empty purpose":             {SubjectID: "alice", Decisions: decisions(t0, "", true), Event: apiEvent()},
		"unknown source":            {SubjectID: "alice", Decisions: decisions(t0, "ads", true), Event: store.EventInfo{Type: "update", Source: "fax"}},
		"no event type":             {SubjectID: "alice", Decisions: decisions(t0, "ads", true), Event: store.EventInfo{Source: domain.SourceAPI}},
		"no subject":                {Decisions: decisions(t0, "ads", true), Event: apiEvent()},
	} {
		if _, err := s.Write(ctx(t), w); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := s.GetPurposes(ctx(t), "alice", []string{"_gpc"}); err == nil {
		t.Error("GetPurposes of an internal field: accepted")
	}
	if keys := scanKeys(t, client, prefix+":*"); len(keys) != 0 {
		t.Fatalf("refused writes left keys: %q", keys)
	}
}
