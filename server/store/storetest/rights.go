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
	"github.com/consentd/consentd/server/internal/eventually"
	"github.com/consentd/consentd/server/store"
)

// Visitor ids have the form the service mints; retention treats them apart.
const (
	visitorA = "v_AAAAAAAAAAAAAAAAAAAAAA"
	visitorB = "v_BBBBBBBBBBBBBBBBBBBBBB"
)

// runRights tests erasure, statuses (restriction, minors), links and
// retention.
func runRights(t *testing.T, client redis.UniversalClient) {
	t.Run("erasing a subject leaves nothing readable about it, under every known HMAC key", func(t *testing.T) {
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
	})

	t.Run("erasing twice, or erasing a subject never stored, is fine and adds nothing", func(t *testing.T) {
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
	})

	t.Run("erasing a user names the visitors linked to it; erasing a visitor names no user", func(t *testing.T) {
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
	})

	t.Run("restriction, minor status and guardian confirmation are stored and read everywhere", func(t *testing.T) {
		t.Parallel()
		s, _ := NewStore(t, client)
		yes, no := true, false
		at := func(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }
		steps := []struct {
			name  string
			w     store.Write
			check func(domain.Record) bool
		}{
			{"restrict", store.Write{Restrict: &yes, Now: at(1)}, func(r domain.Record) bool { return r.RestrictedAt.Equal(at(1)) }},
			{"lift", store.Write{Restrict: &no, Now: at(2)}, func(r domain.Record) bool { return !r.Restricted() }},
			{"mark minor", store.Write{Minor: &yes, Now: at(3)}, func(r domain.Record) bool { return r.MinorSince.Equal(at(3)) && r.GuardianAt.IsZero() }},
			{"guardian", store.Write{GuardianConfirmed: true, Now: at(4)}, func(r domain.Record) bool {
				return r.Minor() && r.GuardianAt.Equal(at(4)) && r.GuardianRevision == 3
			}},
			{"clear minor", store.Write{Minor: &no, Now: at(5)}, func(r domain.Record) bool { return !r.Minor() && r.GuardianAt.IsZero() && r.GuardianRevision == 0 }},
		}
		for _, step := range steps {
			step.w.SubjectID = "alice"
			res := write(t, s, step.w)
			purposes, err := s.GetPurposes(ctx(t), "alice", []string{"ads"})
			if err != nil {
				t.Fatal(err)
			}
			many, err := s.GetMany(ctx(t), []store.Lookup{{SubjectID: "alice", Purposes: []string{"ads"}}})
			if err != nil {
				t.Fatal(err)
			}
			for name, rec := range map[string]domain.Record{"write result": res.Record, "Get": get(t, s, "alice"), "GetPurposes": purposes, "GetMany": many[0]} {
				if !step.check(rec) {
					t.Errorf("%s: %s reads %+v", step.name, name, rec)
				}
			}
		}
		if evs := events(t, s, "alice"); len(evs) != len(steps) {
			t.Fatalf("%d events, want one per step", len(evs))
		}
	})

	t.Run("a linked visitor's reads and following writes go to its user", func(t *testing.T) {
		t.Parallel()
		s, _ := NewStore(t, client)
		write(t, s, store.Write{SubjectID: "user-1", Decisions: decisions(t0, "ads", false)})
		write(t, s, store.Write{SubjectID: visitorA, Decisions: decisions(t0, "ads", true, "analytics", true)})
		link(t, s, visitorA, "user-1")
		user := get(t, s, "user-1")

		own, err := s.GetOwn(ctx(t), visitorA)
		if err != nil || own.LinkedTo != "user-1" || !own.Decisions["analytics"].Granted {
			t.Fatalf("GetOwn(visitor) = %+v, %v", own, err)
		}
		followed := user
		followed.Linked = true
		if got := get(t, s, visitorA); !reflect.DeepEqual(got, followed) {
			t.Fatalf("Get(visitor) = %+v, want the user's record %+v", got, followed)
		}
		p, err := s.GetPurposes(ctx(t), visitorA, []string{"ads"})
		if err != nil || !p.Linked || p.Revision != user.Revision || p.Decisions["ads"].Granted {
			t.Fatalf("GetPurposes(visitor) = %+v, %v", p, err)
		}
		many, err := s.GetMany(ctx(t), []store.Lookup{{SubjectID: "user-1", Purposes: []string{"ads"}}, {SubjectID: visitorA, Purposes: []string{"ads"}}, {SubjectID: visitorB, Purposes: []string{"ads"}}})
		if err != nil || many[0].Linked || !many[1].Linked || many[1].Revision != user.Revision || many[2].Revision != 0 {
			t.Fatalf("GetMany = %+v, %v", many, err)
		}

		res := write(t, s, store.Write{SubjectID: visitorA, FollowLink: true, Decisions: decisions(t0, "analytics", false)})
		if !res.Record.Linked || res.Record.Revision != user.Revision+1 || res.Record.Decisions["analytics"].Granted {
			t.Fatalf("a following write = %+v, want it applied to the user", res.Record)
		}
		if again, _ := s.GetOwn(ctx(t), visitorA); again.Revision != own.Revision {
			t.Fatalf("the following write changed the visitor: %+v", again)
		}
		if res := write(t, s, store.Write{SubjectID: visitorA, Decisions: decisions(t0, "functional", true)}); res.Record.Linked || res.Record.Revision != own.Revision+1 {
			t.Fatalf("a write without FollowLink = %+v, want it applied to the visitor", res.Record)
		}
	})

	t.Run("retention: visitors' records and histories expire by Redis TTL, renewed by each write", func(t *testing.T) {
		t.Parallel()
		prefix := newPrefix()
		s := newRetentionStore(t, client, prefix, 10*time.Hour, 2*time.Hour)
		write(t, s, store.Write{SubjectID: visitorA, Decisions: decisions(t0, "ads", true)})
		write(t, s, store.Write{SubjectID: "user-1", Decisions: decisions(t0, "ads", true)})
		for _, c := range []struct {
			subject, part string
			want          time.Duration // -1: no TTL
		}{
			{visitorA, ":s:", 10 * time.Hour},
			{visitorA, ":h:", 2 * time.Hour},
			{"user-1", ":s:", -1},
			{"user-1", ":h:", 2 * time.Hour},
		} {
			key := onlyKey(t, client, prefix, c.part+keyID(HMACKey, c.subject))
			ttl := client.PTTL(ctx(t), key).Val()
			if c.want < 0 && ttl != -1 || c.want > 0 && (ttl > c.want || ttl < c.want-time.Minute) {
				t.Errorf("%s %s: TTL %v, want %v", c.subject, c.part, ttl, c.want)
			}
		}
		// A write renews the TTL.
		state := onlyKey(t, client, prefix, ":s:"+keyID(HMACKey, visitorA))
		client.PExpire(ctx(t), state, time.Minute)
		write(t, s, store.Write{SubjectID: visitorA, Decisions: decisions(t0, "ads", false)})
		if ttl := client.PTTL(ctx(t), state).Val(); ttl < 9*time.Hour {
			t.Fatalf("TTL after a new write: %v, want it renewed to 10h", ttl)
		}
		// A history retention of 0 keeps users' histories; a visitor's history
		// still goes with its record.
		keep := newRetentionStore(t, client, prefix, 10*time.Hour, 0)
		write(t, keep, store.Write{SubjectID: "user-1", Decisions: decisions(t0, "ads", false)})
		write(t, keep, store.Write{SubjectID: visitorA, Decisions: decisions(t0, "ads", false)})
		if ttl := client.PTTL(ctx(t), onlyKey(t, client, prefix, ":h:"+keyID(HMACKey, "user-1"))).Val(); ttl != -1 {
			t.Errorf("user history TTL with retention 0: %v, want none", ttl)
		}
		if ttl := client.PTTL(ctx(t), onlyKey(t, client, prefix, ":h:"+keyID(HMACKey, visitorA))).Val(); ttl < 9*time.Hour {
			t.Errorf("visitor history TTL with history retention 0: %v, want the visitor retention", ttl)
		}
	})

	t.Run("retention: an inactive visitor's record is gone when its time is up", func(t *testing.T) {
		t.Parallel()
		s := newRetentionStore(t, client, newPrefix(), 300*time.Millisecond, 0)
		write(t, s, store.Write{SubjectID: visitorA, Decisions: decisions(t0, "ads", true)})
		eventually.True(t, "the visitor's record to expire", func() bool {
			rec, err := s.Get(ctx(t), visitorA)
			evs, err2 := s.Events(ctx(t), visitorA, 0, 10)
			return err == nil && err2 == nil && rec.Revision == 0 && len(evs) == 0
		})
	})

	t.Run("an expired history restarts its chain and still verifies", func(t *testing.T) {
		t.Parallel()
		prefix := newPrefix()
		s := newRetentionStore(t, client, prefix, time.Hour, time.Hour)
		write(t, s, store.Write{SubjectID: "user-1", Decisions: decisions(t0, "ads", true)})
		write(t, s, store.Write{SubjectID: "user-1", Decisions: decisions(t0, "ads", false)})
		client.Del(ctx(t), onlyKey(t, client, prefix, ":h:"+keyID(HMACKey, "user-1"))) // what the TTL does
		write(t, s, store.Write{SubjectID: "user-1", Decisions: decisions(t0, "ads", true)})
		if err := s.VerifyChain(ctx(t), "user-1"); err != nil {
			t.Fatalf("VerifyChain after the history expired: %v", err)
		}
		if evs := events(t, s, "user-1"); len(evs) != 1 || evs[0].Revision != 3 || evs[0].PrevHash != "" {
			t.Fatalf("events = %+v, want one new chain head at revision 3", evs)
		}
	})

	t.Run("expired idempotency records are pruned from a subject's idempotency hash", func(t *testing.T) {
		t.Parallel()
		prefix := newPrefix()
		s, err := store.New(client, store.Options{Prefix: prefix, HMACKey: HMACKey, Sealer: Sealer, Partitions: 16, IdempotencyTTL: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 40 {
			write(t, s, store.Write{SubjectID: "alice", IdempotencyKey: fmt.Sprint("req-", i), Decisions: decisions(t0, "ads", i%2 == 0)})
		}
		// 40 records, more than the 32 that trigger pruning. Each new write
		// prunes the expired ones; without pruning the hash would only grow.
		idem := onlyKey(t, client, prefix, ":i:")
		i := 40
		eventually.True(t, "expired records to be pruned", func() bool {
			i++
			write(t, s, store.Write{SubjectID: "alice", IdempotencyKey: fmt.Sprint("req-", i), Decisions: decisions(t0, "ads", i%2 == 0)})
			return client.HLen(ctx(t), idem).Val() <= 33
		})
	})
}

// link links visitor to user the way the API does: the visitor's state
// points at the user and both get a link event.
func link(t testing.TB, s *store.Store, visitor, user string) {
	t.Helper()
	write(t, s, store.Write{SubjectID: visitor, LinkTo: user, Event: store.EventInfo{Type: domain.EventLink, Actor: "key:app", Source: domain.SourceLink, Counterpart: user}})
	write(t, s, store.Write{SubjectID: user, Event: store.EventInfo{Type: domain.EventLink, Actor: "key:app", Source: domain.SourceLink, Counterpart: visitor}})
}

func newRetentionStore(t testing.TB, client redis.UniversalClient, prefix string, visitors, history time.Duration) *store.Store {
	t.Helper()
	s, err := store.New(client, store.Options{Prefix: prefix, HMACKey: HMACKey, Sealer: Sealer, Partitions: 16,
		VisitorRetention: visitors, HistoryRetention: history})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// keyID is the id part of a subject's key names under hmacKey (keys.go).
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
