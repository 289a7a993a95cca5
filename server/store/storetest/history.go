package storetest

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/store"
)

func testEventsNewestFirstInPages(t *testing.T, client redis.UniversalClient) {
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
	if c := all[0].Changes; len(c) != 1 || c[0].Old == nil || !*c[0].Old || c[0].New {
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
}

func testHashChain(t *testing.T, client redis.UniversalClient) {
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
}

func testHistory(t *testing.T, client redis.UniversalClient) {
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
}

func testAccessEvent(t *testing.T, client redis.UniversalClient) {
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
}

func testClientFactsSealed(t *testing.T, client redis.UniversalClient) {
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
}
