package storetest

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/store"
)

func testFeedConsumerResumes(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, _ := NewStore(t, client)
	feedWrites(t, s, 0, 3) // before the consumer: not for it
	createConsumer(t, s, "mailer", false)
	first := feedWrites(t, s, 3, 10)

	r := watch(t, s, store.FeedQuery{Consumer: "mailer", BatchSize: 4})
	got := readAll(t, r)
	assertExactly(t, got, first)
	if c := r.Cursor(); c != "" {
		t.Errorf("a consumer's cursor = %q, want none", c)
	}
	// It applied and acknowledged the first four, then went away.
	if n := ack(t, s, "mailer", ids(got[:4])...); n != 4 {
		t.Errorf("acknowledged %d, want 4", n)
	}
	second := feedWrites(t, s, 13, 5)

	// Back: first what it had not acknowledged, then what is new.
	unacknowledged := subjects(got[4:])
	got = readAll(t, watch(t, s, store.FeedQuery{Consumer: "mailer"}))
	assertExactly(t, got, append(unacknowledged, second...))
	if !changesBefore(got, unacknowledged, second) {
		t.Errorf("new changes came before the redelivered ones: %v", ids(got))
	}
	if n := ack(t, s, "mailer", ids(got)...); n != int64(len(got)) {
		t.Errorf("acknowledged %d, want %d", n, len(got))
	}
	if n := ack(t, s, "mailer", ids(got)...); n != 0 {
		t.Errorf("acknowledging again counted %d, want 0", n)
	}
	if again := readAll(t, watch(t, s, store.FeedQuery{Consumer: "mailer"})); len(again) != 0 {
		t.Errorf("after acknowledging everything a watch got %v", ids(again))
	}
	assertLag(t, s, "mailer", store.ConsumerLag{Name: "mailer"})

	// A consumer created from the oldest gets what was there before it.
	createConsumer(t, s, "archive", true)
	if got := readAll(t, watch(t, s, store.FeedQuery{Consumer: "archive"})); len(got) != 3+10+5 {
		t.Errorf("a consumer from the oldest got %d changes, want 18", len(got))
	}
	// Creating it again changes nothing: its position stays.
	createConsumer(t, s, "archive", true)
	if got := readAll(t, watch(t, s, store.FeedQuery{Consumer: "archive"})); len(got) != 18 {
		t.Errorf("after creating it again, %d pending changes, want the same 18", len(got))
	}
}

func testFeedLag(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, _ := NewStore(t, client)
	createConsumer(t, s, "mailer", false)
	assertLag(t, s, "mailer", store.ConsumerLag{Name: "mailer"})
	at := func(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }
	write(t, s, store.Write{SubjectID: "alice", Decisions: decisions(at(0), "marketing.email", true), Now: at(0)})
	write(t, s, store.Write{SubjectID: "bob", Decisions: decisions(at(1), "marketing.email", false), Now: at(1)})
	write(t, s, store.Write{SubjectID: "carol", Decisions: decisions(at(2), "ads", false), Now: at(2)})
	// Not delivered yet.
	assertLag(t, s, "mailer", store.ConsumerLag{Name: "mailer", Unacknowledged: 3, UnacknowledgedOptOuts: 2, OldestUnacknowledgedOptOut: at(1)})
	// Delivered, not acknowledged: the same.
	got := readAll(t, watch(t, s, store.FeedQuery{Consumer: "mailer"}))
	assertLag(t, s, "mailer", store.ConsumerLag{Name: "mailer", Unacknowledged: 3, UnacknowledgedOptOuts: 2, OldestUnacknowledgedOptOut: at(1)})
	// Bob's opt-out applied: carol's is now the oldest.
	ack(t, s, "mailer", idOf(t, got, "bob"))
	assertLag(t, s, "mailer", store.ConsumerLag{Name: "mailer", Unacknowledged: 2, UnacknowledgedOptOuts: 1, OldestUnacknowledgedOptOut: at(2)})
	ack(t, s, "mailer", ids(got)...)
	assertLag(t, s, "mailer", store.ConsumerLag{Name: "mailer"})

	// Consumers lists every consumer by name.
	createConsumer(t, s, "ads", false)
	all, err := s.Consumers(ctx(t))
	if err != nil || len(all) != 2 || all[0].Name != "ads" || all[1].Name != "mailer" {
		t.Fatalf("Consumers = %+v, %v", all, err)
	}
}

