package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/store"
)

// RunFeed runs the change feed's conformance tests against client, in
// parallel subtests each on its own key prefix.
func RunFeed(t *testing.T, client redis.UniversalClient) {
	t.Run("feed: a cursor resumes without a miss or a duplicate", func(t *testing.T) {
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
	})

	t.Run("feed: a partition's backlog comes in order, in batches of at most the batch size", func(t *testing.T) {
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
	})

	t.Run("feed: without a cursor a watch starts now, or at the oldest with from_oldest", func(t *testing.T) {
		t.Parallel()
		s, _ := NewStore(t, client)
		before := feedWrites(t, s, 0, 5)
		now := watch(t, s, store.FeedQuery{})
		oldest := watch(t, s, store.FeedQuery{FromOldest: true})
		after := feedWrites(t, s, 5, 5)
		assertExactly(t, readAll(t, now), after)
		assertExactly(t, readAll(t, oldest), append(before, after...))
	})

	t.Run("feed: a change carries the subject, revision, event and opt-out", func(t *testing.T) {
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
		if deny.Revision != 2 || !deny.Event.GPC || !deny.Event.OptOut() || *deny.Event.Changes[0].Old != true {
			t.Errorf("second change = %+v", deny)
		}
		if !strings.HasPrefix(grant.ID, partitionOf(t, grant.ID)+"-") || grant.ID == deny.ID {
			t.Errorf("ids %q and %q", grant.ID, deny.ID)
		}
	})

	t.Run("feed: a consumer that disconnects misses nothing, and sees nothing twice once it acknowledged", func(t *testing.T) {
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
	})

	t.Run("feed: the purpose filter keeps changes of those purposes and those that concern every purpose", func(t *testing.T) {
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
	})

	t.Run("feed: lag counts unacknowledged opt-outs and when the oldest happened", func(t *testing.T) {
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
	})

	t.Run("feed: entries retention trimmed before a consumer acknowledged them are counted", func(t *testing.T) {
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
	})

	t.Run("feed: pending entries an erasure deleted are skipped and acknowledged", func(t *testing.T) {
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
	})

	t.Run("feed: deleting a consumer drops its groups and name", func(t *testing.T) {
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
	})

	t.Run("feed: bad input names its field", func(t *testing.T) {
		t.Parallel()
		s, prefix := NewStore(t, client)
		createConsumer(t, s, "mailer", false)
		good := watch(t, s, store.FeedQuery{}).Cursor()
		other, _ := NewStore(t, client)
		foreign := watch(t, other, store.FeedQuery{}).Cursor()
		eight, err := store.New(client, store.Options{Prefix: prefix, HMACKey: HMACKey, Sealer: Sealer, Partitions: 8})
		if err != nil {
			t.Fatal(err)
		}
		otherCount := watch(t, eight, store.FeedQuery{}).Cursor()
		tampered := []byte(good)
		tampered[len(tampered)/2] ^= 1
		tooMany := make([]string, store.MaxAckIDs+1)
		for i := range tooMany {
			tooMany[i] = fmt.Sprintf("0-1-%d", i)
		}
		manyPurposes := make([]string, store.MaxFeedPurposes+1)
		for i := range manyPurposes {
			manyPurposes[i] = fmt.Sprintf("p%d", i)
		}
		watchErr := func(q store.FeedQuery) error { _, err := s.WatchFeed(ctx(t), q); return err }
		ackErr := func(consumer string, ids ...string) error {
			_, err := s.AcknowledgeChanges(ctx(t), consumer, ids)
			return err
		}
		for name, tc := range map[string]struct {
			err   error
			field string // "" for ErrConsumerNotFound
		}{
			"malformed cursor":                 {watchErr(store.FeedQuery{Cursor: "not a cursor"}), "cursor"},
			"truncated cursor":                 {watchErr(store.FeedQuery{Cursor: good[:len(good)-3]}), "cursor"},
			"tampered cursor":                  {watchErr(store.FeedQuery{Cursor: string(tampered)}), "cursor"},
			"cursor of another feed":           {watchErr(store.FeedQuery{Cursor: foreign}), "cursor"},
			"cursor of other partitions":       {watchErr(store.FeedQuery{Cursor: otherCount}), "cursor"},
			"batch size below 0":               {watchErr(store.FeedQuery{BatchSize: -1}), "batch_size"},
			"batch size above the maximum":     {watchErr(store.FeedQuery{BatchSize: store.MaxFeedBatch + 1}), "batch_size"},
			"empty purpose":                    {watchErr(store.FeedQuery{Purposes: []string{"ads", ""}}), "purposes[1]"},
			"internal field as purpose":        {watchErr(store.FeedQuery{Purposes: []string{"_rev"}}), "purposes[0]"},
			"too many purposes":                {watchErr(store.FeedQuery{Purposes: manyPurposes}), "purposes"},
			"watch: bad consumer name":         {watchErr(store.FeedQuery{Consumer: "Mailer!"}), "consumer"},
			"watch: unknown consumer":          {watchErr(store.FeedQuery{Consumer: "nobody"}), ""},
			"create: empty name":               {s.CreateConsumer(ctx(t), "", false), "consumer"},
			"create: name too long":            {s.CreateConsumer(ctx(t), strings.Repeat("a", 65), false), "consumer"},
			"create: upper case":               {s.CreateConsumer(ctx(t), "Mailer", false), "consumer"},
			"delete: bad name":                 {s.DeleteConsumer(ctx(t), "a b"), "consumer"},
			"delete: unknown consumer":         {s.DeleteConsumer(ctx(t), "nobody"), ""},
			"ack: bad consumer name":           {ackErr("a/b", "0-1-0"), "consumer"},
			"ack: unknown consumer":            {ackErr("nobody", "0-1-0"), ""},
			"ack: no ids":                      {ackErr("mailer"), "change_ids"},
			"ack: too many ids":                {ackErr("mailer", tooMany...), "change_ids"},
			"ack: not an id":                   {ackErr("mailer", "0-1-0", "x"), "change_ids[1]"},
			"ack: stream id without partition": {ackErr("mailer", "1750000000000-0"), "change_ids[0]"},
			"ack: partition out of range":      {ackErr("mailer", "0-1-0", "0-1-1", "16-1-0"), "change_ids[2]"},
			"ack: not canonical":               {ackErr("mailer", "01-1-0"), "change_ids[0]"},
			"lag: unknown consumer":            {func() error { _, err := s.ConsumerLag(ctx(t), "nobody"); return err }(), ""},
		} {
			if tc.field == "" {
				if !errors.Is(tc.err, store.ErrConsumerNotFound) {
					t.Errorf("%s: %v, want ErrConsumerNotFound", name, tc.err)
				}
				continue
			}
			if got := inputField(tc.err); got != tc.field {
				t.Errorf("%s: %v, want an input error of %q, got one of %q", name, tc.err, tc.field, got)
			}
		}
		if all, err := s.Consumers(ctx(t)); err != nil || len(all) != 1 {
			t.Errorf("after refused calls, Consumers = %+v, %v; want mailer only", all, err)
		}
	})
}

