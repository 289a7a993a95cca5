package storetest

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/store"
)

func testFeedCursorResumes(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, _ := NewStore(t, client)
	want := feedWrites(t, s, 0, 40) // spread over several partitions

	r := watch(t, s, store.FeedQuery{FromOldest: true, BatchSize: 7})
	var first []store.FeedChange
	var cursor string
	for len(first) < 15 { // stop part way, as a client that disconnects
		batches, _ := read(t, r)
		if len(batches) == 0 {
			t.Fatalf("the feed ended after %d changes", len(first))
		}
		for _, b := range batches {
			if len(b.Changes) > 7 {
				t.Fatalf("a batch of %d changes, the batch size is 7", len(b.Changes))
			}
			first = append(first, b.Changes...)
			cursor = b.Cursor
			if len(first) >= 15 {
				break // later batches of this read are never seen
			}
		}
	}
	rest := readAll(t, watch(t, s, store.FeedQuery{Cursor: cursor, BatchSize: 7}))
	assertExactly(t, append(first, rest...), want)

	// The last cursor is after everything: nothing new, then only what
	// is written later.
	r = watch(t, s, store.FeedQuery{Cursor: cursor, BatchSize: 7})
	readAll(t, r)
	later := feedWrites(t, s, 40, 3)
	assertExactly(t, readAll(t, watch(t, s, store.FeedQuery{Cursor: r.Cursor()})), later)
}

func testFeedBacklogInOrder(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, _ := NewStore(t, client)
	createConsumer(t, s, "mailer", false)
	for i := range 25 {
		write(t, s, store.Write{SubjectID: "alice", Decisions: decisions(t0, "ads", i%2 == 0)})
	}
	for name, r := range map[string]*store.FeedReader{
		"cursor":   watch(t, s, store.FeedQuery{FromOldest: true, BatchSize: 4}),
		"consumer": watch(t, s, store.FeedQuery{Consumer: "mailer", BatchSize: 4}),
	} {
		var revisions []int64
		for {
			batches, more := read(t, r)
			for _, b := range batches {
				if len(b.Changes) == 0 || len(b.Changes) > 4 {
					t.Errorf("%s: a batch of %d changes, want 1 to 4", name, len(b.Changes))
				}
				for _, c := range b.Changes {
					revisions = append(revisions, c.Revision)
				}
			}
			if len(batches) == 0 && !more {
				break
			}
		}
		for i, rev := range revisions {
			if rev != int64(i+1) {
				t.Fatalf("%s: revisions %v, want 1 to 25 in order", name, revisions)
			}
		}
		if len(revisions) != 25 {
			t.Errorf("%s: %d changes, want 25", name, len(revisions))
		}
	}
}

func testFeedStartsNowOrAtTheOldest(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, _ := NewStore(t, client)
	before := feedWrites(t, s, 0, 5)
	now := watch(t, s, store.FeedQuery{})
	oldest := watch(t, s, store.FeedQuery{FromOldest: true})
	after := feedWrites(t, s, 5, 5)
	assertExactly(t, readAll(t, now), after)
	assertExactly(t, readAll(t, oldest), append(before, after...))
}

func testFeedChangeFields(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, _ := NewStore(t, client)
	r := watch(t, s, store.FeedQuery{})
	write(t, s, store.Write{SubjectID: "alice", Region: "US-CA", Decisions: decisions(t0, "ads", true)})
	write(t, s, store.Write{SubjectID: "alice", GPC: true, Decisions: decisions(t0.Add(time.Minute), "ads", false), Now: t0.Add(time.Minute)})
	got := readAll(t, r)
	if len(got) != 2 {
		t.Fatalf("%d changes, want 2", len(got))
	}
	grant, deny := got[0], got[1]
	if grant.SubjectID != "alice" || grant.Revision != 1 || grant.Event.Type != domain.EventUpdate || grant.Event.Region != "US-CA" ||
		!grant.Event.At.Equal(t0) || grant.Event.OptOut() || len(grant.Event.Changes) != 1 || !grant.Event.Changes[0].New {
		t.Errorf("first change = %+v", grant)
	}
	if deny.Revision != 2 || !deny.Event.GPC || !deny.Event.OptOut() || !*deny.Event.Changes[0].Old {
		t.Errorf("second change = %+v", deny)
	}
	if !strings.HasPrefix(grant.ID, partitionOf(t, grant.ID)+"-") || grant.ID == deny.ID {
		t.Errorf("ids %q and %q", grant.ID, deny.ID)
	}
}

func testFeedPurposeFilter(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, _ := NewStore(t, client)
	createConsumer(t, s, "ads-only", false)
	r := watch(t, s, store.FeedQuery{Purposes: []string{"ads", "marketing.sms"}})
	w := func(subject string, decisions map[string]domain.Decision, gpc bool, eventType domain.EventType) int64 {
		ev := apiEvent()
		ev.Type = eventType
		return write(t, s, store.Write{SubjectID: subject, Decisions: decisions, GPC: gpc, Event: ev}).Record.Revision
	}
	w("s1", decisions(t0, "ads", false), false, domain.EventUpdate)                              // kept: ads
	w("s2", decisions(t0, "analytics", false), false, domain.EventUpdate)                        // filtered
	w("s3", decisions(t0, "analytics", true, "marketing.sms", false), false, domain.EventUpdate) // kept: sms
	w("s4", decisions(t0, "analytics", false), true, domain.EventUpdate)                         // kept: GPC
	w("s5", nil, false, domain.EventRestrict)                                                    // kept: every purpose
	w("s6", decisions(t0, "analytics", false), false, domain.EventWithdraw)                      // filtered
	w("s7", nil, false, domain.EventLink)                                                        // kept: nothing merged
	w("s8", decisions(t0, "functional", true), false, domain.EventLink)                          // filtered
	want := []string{"s1", "s3", "s4", "s5", "s7"}
	if got := subjects(readAll(t, r)); !sameSet(got, want) {
		t.Errorf("cursor watch got %v, want %v", got, want)
	}
	c := watch(t, s, store.FeedQuery{Consumer: "ads-only", Purposes: []string{"ads", "marketing.sms"}})
	if got := subjects(readAll(t, c)); !sameSet(got, want) {
		t.Errorf("consumer watch got %v, want %v", got, want)
	}
	// The three filtered out were acknowledged for it: only the five
	// delivered count as lag.
	lag := consumerLag(t, s, "ads-only")
	if lag.Unacknowledged != 5 {
		t.Errorf("unacknowledged = %d, want the 5 delivered", lag.Unacknowledged)
	}
}
