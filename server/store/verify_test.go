package store_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/internal/redistest"
	"github.com/consentd/consentd/server/store"
	"github.com/consentd/consentd/server/store/storetest"
)

// The tamper tests write through the store, then change Redis the way an
// attacker who can write to it but holds none of the operator's keys would:
// with a plain client. A verification must name what they did.

// verified runs a verification of everything and one of the subject alone,
// and returns the findings of both.
func verified(t *testing.T, s *store.Store, subject string, strict bool) (all, one []store.Finding, report store.VerifyReport) {
	t.Helper()
	collect := func(into *[]store.Finding) store.VerifyOptions {
		return store.VerifyOptions{Strict: strict, OnFinding: func(f store.Finding) { *into = append(*into, f) }}
	}
	report, err := s.Verify(t.Context(), store.ScanScope{All: true}, "", collect(&all))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if subject != "" {
		if _, err := s.VerifySubject(t.Context(), subject, collect(&one)); err != nil {
			t.Fatalf("VerifySubject: %v", err)
		}
	}
	return all, one, report
}

func kinds(findings []store.Finding) []store.FindingKind {
	var out []store.FindingKind
	for _, f := range findings {
		if !slices.Contains(out, f.Kind) {
			out = append(out, f.Kind)
		}
	}
	slices.Sort(out)
	return out
}

// writes applies n writes to subject alternating grant and denial of ads,
// starting with a grant.
func writes(t *testing.T, s *store.Store, subject string, n int) {
	t.Helper()
	for i := range n {
		w := update(subject, i%2 == 0)
		w.Decisions = map[string]domain.Decision{"ads": {Granted: i%2 == 0, DecidedAt: time.Unix(1_750_000_000, 0), Source: domain.SourceAPI}}
		if _, err := s.Write(t.Context(), w); err != nil {
			t.Fatal(err)
		}
	}
}

// keyOf is the one key under prefix whose name contains part.
func keyOf(t *testing.T, c *redis.Client, prefix, part string) string {
	t.Helper()
	var found []string
	for _, k := range c.Keys(t.Context(), prefix+":*").Val() {
		if strings.Contains(k, part) {
			found = append(found, k)
		}
	}
	if len(found) != 1 {
		t.Fatalf("keys with %q: %q, want one", part, found)
	}
	return found[0]
}

// feedEntries are the entries of every partition's feed under prefix.
func feedEntries(t *testing.T, c *redis.Client, prefix string) (feed string, entries []redis.XMessage) {
	t.Helper()
	for _, k := range c.Keys(t.Context(), prefix+":*:feed").Val() {
		feed = k
		entries = append(entries, c.XRange(t.Context(), k, "-", "+").Val()...)
	}
	return feed, entries
}

// TestVerifyFindsTampering: every way of changing Redis without the
// operator's keys below is found by a verification of everything, of the
// kind it is, and (but for a copy over another subject's names) by a
// verification of the subject alone; no finding names the subject.
func TestVerifyFindsTampering(t *testing.T) {
	client := redistest.Start(t).Client(t)
	for _, tc := range slices.Concat(historyEdits(), stateEdits(), rollbacks(), deletions(), forgeries()) {
		t.Run(tc.name, func(t *testing.T) {
			s, prefix := storetest.NewStore(t, client)
			if all, one, _ := verified(t, s, tampered, false); len(all)+len(one) != 0 {
				t.Fatalf("findings before tampering: %v %v", all, one)
			}
			tc.tamper(t, s, client, prefix)
			all, one, report := verified(t, s, tampered, false)
			if !slices.Contains(kinds(all), tc.want) {
				t.Errorf("Verify found %v, want a finding of kind %s", all, tc.want)
			}
			if report.Findings[tc.want] == 0 || report.FindingsTotal() != len(all) {
				t.Errorf("report %+v, want it to count the %d findings reported", report, len(all))
			}
			if tc.want != store.FindingMisplaced && !slices.Contains(kinds(one), tc.want) {
				t.Errorf("VerifySubject found %v, want a finding of kind %s", one, tc.want)
			}
			for _, f := range append(all, one...) {
				if strings.Contains(f.String(), tampered) {
					t.Errorf("a finding names the subject: %s", f)
				}
			}
		})
	}
}

