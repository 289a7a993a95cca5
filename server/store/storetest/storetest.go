// Package storetest is the conformance suite of the store: the same tests
// run against a standalone Redis and against a Redis Cluster. Each subtest
// uses its own key prefix, so subtests run in parallel on one server.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/keys"
	"github.com/consentd/consentd/server/store"
)

// HMACKey is the key-name secret the suite's stores use.
var HMACKey = []byte("storetest-hmac-key-0123456789abcdef")

// Sealer seals the subject ids in the change feed of the suite's stores;
// tests open feed entries with it.
var Sealer = func() *keys.Sealer {
	s, err := keys.NewSealer([]keys.Key{{ID: "storetest", Secret: []byte("storetest-encryption-key-32bytes")}})
	if err != nil {
		panic(err) // a constant key of the right length: cannot happen
	}
	return s
}()

// t0 is the suite's clock: tests pass explicit times and assert on them.
var t0 = time.Unix(1_750_000_000, 0).UTC()

// Run runs every conformance test against client. The subtests run in
// parallel after Run returns, so close the client in t.Cleanup, not with
// defer.
func Run(t *testing.T, client redis.UniversalClient) {
	t.Run("a new subject reads revision 0 and no decisions", func(t *testing.T) {
		t.Parallel()
		s, _ := NewStore(t, client)
		rec := get(t, s, "nobody")
		if rec.Revision != 0 || len(rec.Decisions) != 0 || rec.Region != "" || !rec.GPCSeenAt.IsZero() {
			t.Fatalf("Get = %+v, want the zero record", rec)
		}
		rec, err := s.GetPurposes(ctx(t), "nobody", []string{"analytics"})
		if err != nil || rec.Revision != 0 || len(rec.Decisions) != 0 {
			t.Fatalf("GetPurposes = %+v, %v", rec, err)
		}
		if events, err := s.Events(ctx(t), "nobody", 0, 10); err != nil || len(events) != 0 {
			t.Fatalf("Events = %v, %v; want none", events, err)
		}
		if err := s.VerifyChain(ctx(t), "nobody"); err != nil {
			t.Fatalf("VerifyChain of an empty history: %v", err)
		}
	})

	t.Run("a write stores every field of a decision", func(t *testing.T) {
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
	})

	t.Run("each decision records the revision of the write that stored it", func(t *testing.T) {
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
	})

	t.Run("a guardian's confirmation records the revision it saw, and clearing the mark clears it", func(t *testing.T) {
		t.Parallel()
		s, _ := NewStore(t, client)
		write(t, s, store.Write{SubjectID: "alice", Minor: boolPtr(true)})
		write(t, s, store.Write{SubjectID: "alice", Decisions: decisions(t0, "ads", true)})
		res := write(t, s, store.Write{SubjectID: "alice", GuardianConfirmed: true, ExpectedRevision: ptr(2), Now: t0.Add(time.Second)})
		if rec := get(t, s, "alice"); rec.GuardianRevision != 2 || !rec.GuardianAt.Equal(t0.Add(time.Second)) || !reflect.DeepEqual(rec, res.Record) {
			t.Fatalf("after the confirmation: %+v (write result %+v), want it to have seen revision 2", rec, res.Record)
		}
		// Without an expected revision it covers what the write found.
		write(t, s, store.Write{SubjectID: "alice", Decisions: decisions(t0, "analytics", true)})
		write(t, s, store.Write{SubjectID: "alice", GuardianConfirmed: true})
		purposes, _ := s.GetPurposes(ctx(t), "alice", []string{"ads"})
		if rec := get(t, s, "alice"); rec.GuardianRevision != 4 || purposes.GuardianRevision != 4 {
			t.Fatalf("a confirmation at revision 5: Get %+v, GetPurposes %+v; want revision 4 seen", rec, purposes)
		}
		write(t, s, store.Write{SubjectID: "alice", Minor: boolPtr(false)})
		if rec := get(t, s, "alice"); rec.GuardianRevision != 0 || !rec.GuardianAt.IsZero() || rec.Minor() {
			t.Fatalf("after clearing the mark: %+v", rec)
		}
	})

	t.Run("decisions and confirmations stored before revisions were recorded still read, and stay as stored", func(t *testing.T) {
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
	})

	t.Run("a partial update changes only the purposes given", func(t *testing.T) {
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
	})

	t.Run("every write raises the revision by one and returns it", func(t *testing.T) {
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
	})

	t.Run("expected revision: a match applies, a mismatch is a conflict and changes nothing", func(t *testing.T) {
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
	})

	t.Run("an idempotent retry applies once and returns the same result", func(t *testing.T) {
		t.Parallel()
		s, _ := NewStore(t, client)
		w := store.Write{SubjectID: "alice", IdempotencyKey: "req-1", ExpectedRevision: ptr(0),
			Decisions: decisions(t0, "analytics", true), Event: apiEvent(), Now: t0}
		first, err := s.Write(ctx(t), w)
		if err != nil || first.Replayed {
			t.Fatalf("first write: %+v, %v", first, err)
		}
		// A later write by someone else; then the retry arrives, later still.
		write(t, s, store.Write{SubjectID: "alice", Decisions: decisions(t0, "ads", true)})
		later := get(t, s, "alice")
		w.Now = t0.Add(time.Minute)
		retry, err := s.Write(ctx(t), w)
		if err != nil {
			t.Fatalf("retry: %v", err)
		}
		if !retry.Replayed || !reflect.DeepEqual(retry.Record, first.Record) || retry.Record.Revision != 1 {
			t.Fatalf("retry = %+v, want a replay of %+v", retry, first)
		}
		assertUnchanged(t, s, "alice", later, 2)
		// The same key on another subject is another request.
		if res := write(t, s, store.Write{SubjectID: "bob", IdempotencyKey: "req-1", Decisions: decisions(t0, "ads", false)}); res.Replayed {
			t.Fatal("an idempotency key of alice replayed on bob")
		}
	})

	t.Run("the same idempotency key with a different request is refused and changes nothing", func(t *testing.T) {
		t.Parallel()
		s, _ := NewStore(t, client)
		write(t, s, store.Write{SubjectID: "alice", IdempotencyKey: "req-1", Decisions: decisions(t0, "analytics", true)})
		before := get(t, s, "alice")
		for name, w := range map[string]store.Write{
			"other value":   {Decisions: decisions(t0, "analytics", false)},
			"more purposes": {Decisions: decisions(t0, "analytics", true, "ads", true)},
			"region":        {Decisions: decisions(t0, "analytics", true), Region: "DE"},
			"gpc":           {Decisions: decisions(t0, "analytics", true), GPC: true},
			"expected rev":  {Decisions: decisions(t0, "analytics", true), ExpectedRevision: ptr(0)},
		} {
			w.SubjectID, w.IdempotencyKey, w.Event = "alice", "req-1", apiEvent()
			if _, err := s.Write(ctx(t), w); !errors.Is(err, store.ErrIdempotencyMismatch) {
				t.Errorf("%s: %v, want ErrIdempotencyMismatch", name, err)
			}
		}
		assertUnchanged(t, s, "alice", before, 1)
	})

	t.Run("the first GPC signal seen is kept", func(t *testing.T) {
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
	})

	t.Run("the region is kept when a write gives none", func(t *testing.T) {
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
	})

	t.Run("GetPurposes and GetMany agree with Get", func(t *testing.T) {
		t.Parallel()
		s, _ := NewStore(t, client)
		write(t, s, store.Write{SubjectID: "alice", Region: "DE", GPC: true,
			Decisions: decisions(t0, "analytics", true, "ads", false, "marketing.email", true)})
		write(t, s, store.Write{SubjectID: "bob", Decisions: decisions(t0, "ads", true)})
		subset := func(rec domain.Record, purposes ...string) domain.Record {
			out := rec
			out.Decisions = map[string]domain.Decision{}
			for _, p := range purposes {
				if d, ok := rec.Decisions[p]; ok {
					out.Decisions[p] = d
				}
			}
			return out
		}
		alice, bob := get(t, s, "alice"), get(t, s, "bob")
		lookups := []store.Lookup{
			{SubjectID: "alice", Purposes: []string{"analytics", "functional"}},
			{SubjectID: "nobody", Purposes: []string{"ads"}},
			{SubjectID: "bob", Purposes: []string{"ads"}},
			{SubjectID: "alice", Purposes: []string{"ads", "marketing.email"}},
			{SubjectID: "alice"}, // only the revision, region and GPC time
		}
		want := []domain.Record{
			subset(alice, "analytics"), subset(domain.Record{}), subset(bob, "ads"),
			subset(alice, "ads", "marketing.email"), subset(alice),
		}
		for i, l := range lookups {
			got, err := s.GetPurposes(ctx(t), l.SubjectID, l.Purposes)
			if err != nil || !reflect.DeepEqual(got, want[i]) {
				t.Errorf("GetPurposes(%v) = %+v, %v; want %+v", l, got, err, want[i])
			}
		}
		many, err := s.GetMany(ctx(t), lookups)
		if err != nil || !reflect.DeepEqual(many, want) {
			t.Fatalf("GetMany = %+v, %v; want %+v", many, err, want)
		}
	})

	t.Run("events come newest first with old and new values, and page by revision", func(t *testing.T) {
		t.Parallel()
		s, _ := NewStore(t, client)
		write(t, s, store.Write{SubjectID: "alice", Region: "DE", Decisions: decisions(t0, "analytics", true, "ads", false), Now: t0,
			Event: store.EventInfo{Type: "update", Actor: "visitor", Source: domain.SourceBanner, PolicyVersion: "2025-06", Channel: "rest"}})
		write(t, s, store.Write{SubjectID: "alice", GPC: true, Decisions: decisions(t0, "ads", true), Now: t0.Add(time.Second),
			Event: store.EventInfo{Type: "withdraw", Actor: "operator:eve", Source: domain.SourceGPC, PolicyVersion: "2025-07", Channel: "grpc"}})
		for i := 3; i <= 7; i++ {
			write(t, s, store.Write{SubjectID: "alice", Decisions: decisions(t0, "analytics", i%2 == 0), Now: t0.Add(time.Duration(i) * time.Second)})
		}

		all, err := s.Events(ctx(t), "alice", 0, 100)
		if err != nil || len(all) != 7 {
			t.Fatalf("Events = %d events, %v; want 7", len(all), err)
		}
		for i, e := range all {
			if e.Revision != int64(7-i) {
				t.Fatalf("event %d has revision %d: not newest first", i, e.Revision)
			}
		}
		first, second := all[6], all[5]
		wantFirst := store.Event{Revision: 1, At: t0, Type: "update", Actor: "visitor", Source: domain.SourceBanner,
			PolicyVersion: "2025-06", Region: "DE", Channel: "rest",
			Changes:  []store.Change{{Purpose: "ads", New: false}, {Purpose: "analytics", New: true}},
			PrevHash: "", Hash: first.Hash, Keyed: true}
		if !reflect.DeepEqual(first, wantFirst) {
			t.Errorf("first event = %+v\nwant %+v", first, wantFirst)
		}
		wantSecond := store.Event{Revision: 2, At: t0.Add(time.Second), Type: "withdraw", Actor: "operator:eve", Source: domain.SourceGPC,
			PolicyVersion: "2025-07", Channel: "grpc", GPC: true,
			Changes:  []store.Change{{Purpose: "ads", Old: boolPtr(false), New: true}},
			PrevHash: first.Hash, Hash: second.Hash, Keyed: true}
		if !reflect.DeepEqual(second, wantSecond) {
			t.Errorf("second event = %+v\nwant %+v", second, wantSecond)
		}
		if c := all[0].Changes; len(c) != 1 || c[0].Old == nil || *c[0].Old != true || c[0].New != false {
			t.Errorf("revision 7 changes = %+v, want analytics true -> false", c)
		}

		for _, tc := range []struct {
			before int64
			limit  int
			want   []int64
		}{
			{0, 3, []int64{7, 6, 5}},
			{5, 3, []int64{4, 3, 2}},
			{2, 3, []int64{1}},
			{1, 3, nil},
			{100, 2, []int64{7, 6}},
			{-1, 1, []int64{7}},
			{4, 100, []int64{3, 2, 1}},
			{0, 0, nil},
		} {
			page, err := s.Events(ctx(t), "alice", tc.before, tc.limit)
			if err != nil {
				t.Fatalf("Events(before %d, limit %d): %v", tc.before, tc.limit, err)
			}
			if got := revisions(page); !slices.Equal(got, tc.want) {
				t.Errorf("Events(before %d, limit %d) = revisions %v, want %v", tc.before, tc.limit, got, tc.want)
			}
		}
	})

	t.Run("the hash chain verifies and detects an edited or deleted event", func(t *testing.T) {
		t.Parallel()
		s, prefix := NewStore(t, client)
		for i := range 5 {
			write(t, s, store.Write{SubjectID: "alice", Decisions: decisions(t0, "analytics", i%2 == 0)})
		}
		if err := s.VerifyChain(ctx(t), "alice"); err != nil {
			t.Fatalf("VerifyChain of an untouched history: %v", err)
		}
		events, _ := s.Events(ctx(t), "alice", 0, 10)
		for i := 0; i < len(events)-1; i++ {
			if events[i].PrevHash != events[i+1].Hash || len(events[i].Hash) != 40 {
				t.Fatalf("event %d links to %q, want %q", events[i].Revision, events[i].PrevHash, events[i+1].Hash)
			}
		}
		history := onlyKey(t, client, prefix, ":h:")

		// Edit revision 3: grant where it denied.
		original := client.LIndex(ctx(t), history, 2).Val()
		edited := strings.Replace(original, `"n":{"analytics":"g"}`, `"n":{"analytics":"d"}`, 1)
		if edited == original {
			edited = strings.Replace(original, `"n":{"analytics":"d"}`, `"n":{"analytics":"g"}`, 1)
		}
		client.LSet(ctx(t), history, 2, edited)
		assertChainBroken(t, s, "alice", 3)
		client.LSet(ctx(t), history, 2, original)
		if err := s.VerifyChain(ctx(t), "alice"); err != nil {
			t.Fatalf("VerifyChain after restoring the event: %v", err)
		}

		// Delete revision 3.
		client.LSet(ctx(t), history, 2, "deleted")
		client.LRem(ctx(t), history, 1, "deleted")
		assertChainBroken(t, s, "alice", 3)

		// Delete the newest event: the state's revision says it is missing.
		s2, prefix2 := NewStore(t, client)
		write(t, s2, store.Write{SubjectID: "bob", Decisions: decisions(t0, "ads", true)})
		write(t, s2, store.Write{SubjectID: "bob", Decisions: decisions(t0, "ads", false)})
		client.RPop(ctx(t), onlyKey(t, client, prefix2, ":h:"))
		assertChainBroken(t, s2, "bob", 2)
	})

	t.Run("History lists the whole history oldest first, with its chain's verdict", func(t *testing.T) {
		t.Parallel()
		s, _ := NewStore(t, client)
		h, err := s.History(ctx(t), "nobody")
		if err != nil || len(h.Events) != 0 || h.Checked != 0 || h.Chain != nil {
			t.Fatalf("History of nobody = %+v, %v; want empty and valid", h, err)
		}
		for i := range 7 {
			write(t, s, store.Write{SubjectID: "alice", Decisions: decisions(t0, "analytics", i%2 == 0)})
		}
		h, err = s.History(ctx(t), "alice")
		if err != nil || h.Chain != nil || h.Checked != 7 {
			t.Fatalf("History = %d checked, chain %v, %v; want 7 and valid", h.Checked, h.Chain, err)
		}
		if got := revisions(h.Events); !slices.Equal(got, []int64{1, 2, 3, 4, 5, 6, 7}) {
			t.Fatalf("History revisions %v, want 1..7", got)
		}
		// The same events, links included, as the newest-first pages give.
		page, _ := s.Events(ctx(t), "alice", 0, 10)
		slices.Reverse(page)
		if !reflect.DeepEqual(h.Events, page) {
			t.Errorf("History events differ from Events':\n%+v\n%+v", h.Events, page)
		}
	})

	t.Run("concurrent writers lose no update", func(t *testing.T) {
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
	})

	t.Run("key names hide the subject id and share the subject's partition slot", func(t *testing.T) {
		t.Parallel()
		s, prefix := NewStore(t, client)
		const subject = "user-4711@example.com"
		write(t, s, store.Write{SubjectID: subject, IdempotencyKey: "order-2025-0042", Decisions: decisions(t0, "ads", true)})
		keys := scanKeys(t, client, prefix+":*")
		if len(keys) != 5 {
			t.Fatalf("keys = %q, want state, history, idempotency record, data key and feed", keys)
		}
		slot := -1
		for _, k := range keys {
			for _, secret := range []string{subject, "user-4711", "example.com", "order-2025-0042"} {
				if strings.Contains(k, secret) {
					t.Errorf("key %q contains %q", k, secret)
				}
			}
			ks := keySlot(t, client, k)
			if slot == -1 {
				slot = ks
			}
			if ks != slot {
				t.Errorf("key %q is in slot %d, others in %d: %q", k, ks, slot, keys)
			}
		}
	})

	t.Run("the change feed gets one entry per write", func(t *testing.T) {
		t.Parallel()
		s, prefix := NewStore(t, client)
		write(t, s, store.Write{SubjectID: "alice", IdempotencyKey: "k", Decisions: decisions(t0, "ads", true)})
		write(t, s, store.Write{SubjectID: "alice", IdempotencyKey: "k", Decisions: decisions(t0, "ads", true)}) // a replay
		write(t, s, store.Write{SubjectID: "alice", Decisions: decisions(t0, "ads", false)})
		write(t, s, store.Write{SubjectID: "alice", Decisions: decisions(t0, "analytics", true)})
		_, _ = s.Write(ctx(t), store.Write{SubjectID: "alice", ExpectedRevision: ptr(1), Event: apiEvent(),
			Decisions: decisions(t0, "ads", true)}) // a conflict

		feed := onlyKey(t, client, prefix, ":feed")
		entries, err := client.XRange(ctx(t), feed, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		history := client.LRange(ctx(t), onlyKey(t, client, prefix, ":h:"), 0, -1).Val()
		if len(entries) != 3 || len(history) != 3 {
			t.Fatalf("%d feed entries and %d history events, want 3 each", len(entries), len(history))
		}
		for i, e := range entries {
			if e.Values["rev"] != strconv.Itoa(i+1) || e.Values["ev"] != history[i] {
				t.Errorf("feed entry %d = %v, want rev %d and the history event", i, e.Values, i+1)
			}
			// The subject id is sealed with the subject's data key, not the
			// operator's: the feed holds no raw id, nothing opens it once
			// the subject is erased, and each entry is sealed afresh (a
			// random nonce), so entries of one subject cannot be linked by
			// their sub field either.
			sub, _ := e.Values["sub"].(string)
			if strings.Contains(sub, "alice") {
				t.Errorf("feed entry %d: sub %q holds the raw subject id", i, sub)
			}
			if opened, err := Sealer.Open(sub); err == nil {
				t.Errorf("feed entry %d: sub %q opens with the operator's key alone, to %q", i, sub, opened)
			}
			if i > 0 && sub == entries[i-1].Values["sub"] {
				t.Errorf("feed entries %d and %d have the same sealed sub %q", i-1, i, sub)
			}
		}
		for i, c := range readAll(t, watch(t, s, store.FeedQuery{FromOldest: true})) {
			if c.SubjectID != "alice" || c.Revision != int64(i+1) {
				t.Errorf("change %d read from the feed: subject %q, revision %d; want alice, %d", i, c.SubjectID, c.Revision, i+1)
			}
		}
	})

	t.Run("an access event is chained into the history and leaves decisions and the feed alone", func(t *testing.T) {
		t.Parallel()
		s, prefix := NewStore(t, client)
		write(t, s, store.Write{SubjectID: "alice", Decisions: decisions(t0, "ads", true)})
		before, _ := s.Get(ctx(t), "alice")
		res, err := s.Write(ctx(t), store.Write{SubjectID: "alice", Now: t0.Add(time.Minute),
			Event: store.EventInfo{Type: domain.EventAccess, Actor: "key:privacy-desk", Source: domain.SourceAPI, Reason: "ticket 4711"}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Record.Revision != 2 || !reflect.DeepEqual(res.Record.Decisions, before.Decisions) {
			t.Fatalf("after an access: %+v, want revision 2 and the same decisions", res.Record)
		}
		events, err := s.Events(ctx(t), "alice", 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if e := events[0]; e.Type != domain.EventAccess || e.Reason != "ticket 4711" || e.Actor != "key:privacy-desk" || len(e.Changes) != 0 {
			t.Fatalf("access event = %+v", e)
		}
		if err := s.VerifyChain(ctx(t), "alice"); err != nil {
			t.Fatal(err)
		}
		if n := client.XLen(ctx(t), onlyKey(t, client, prefix, ":feed")).Val(); n != 1 {
			t.Fatalf("%d feed entries, want 1: an access changes nothing downstream", n)
		}
	})

	t.Run("client facts are sealed in the history and opened when read", func(t *testing.T) {
		t.Parallel()
		s, prefix := NewStore(t, client)
		w := store.Write{SubjectID: "alice", Decisions: decisions(t0, "ads", true), Now: t0, Event: apiEvent()}
		w.Event.Client = "ua=Firefox/140; platform=Linux"
		if _, err := s.Write(ctx(t), w); err != nil {
			t.Fatal(err)
		}
		stored := client.LIndex(ctx(t), onlyKey(t, client, prefix, ":h:"), 0).Val()
		if strings.Contains(stored, "Firefox") || !strings.Contains(stored, `"x":"*`) {
			t.Fatalf("stored event %s: client facts not sealed", stored)
		}
		events, err := s.Events(ctx(t), "alice", 0, 1)
		if err != nil || events[0].Client != w.Event.Client {
			t.Fatalf("events = %+v, %v; want the client facts opened", events, err)
		}
	})

	t.Run("bad input is refused and writes nothing", func(t *testing.T) {
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
	})

	runRotation(t, client)
	runRights(t, client)
}

// NewStore returns a store on a fresh key prefix, and the prefix.
func NewStore(t testing.TB, client redis.UniversalClient) (*store.Store, string) {
	t.Helper()
	prefix := newPrefix()
	return NewStoreOn(t, client, prefix, HMACKey), prefix
}

// newPrefix is a fresh key prefix, so tests can share one Redis.
func newPrefix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "storetest-" + hex.EncodeToString(b)
}

// NewStoreOn returns a store on prefix (from NewStore) with active as its
// HMAC key and previous as its previous ones: one configuration of an HMAC
// key rotation. Its other options are NewStore's.
func NewStoreOn(t testing.TB, client redis.UniversalClient, prefix string, active []byte, previous ...[]byte) *store.Store {
	t.Helper()
	s, err := store.New(client, store.Options{Prefix: prefix, HMACKey: active, PreviousHMACKeys: previous,
		Sealer: Sealer, Partitions: 16})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ctx(t testing.TB) context.Context { return t.Context() }

func ptr(v int64) *int64 { return &v }

func boolPtr(v bool) *bool { return &v }

func apiEvent() store.EventInfo {
	return store.EventInfo{Type: "update", Actor: "api", Source: domain.SourceAPI, PolicyVersion: "test", Channel: "grpc"}
}

// decisions builds a decision map from purpose, granted pairs.
func decisions(at time.Time, pairs ...any) map[string]domain.Decision {
	m := map[string]domain.Decision{}
	for i := 0; i < len(pairs); i += 2 {
		m[pairs[i].(string)] = domain.Decision{Granted: pairs[i+1].(bool), DecidedAt: at, Source: domain.SourceAPI, PolicyVersion: 1, Region: "DE"}
	}
	return m
}

// write applies w, filling in an event and a time when missing.
func write(t testing.TB, s *store.Store, w store.Write) store.WriteResult {
	t.Helper()
	if w.Event.Type == "" {
		w.Event = apiEvent()
	}
	if w.Now.IsZero() {
		w.Now = t0
	}
	res, err := s.Write(ctx(t), w)
	if err != nil {
		t.Fatalf("write: %v", err)
	}
	return res
}

func get(t testing.TB, s *store.Store, subjectID string) domain.Record {
	t.Helper()
	rec, err := s.Get(ctx(t), subjectID)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	return rec
}

func revisions(events []store.Event) []int64 {
	var out []int64
	for _, e := range events {
		out = append(out, e.Revision)
	}
	return out
}

// assertUnchanged checks the subject still reads want, with events events.
func assertUnchanged(t *testing.T, s *store.Store, subjectID string, want domain.Record, events int) {
	t.Helper()
	if got := get(t, s, subjectID); !reflect.DeepEqual(got, want) {
		t.Errorf("record changed: %+v, want %+v", got, want)
	}
	if got, err := s.Events(ctx(t), subjectID, 0, 1000); err != nil || len(got) != events {
		t.Errorf("%d events (%v), want %d", len(got), err, events)
	}
}

func assertChainBroken(t *testing.T, s *store.Store, subjectID string, revision int64) {
	t.Helper()
	err := s.VerifyChain(ctx(t), subjectID)
	if !errors.Is(err, store.ErrChainBroken) {
		t.Fatalf("VerifyChain = %v, want ErrChainBroken", err)
	}
	if want := fmt.Sprintf("at revision %d:", revision); !strings.Contains(err.Error(), want) {
		t.Fatalf("VerifyChain = %v, want it to name revision %d", err, revision)
	}
	// History gives the same verdict, having checked the events before it
	// (these histories start at revision 1).
	h, herr := s.History(ctx(t), subjectID)
	if herr != nil || h.Chain == nil || h.Chain.Error() != err.Error() || h.Checked != int(revision-1) {
		t.Fatalf("History: chain %v, %d checked, %v; want %v, %d checked", h.Chain, h.Checked, herr, err, revision-1)
	}
}

// scanKeys lists the keys matching pattern, on every master of a cluster.
func scanKeys(t testing.TB, client redis.UniversalClient, pattern string) []string {
	t.Helper()
	var (
		mu   sync.Mutex
		keys []string
	)
	scan := func(ctx context.Context, c redis.Cmdable) error {
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			keys = append(keys, iter.Val())
			mu.Unlock()
		}
		return iter.Err()
	}
	var err error
	if cluster, ok := client.(*redis.ClusterClient); ok {
		err = cluster.ForEachMaster(ctx(t), func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	} else {
		err = scan(ctx(t), client)
	}
	if err != nil {
		t.Fatalf("scan %s: %v", pattern, err)
	}
	slices.Sort(keys)
	return keys
}

// onlyKey is the one key under prefix whose name contains part.
func onlyKey(t testing.TB, client redis.UniversalClient, prefix, part string) string {
	t.Helper()
	var found []string
	for _, k := range scanKeys(t, client, prefix+":*") {
		if strings.Contains(k, part) {
			found = append(found, k)
		}
	}
	if len(found) != 1 {
		t.Fatalf("keys with %q under %s: %q, want exactly one", part, prefix, found)
	}
	return found[0]
}

// keySlot is the Redis Cluster slot of key: CRC16 of its hash tag (or of the
// whole key) mod 16384, as the cluster specification defines it. On a
// cluster, Redis' own CLUSTER KEYSLOT must agree.
func keySlot(t testing.TB, client redis.UniversalClient, key string) int {
	t.Helper()
	if got := slotOf("123456789"); got != 12739 { // the specification's example
		t.Fatalf("slotOf is wrong: %d", got)
	}
	slot := slotOf(key)
	if cluster, ok := client.(*redis.ClusterClient); ok {
		if redisSlot := cluster.ClusterKeySlot(ctx(t), key).Val(); int(redisSlot) != slot {
			t.Fatalf("CLUSTER KEYSLOT %s = %d, computed %d", key, redisSlot, slot)
		}
	}
	return slot
}

func slotOf(key string) int {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if end := strings.IndexByte(key[open+1:], '}'); end > 0 {
			key = key[open+1 : open+1+end]
		}
	}
	var crc uint16 // CRC-16/XMODEM
	for _, c := range []byte(key) {
		crc ^= uint16(c) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc % 16384)
}
