package storetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/consentd/consentd/server/store"
)

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