// The subject tampered with, and the one whose names a copy takes.
const tampered, bystander = "alice", "bob"

// tampering is one way of changing Redis: tamper writes through s and
// changes Redis with c, and a verification must find it as want.
type tampering struct {
	name   string
	tamper func(t *testing.T, s *store.Store, c *redis.Client, prefix string)
	want   store.FindingKind
}

// historyEdits: the history edited: an event changed (its unkeyed chain
// recomputed), removed, or the oldest dropped.
func historyEdits() []tampering {
	return []tampering{
		{"a. an event edited, with the old unkeyed sha1 chain recomputed over it and after it", func(t *testing.T, s *store.Store, c *redis.Client, prefix string) {
			writes(t, s, tampered, 4)
			history := keyOf(t, c, prefix, ":h:")
			events := c.LRange(t.Context(), history, 0, -1).Val()
			prev := events[0][len(events[0])-42 : len(events[0])-2]
			for i := 1; i < len(events); i++ {
				content := events[i][:len(events[i])-len(`,"h":"`)-42]
				if i == 1 {
					content = strings.Replace(content, `"ads":"d"`, `"ads":"g"`, 1)
				}
				events[i] = hashed(content, prev)
				prev = events[i][len(events[i])-42 : len(events[i])-2]
				c.LSet(t.Context(), history, int64(i), events[i])
			}
		}, store.FindingHistory},
		{"b. an event deleted from the middle and the later ones renumbered", func(t *testing.T, s *store.Store, c *redis.Client, prefix string) {
			writes(t, s, tampered, 5)
			history := keyOf(t, c, prefix, ":h:")
			events := c.LRange(t.Context(), history, 0, -1).Val()
			c.LRem(t.Context(), history, 1, events[2])
			for i := 3; i < 5; i++ {
				c.LSet(t.Context(), history, int64(i-1), strings.Replace(events[i], fmt.Sprintf(`"rev":%d`, i+1), fmt.Sprintf(`"rev":%d`, i), 1))
			}
		}, store.FindingHistory},
		{"c. the oldest events dropped (LTRIM)", func(t *testing.T, s *store.Store, c *redis.Client, prefix string) {
			writes(t, s, tampered, 5)
			c.LTrim(t.Context(), keyOf(t, c, prefix, ":h:"), 2, -1)
		}, store.FindingHistory},
	}
}

// stateEdits: the state changed without the keys, alone or with the history
// to match.
func stateEdits() []tampering {
	return []tampering{
		{"d. a denial in the state flipped to a grant", func(t *testing.T, s *store.Store, c *redis.Client, prefix string) {
			writes(t, s, tampered, 2)
			state := keyOf(t, c, prefix, ":s:")
			denial := c.HGet(t.Context(), state, "ads").Val()
			if !strings.HasPrefix(denial, "d|") {
				t.Fatalf("ads = %q, want a denial", denial)
			}
			c.HSet(t.Context(), state, "ads", "g|"+denial[2:])
		}, store.FindingState},
		{"e. the last event removed, the revision lowered and the old decision restored", func(t *testing.T, s *store.Store, c *redis.Client, prefix string) {
			writes(t, s, tampered, 1)
			state := keyOf(t, c, prefix, ":s:")
			before := c.HGet(t.Context(), state, "ads").Val()
			w := update(tampered, false)
			w.Decisions = map[string]domain.Decision{"ads": {Granted: false, DecidedAt: time.Unix(1_750_000_000, 0), Source: domain.SourceAPI}}
			if _, err := s.Write(t.Context(), w); err != nil {
				t.Fatal(err)
			}
			c.RPop(t.Context(), keyOf(t, c, prefix, ":h:"))
			c.HSet(t.Context(), state, "_rev", "1", "ads", before)
		}, store.FindingState},
		{"e. the same with the tag copied before the last write: state and history agree, the feed holds the removed revision", func(t *testing.T, s *store.Store, c *redis.Client, prefix string) {
			writes(t, s, tampered, 1)
			state := keyOf(t, c, prefix, ":s:")
			copied := c.HGetAll(t.Context(), state).Val()
			w := update(tampered, false)
			w.Decisions = map[string]domain.Decision{"ads": {Granted: false, DecidedAt: time.Unix(1_750_000_000, 0), Source: domain.SourceAPI}}
			if _, err := s.Write(t.Context(), w); err != nil {
				t.Fatal(err)
			}
			c.RPop(t.Context(), keyOf(t, c, prefix, ":h:"))
			c.HSet(t.Context(), state, "_rev", copied["_rev"], "ads", copied["ads"], "_tag", copied["_tag"])
		}, store.FindingRollback},
	}
}

