package storetest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/store"
)

func testErase(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	old, prefix := NewStore(t, client)
	s := NewStoreOn(t, client, prefix, NewHMACKey, HMACKey)
	const subject = "erase-me@example.com"
	// History under the old key, then more under the new one; the
	// idempotency record stays under the old key's name.
	write(t, old, store.Write{SubjectID: subject, IdempotencyKey: "req-1", Decisions: decisions(t0, "ads", true)})
	write(t, old, store.Write{SubjectID: subject, Decisions: decisions(t0, "analytics", true), Event: store.EventInfo{
		Type: domain.EventUpdate, Actor: "visitor", Source: domain.SourceBanner, Client: "ua=" + subject}})
	write(t, s, store.Write{SubjectID: subject, Decisions: decisions(t0, "ads", false)})
	write(t, s, store.Write{SubjectID: subject, Event: store.EventInfo{Type: domain.EventAccess, Actor: "key:ops", Source: domain.SourceAPI, Reason: "ticket 7"}})
	write(t, s, store.Write{SubjectID: "bystander", Decisions: decisions(t0, "ads", true)})
	bystander := get(t, s, "bystander")

	res, err := s.Erase(ctx(t), store.Erasure{SubjectID: subject, Actor: "key:ops", Reason: "ticket 8", Channel: "grpc", Now: t0.Add(time.Hour)})
	if err != nil || !res.Erased || res.FeedEntriesDeleted != 3 {
		t.Fatalf("Erase = %+v, %v; want erased with its 3 feed entries deleted", res, err)
	}
	if rec := get(t, s, subject); rec.Revision != 0 || len(rec.Decisions) != 0 {
		t.Fatalf("after erasure the subject reads %+v", rec)
	}
	if evs := events(t, s, subject); len(evs) != 0 {
		t.Fatalf("after erasure the history has %d events", len(evs))
	}
	// Nothing in Redis holds the raw id or a key name derived from it.
	dump := dumpAll(t, client, prefix)
	for what, needle := range map[string]string{
		"the raw subject id": subject, "its key id (active key)": keyID(NewHMACKey, subject), "its key id (old key)": keyID(HMACKey, subject),
	} {
		if strings.Contains(dump, needle) {
			t.Errorf("Redis still holds %s %q", what, needle)
		}
	}
	// The feed keeps one entry: the erasure, for downstream systems.
	if feed := feedFor(t, client, prefix, subject); len(feed) != 1 || !strings.Contains(feed[0], `"t":"erase"`) {
		t.Fatalf("the subject's feed entries after erasure: %q, want only the erasure", feed)
	}
	// The anonymous tombstone.
	stones, err := s.Tombstones(ctx(t), s.PartitionOf(subject))
	want := []store.Tombstone{{At: t0.Add(time.Hour), Actor: "key:ops", Reason: "ticket 8", Channel: "grpc"}}
	if err != nil || !reflect.DeepEqual(stones, want) {
		t.Fatalf("tombstones = %+v, %v; want %+v", stones, err, want)
	}
	// The retried write of req-1 is a new write now, not a replay.
	if res := write(t, s, store.Write{SubjectID: subject, IdempotencyKey: "req-1", Decisions: decisions(t0, "ads", true)}); res.Replayed || res.Record.Revision != 1 {
		t.Fatalf("an idempotency key of the erased subject replayed: %+v", res)
	}
	assertUnchanged(t, s, "bystander", bystander, 1)
}

func testEraseTwice(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, prefix := NewStore(t, client)
	write(t, s, store.Write{SubjectID: "alice", Decisions: decisions(t0, "ads", true)})
	for i, wantErased := range []bool{true, false} {
		res, err := s.Erase(ctx(t), store.Erasure{SubjectID: "alice", Actor: "visitor"})
		if err != nil || res.Erased != wantErased {
			t.Fatalf("erasure %d = %+v, %v; want erased %v", i+1, res, err, wantErased)
		}
	}
	if res, err := s.Erase(ctx(t), store.Erasure{SubjectID: "nobody", Actor: "visitor"}); err != nil || res.Erased {
		t.Fatalf("erasing nobody = %+v, %v", res, err)
	}
	stones, _ := s.Tombstones(ctx(t), s.PartitionOf("alice"))
	if len(stones) != 1 {
		t.Fatalf("%d tombstones, want 1", len(stones))
	}
	if feed := feedFor(t, client, prefix, "alice"); len(feed) != 1 {
		t.Fatalf("alice's feed entries: %q, want the one erasure", feed)
	}
}

func testEraseNamesLinkedVisitors(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, _ := NewStore(t, client)
	link(t, s, visitorA, "user-1")
	link(t, s, visitorB, "user-1")
	res, err := s.Erase(ctx(t), store.Erasure{SubjectID: visitorB, Actor: "visitor"})
	if err != nil || !res.Erased || len(res.LinkedVisitors) != 0 {
		t.Fatalf("erasing a visitor = %+v, %v", res, err)
	}
	res, err = s.Erase(ctx(t), store.Erasure{SubjectID: "user-1", Actor: "key:ops"})
	if err != nil || !reflect.DeepEqual(res.LinkedVisitors, []string{visitorA, visitorB}) {
		t.Fatalf("erasing the user = %+v, %v; want both visitors named", res, err)
	}
}

// keyID is the id part of a subject's key names under hmacKey (as the
// store's keys.go derives it).
func keyID(hmacKey []byte, subjectID string) string {
	mac := hmac.New(sha256.New, hmacKey)
	mac.Write([]byte(subjectID))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:16])
}

// dumpAll is every key name and value under prefix as text, to search for
// what must not be there.
func dumpAll(t testing.TB, client redis.UniversalClient, prefix string) string {
	t.Helper()
	var b strings.Builder
	for _, key := range scanKeys(t, client, prefix+":*") {
		b.WriteString(key + "\n")
		switch client.Type(ctx(t), key).Val() {
		case "string":
			b.WriteString(client.Get(ctx(t), key).Val())
		case "hash":
			fmt.Fprint(&b, client.HGetAll(ctx(t), key).Val())
		case "list":
			fmt.Fprint(&b, client.LRange(ctx(t), key, 0, -1).Val())
		case "set":
			fmt.Fprint(&b, client.SMembers(ctx(t), key).Val())
		case "stream":
			fmt.Fprint(&b, client.XRange(ctx(t), key, "-", "+").Val())
		default:
			t.Fatalf("dumpAll: key %s of an unexpected type", key)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// feedFor is the events of the subject's change-feed entries (opening the
// sealed subject ids), oldest first.
func feedFor(t testing.TB, client redis.UniversalClient, prefix, subjectID string) []string {
	t.Helper()
	var out []string
	for _, key := range scanKeys(t, client, prefix+":*:feed") {
		for _, e := range client.XRange(ctx(t), key, "-", "+").Val() {
			sealed, _ := e.Values["sub"].(string)
			if sub, err := Sealer.Open(sealed); err == nil && string(sub) == subjectID {
				ev, _ := e.Values["ev"].(string)
				out = append(out, ev)
			}
		}
	}
	return out
}