// inputField is the request field the API names for a store input error
// (as api's toStatus maps them); "" for any other error.
func inputField(err error) string {
	var (
		batch    *store.BatchSizeError
		purposes *store.FeedPurposesError
		consumer *store.ConsumerNameError
		cursor   *store.InvalidCursorError
		ack      *store.AckIDsError
	)
	indexed := func(field string, i int) string {
		if i < 0 {
			return field
		}
		return fmt.Sprintf("%s[%d]", field, i)
	}
	switch {
	case errors.As(err, &batch):
		return "batch_size"
	case errors.As(err, &purposes):
		return indexed("purposes", purposes.Index)
	case errors.As(err, &consumer):
		return "consumer"
	case errors.As(err, &cursor):
		return "cursor"
	case errors.As(err, &ack):
		return indexed("change_ids", ack.Index)
	}
	return ""
}

// feedWrites writes n changes to n subjects (so they spread over the
// partitions), named from index first on, and returns their subject ids.
func feedWrites(t *testing.T, s *store.Store, first, n int) []string {
	t.Helper()
	var subjects []string
	for i := first; i < first+n; i++ {
		subject := fmt.Sprintf("subject-%d", i)
		write(t, s, store.Write{SubjectID: subject, Decisions: decisions(t0, "ads", i%2 == 0)})
		subjects = append(subjects, subject)
	}
	return subjects
}