// rollbacks: state and history put back together while the feed holds what
// came after.
func rollbacks() []tampering {
	return []tampering{
		{"f. state and history rolled back together to an earlier copy while the feed holds the later entries", func(t *testing.T, s *store.Store, c *redis.Client, prefix string) {
			writes(t, s, tampered, 2)
			state, history := keyOf(t, c, prefix, ":s:"), keyOf(t, c, prefix, ":h:")
			savedState, savedHistory := c.Dump(t.Context(), state).Val(), c.Dump(t.Context(), history).Val()
			writes(t, s, tampered, 2)
			c.RestoreReplace(t.Context(), state, 0, savedState)
			c.RestoreReplace(t.Context(), history, 0, savedHistory)
		}, store.FindingRollback},
		{"f. the same, then written again: the feed's event for a revision is not the history's", func(t *testing.T, s *store.Store, c *redis.Client, prefix string) {
			writes(t, s, tampered, 2)
			state, history := keyOf(t, c, prefix, ":s:"), keyOf(t, c, prefix, ":h:")
			savedState, savedHistory := c.Dump(t.Context(), state).Val(), c.Dump(t.Context(), history).Val()
			writes(t, s, tampered, 1)
			c.RestoreReplace(t.Context(), state, 0, savedState)
			c.RestoreReplace(t.Context(), history, 0, savedHistory)
			w := update(tampered, false) // a denial where the removed revision 3 granted
			w.Decisions = map[string]domain.Decision{"ads": {Granted: false, DecidedAt: time.Unix(1_750_000_000, 0), Source: domain.SourceAPI}}
			if _, err := s.Write(t.Context(), w); err != nil {
				t.Fatal(err)
			}
		}, store.FindingRollback},
	}
}

// deletions: a part of a subject deleted while the others remain.
func deletions() []tampering {
	return []tampering{
		{"g. the state deleted while its history and feed entries remain", func(t *testing.T, s *store.Store, c *redis.Client, prefix string) {
			writes(t, s, tampered, 2)
			c.Del(t.Context(), keyOf(t, c, prefix, ":s:"))
		}, store.FindingMissing},
		{"g. the state and history deleted while the data key and feed entries remain", func(t *testing.T, s *store.Store, c *redis.Client, prefix string) {
			writes(t, s, tampered, 2)
			c.Del(t.Context(), keyOf(t, c, prefix, ":s:"), keyOf(t, c, prefix, ":h:"))
		}, store.FindingMissing},
		{"g. the data key deleted while the state remains", func(t *testing.T, s *store.Store, c *redis.Client, prefix string) {
			writes(t, s, tampered, 2)
			c.Del(t.Context(), keyOf(t, c, prefix, ":k:"))
		}, store.FindingMissing},
		{"g. the history deleted while histories are kept as long as states", func(t *testing.T, s *store.Store, c *redis.Client, prefix string) {
			writes(t, s, tampered, 2)
			c.Del(t.Context(), keyOf(t, c, prefix, ":h:"))
		}, store.FindingMissing},
	}
}