func testFeedTrimmedCounted(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, prefix := NewStore(t, client)
	createConsumer(t, s, "reader", false)  // reads, but acknowledges only the first
	createConsumer(t, s, "sleeper", false) // never reads
	createConsumer(t, s, "done", false)    // acknowledges everything
	for i := range 6 {
		write(t, s, store.Write{SubjectID: "alice", Decisions: decisions(t0, "ads", i%2 == 0)})
	}
	delivered := readAll(t, watch(t, s, store.FeedQuery{Consumer: "reader"}))
	ack(t, s, "reader", delivered[0].ID)
	ack(t, s, "done", ids(readAll(t, watch(t, s, store.FeedQuery{Consumer: "done"})))...)
	for range 3 {
		write(t, s, store.Write{SubjectID: "alice", Decisions: decisions(t0, "ads", false)})
	}

	// Retention trims the first seven (as XADD MINID would, exactly).
	feed := feedKeyOf(t, prefix, delivered[0].ID) // alice's partition
	entries := client.XRange(ctx(t), feed, "-", "+").Val()
	if len(entries) != 9 {
		t.Fatalf("%d feed entries, want 9", len(entries))
	}
	if err := client.XTrimMinID(ctx(t), feed, entries[7].ID).Err(); err != nil {
		t.Fatal(err)
	}
	// reader: 5 pending (2-6) and entry 7, never delivered, are gone.
	assertLag(t, s, "reader", store.ConsumerLag{Name: "reader", Unacknowledged: 2, UnacknowledgedOptOuts: 2,
		OldestUnacknowledgedOptOut: t0, TrimmedUnacknowledged: 6})
	assertLag(t, s, "sleeper", store.ConsumerLag{Name: "sleeper", Unacknowledged: 2, UnacknowledgedOptOuts: 2,
		OldestUnacknowledgedOptOut: t0, TrimmedUnacknowledged: 7})
	assertLag(t, s, "done", store.ConsumerLag{Name: "done", Unacknowledged: 2, UnacknowledgedOptOuts: 2,
		OldestUnacknowledgedOptOut: t0, TrimmedUnacknowledged: 1})

	// Counted once, and kept after the consumers catch up.
	for _, name := range []string{"reader", "sleeper", "done"} {
		got := readAll(t, watch(t, s, store.FeedQuery{Consumer: name}))
		if !slices.Equal(ids(got), []string{partitionOf(t, delivered[0].ID) + "-" + entries[7].ID, partitionOf(t, delivered[0].ID) + "-" + entries[8].ID}) {
			t.Errorf("%s got %v after the trim, want the two entries kept", name, ids(got))
		}
		ack(t, s, name, ids(got)...)
	}
	for name, trimmed := range map[string]int64{"reader": 6, "sleeper": 7, "done": 1} {
		assertLag(t, s, name, store.ConsumerLag{Name: name, TrimmedUnacknowledged: trimmed})
	}
}

func testFeedErasedPendingSkipped(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, prefix := NewStore(t, client)
	createConsumer(t, s, "mailer", false)
	for i := range 3 {
		write(t, s, store.Write{SubjectID: "alice", Decisions: decisions(t0, "ads", i == 1)})
	}
	got := readAll(t, watch(t, s, store.FeedQuery{Consumer: "mailer"}))
	if len(got) != 3 {
		t.Fatalf("%d changes, want 3", len(got))
	}
	feed := feedKeyOf(t, prefix, got[1].ID)
	deleted := strings.SplitN(got[1].ID, "-", 2)[1]
	if err := client.XDel(ctx(t), feed, deleted).Err(); err != nil {
		t.Fatal(err)
	}
	assertLag(t, s, "mailer", store.ConsumerLag{Name: "mailer", Unacknowledged: 2, UnacknowledgedOptOuts: 2, OldestUnacknowledgedOptOut: t0})

	again := readAll(t, watch(t, s, store.FeedQuery{Consumer: "mailer"}))
	if !slices.Equal(ids(again), []string{got[0].ID, got[2].ID}) {
		t.Errorf("redelivered %v, want %v without the deleted entry", ids(again), []string{got[0].ID, got[2].ID})
	}
	if pending := client.XPending(ctx(t), feed, "mailer").Val(); pending.Count != 2 {
		t.Errorf("%d pending after the watch, want 2 (the deleted one acknowledged)", pending.Count)
	}
	ack(t, s, "mailer", ids(again)...)
	assertLag(t, s, "mailer", store.ConsumerLag{Name: "mailer"})
}

func testFeedDeleteConsumer(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, prefix := NewStore(t, client)
	createConsumer(t, s, "mailer", false)
	write(t, s, store.Write{SubjectID: "alice", Decisions: decisions(t0, "ads", false)})
	if err := s.DeleteConsumer(ctx(t), "mailer"); err != nil {
		t.Fatal(err)
	}
	if all, err := s.Consumers(ctx(t)); err != nil || len(all) != 0 {
		t.Errorf("Consumers after the delete = %+v, %v", all, err)
	}
	for _, feed := range scanKeys(t, client, prefix+":*:feed") {
		if groups := client.XInfoGroups(ctx(t), feed).Val(); len(groups) != 0 {
			t.Errorf("%s still has groups %+v", feed, groups)
		}
	}
	if _, err := s.WatchFeed(ctx(t), store.FeedQuery{Consumer: "mailer"}); !errors.Is(err, store.ErrConsumerNotFound) {
		t.Errorf("watching a deleted consumer: %v, want ErrConsumerNotFound", err)
	}
}