func watch(t *testing.T, s *store.Store, q store.FeedQuery) *store.FeedReader {
	t.Helper()
	r, err := s.WatchFeed(ctx(t), q)
	if err != nil {
		t.Fatalf("WatchFeed(%+v): %v", q, err)
	}
	return r
}

func read(t *testing.T, r *store.FeedReader) ([]store.FeedBatch, bool) {
	t.Helper()
	batches, more, err := r.Read(ctx(t))
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return batches, more
}

// readAll reads until the feed has nothing more right now.
func readAll(t *testing.T, r *store.FeedReader) []store.FeedChange {
	t.Helper()
	var all []store.FeedChange
	for {
		batches, more := read(t, r)
		for _, b := range batches {
			all = append(all, b.Changes...)
		}
		if len(batches) == 0 && !more {
			return all
		}
	}
}

// assertExactly checks that changes are one per subject of want (each
// subject was written once), none missing and none twice.
func assertExactly(t *testing.T, changes []store.FeedChange, want []string) {
	t.Helper()
	got := subjects(changes)
	if len(got) != len(want) || !sameSet(got, want) {
		t.Fatalf("got changes of %v, want one of each of %v", got, want)
	}
	seen := map[string]bool{}
	for _, c := range changes {
		if seen[c.ID] {
			t.Fatalf("change %s delivered twice", c.ID)
		}
		seen[c.ID] = true
	}
}

// changesBefore reports whether every change of the subjects first comes
// before every change of the subjects then.
func changesBefore(changes []store.FeedChange, first, then []string) bool {
	lastFirst, firstThen := -1, len(changes)
	for i, c := range changes {
		if slices.Contains(first, c.SubjectID) {
			lastFirst = i
		}
		if slices.Contains(then, c.SubjectID) && i < firstThen {
			firstThen = i
		}
	}
	return lastFirst < firstThen
}

func subjects(changes []store.FeedChange) []string {
	var out []string
	for _, c := range changes {
		out = append(out, c.SubjectID)
	}
	return out
}

func sameSet(a, b []string) bool {
	a, b = slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b))
	return slices.Equal(a, b)
}

func ids(changes []store.FeedChange) []string {
	var out []string
	for _, c := range changes {
		out = append(out, c.ID)
	}
	return out
}

func idOf(t *testing.T, changes []store.FeedChange, subject string) string {
	t.Helper()
	for _, c := range changes {
		if c.SubjectID == subject {
			return c.ID
		}
	}
	t.Fatalf("no change of %s", subject)
	return ""
}

func partitionOf(t *testing.T, changeID string) string {
	t.Helper()
	p, _, ok := strings.Cut(changeID, "-")
	if !ok {
		t.Fatalf("change id %q has no partition", changeID)
	}
	return p
}

// feedKeyOf is the stream of the change's partition (key layout: keys.go).
func feedKeyOf(t *testing.T, prefix, changeID string) string {
	t.Helper()
	return prefix + ":{p" + partitionOf(t, changeID) + "}:feed"
}

func createConsumer(t *testing.T, s *store.Store, name string, fromOldest bool) {
	t.Helper()
	if err := s.CreateConsumer(ctx(t), name, fromOldest); err != nil {
		t.Fatalf("CreateConsumer(%s): %v", name, err)
	}
}

func ack(t *testing.T, s *store.Store, consumer string, ids ...string) int64 {
	t.Helper()
	n, err := s.AcknowledgeChanges(ctx(t), consumer, ids)
	if err != nil {
		t.Fatalf("AcknowledgeChanges: %v", err)
	}
	return n
}

func consumerLag(t *testing.T, s *store.Store, name string) store.ConsumerLag {
	t.Helper()
	lag, err := s.ConsumerLag(ctx(t), name)
	if err != nil {
		t.Fatalf("ConsumerLag(%s): %v", name, err)
	}
	return lag
}

func assertLag(t *testing.T, s *store.Store, name string, want store.ConsumerLag) {
	t.Helper()
	got := consumerLag(t, s, name)
	if got.Name != want.Name || got.Unacknowledged != want.Unacknowledged || got.UnacknowledgedOptOuts != want.UnacknowledgedOptOuts ||
		!got.OldestUnacknowledgedOptOut.Equal(want.OldestUnacknowledgedOptOut) || got.TrimmedUnacknowledged != want.TrimmedUnacknowledged {
		t.Errorf("lag of %s = %+v, want %+v", name, got, want)
	}
}