// forgeries: feed entries made up or changed, and a subject copied over
// another's names.
func forgeries() []tampering {
	return []tampering{
		{"h. a feed entry made up", func(t *testing.T, s *store.Store, c *redis.Client, prefix string) {
			writes(t, s, tampered, 1)
			feed, entries := feedEntries(t, c, prefix)
			c.XAdd(t.Context(), &redis.XAddArgs{Stream: feed, Values: []string{"d", entries[0].Values["d"].(string), "sub", "*bm9wZQ",
				"rev", "2", "p", "", "ev", `{"at":1,"s":"a","n":{"ads":"g"},"rev":2,"h":"0000000000000000000000000000000000000000"}`}})
		}, store.FindingForged},
		{"h. a feed entry copied with its event changed", func(t *testing.T, s *store.Store, c *redis.Client, prefix string) {
			writes(t, s, tampered, 1)
			feed, entries := feedEntries(t, c, prefix)
			values := []string{}
			for _, f := range []string{"d", "sub", "rev", "p", "ev"} {
				v := entries[0].Values[f].(string)
				if f == "ev" {
					v = strings.Replace(v, `"ads":"g"`, `"ads":"d"`, 1)
				}
				values = append(values, f, v)
			}
			c.XAdd(t.Context(), &redis.XAddArgs{Stream: feed, Values: values})
		}, store.FindingForged},
		{"h. a subject's state and history copied over another subject's names", func(t *testing.T, s *store.Store, c *redis.Client, prefix string) {
			// Two subjects of one partition, so the copy stays in its slot.
			victim := ""
			for i := 0; victim == ""; i++ {
				if id := fmt.Sprintf("%s-%d", bystander, i); s.PartitionOf(id) == s.PartitionOf(tampered) {
					victim = id
				}
			}
			writes(t, s, tampered, 1)
			writes(t, s, victim, 2)
			aliceState, aliceHistory := nameOf(prefix, storetest.HMACKey, tampered, "s"), nameOf(prefix, storetest.HMACKey, tampered, "h")
			c.Copy(t.Context(), aliceState, nameOf(prefix, storetest.HMACKey, victim, "s"), 0, true)
			c.Copy(t.Context(), aliceHistory, nameOf(prefix, storetest.HMACKey, victim, "h"), 0, true)
		}, store.FindingMisplaced},
	}
}

// What the MACs cannot show: a subject put back to an earlier authentic
// copy of its state and history once the change feed no longer holds the
// entries written after it (trimmed with the feed's retention, or deleted
// by the attacker: XDEL leaves no trace). The earlier copy is authentic in
// every part; only a record kept outside Redis (a consumer's) contradicts
// it. This test pins that limit, so that a change claiming more shows here.
func TestVerifyCannotSeeARollbackTheFeedNoLongerHolds(t *testing.T) {
	client := redistest.Start(t).Client(t)
	s, prefix := storetest.NewStore(t, client)
	writes(t, s, "alice", 2)
	state, history := keyOf(t, client, prefix, ":s:"), keyOf(t, client, prefix, ":h:")
	savedState, savedHistory := client.Dump(t.Context(), state).Val(), client.Dump(t.Context(), history).Val()
	writes(t, s, "alice", 2)
	client.RestoreReplace(t.Context(), state, 0, savedState)
	client.RestoreReplace(t.Context(), history, 0, savedHistory)
	feed, entries := feedEntries(t, client, prefix)
	for _, e := range entries[2:] {
		client.XDel(t.Context(), feed, e.ID)
	}
	if all, one, _ := verified(t, s, "alice", true); len(all)+len(one) != 0 {
		t.Fatalf("findings %v %v: the limit moved; update this test and the README", all, one)
	}
}

