package storetest

import (
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/store"
)

func testKeyNames(t *testing.T, client redis.UniversalClient) {
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
}

func testFeedEntryPerWrite(t *testing.T, client redis.UniversalClient) {
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
}