// Untampered data verifies with no finding, in every shape consentd leaves
// it: subjects written now, subjects written before keyed MACs (sha1 chains,
// no tag, no data key, feed entries with their ids sealed with the
// operator's key), subjects under a previous HMAC key during a rotation,
// erased subjects, and a history expired under a history retention.
func TestVerifyFindsNothingInUntamperedData(t *testing.T) {
	client := redistest.Start(t).Client(t)
	before, prefix := storetest.NewStore(t, client)
	ctx := t.Context()
	for i := range 20 {
		writes(t, before, fmt.Sprintf("subject-%d", i), i%4+1)
	}
	writes(t, before, "moved-later", 2)

	// A subject written before keyed MACs: its history rewritten as the sha1
	// code wrote it, its state without tag or data key, its feed entries as
	// they were.
	writes(t, before, "legacy", 2)
	legacyState, legacyHistory := nameOf(prefix, storetest.HMACKey, "legacy", "s"), nameOf(prefix, storetest.HMACKey, "legacy", "h")
	handle := client.HGet(ctx, legacyState, "_dk").Val()
	client.HDel(ctx, legacyState, "_dk", "_tag")
	client.Del(ctx, legacyState[:strings.Index(legacyState, "}:")+2]+"k:"+handle)
	e1 := hashed(`{"at":1750000000000,"a":"visitor","s":"b","c":"r","n":{"ads":"g"},"rev":1`, "")
	e2 := hashed(`{"at":1750000001000,"a":"key:app","s":"a","c":"g","n":{"ads":"d"},"rev":2,"o":"g"`, e1[len(e1)-42:len(e1)-2])
	client.Del(ctx, legacyHistory)
	client.RPush(ctx, legacyHistory, e1, e2)
	feed := before.PartitionOf("legacy")
	feedKey := fmt.Sprintf("%s:{p%d}:feed", prefix, feed)
	for _, e := range client.XRange(ctx, feedKey, "-", "+").Val() {
		if e.Values["d"] == handle {
			client.XDel(ctx, feedKey, e.ID)
		}
	}
	for i, e := range []string{e1, e2} {
		client.XAdd(ctx, &redis.XAddArgs{Stream: feedKey, Values: []string{"sub", storetest.Sealer.Seal([]byte("legacy")), "rev", fmt.Sprint(i + 1), "ev", e}})
	}

	// Erased subjects: their entries deleted, their notices kept.
	for _, id := range []string{"subject-3", "subject-7"} {
		if _, err := before.Erase(ctx, store.Erasure{SubjectID: id, Actor: "visitor"}); err != nil {
			t.Fatal(err)
		}
	}
	// The rotation's step 2: some subjects moved by a write, the others
	// still under the previous key.
	rotating := storetest.NewStoreOn(t, client, prefix, storetest.NewHMACKey, storetest.HMACKey)
	writes(t, rotating, "moved-later", 1)

	// A history expired under a history retention.
	retained, err := store.New(client, store.Options{Prefix: prefix, HMACKey: storetest.NewHMACKey, PreviousHMACKeys: [][]byte{storetest.HMACKey},
		Sealer: storetest.Sealer, Partitions: 16, HistoryRetention: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	client.Del(ctx, nameOf(prefix, storetest.HMACKey, "subject-1", "h"))

	all, _, report := verified(t, retained, "", false)
	if len(all) != 0 {
		t.Fatalf("findings in untampered data: %v", all)
	}
	// 22 subjects written, 2 erased.
	if report.Subjects != 20 || report.Unauthenticated != 1 || report.Verified != 19 || report.FeedEntries == 0 {
		t.Errorf("report %+v, want 20 subjects, 19 verified and the legacy one unauthenticated", report)
	}
	for _, id := range []string{"legacy", "moved-later", "subject-1", "subject-2", "subject-3"} {
		var found []store.Finding
		r, err := retained.VerifySubject(ctx, id, store.VerifyOptions{OnFinding: func(f store.Finding) { found = append(found, f) }})
		if err != nil || len(found) != 0 {
			t.Errorf("VerifySubject(%s): %v, %v (%+v)", id, found, err, r)
		}
	}

	// Strict: the legacy subject and its feed entries are findings.
	strict, _, _ := verified(t, retained, "", true)
	if got := kinds(strict); !slices.Equal(got, []store.FindingKind{store.FindingUnauthenticated}) || len(strict) != 3 {
		t.Errorf("strict findings %v, want the legacy subject and its two feed entries, unauthenticated", strict)
	}
}

// nameOf is the name of a subject's key of the given kind ("s" state, "h"
// history) under hmacKey, as keys.go makes it.
func nameOf(prefix string, hmacKey []byte, subject, kind string) string {
	sum := sha256.Sum256([]byte(subject))
	partition := int(binary.BigEndian.Uint16(sum[:2])) % 16 // storetest's stores have 16 partitions
	mac := hmac.New(sha256.New, hmacKey)
	mac.Write([]byte(subject))
	return fmt.Sprintf("%s:{p%d}:%s:%s", prefix, partition, kind, base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:16]))
}
