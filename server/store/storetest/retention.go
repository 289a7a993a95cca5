package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/internal/eventually"
	"github.com/consentd/consentd/server/store"
)

func testRetentionTTL(t *testing.T, client redis.UniversalClient) {
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
}

func testRetentionInactiveVisitor(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s := newRetentionStore(t, client, newPrefix(), 300*time.Millisecond, 0)
	write(t, s, store.Write{SubjectID: visitorA, Decisions: decisions(t0, "ads", true)})
	eventually.True(t, "the visitor's record to expire", func() bool {
		rec, err := s.Get(ctx(t), visitorA)
		evs, err2 := s.Events(ctx(t), visitorA, 0, 10)
		return err == nil && err2 == nil && rec.Revision == 0 && len(evs) == 0
	})
}

func testExpiredHistoryRestartsChain(t *testing.T, client redis.UniversalClient) {
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
}

func testIdempotencyRecordsPruned(t *testing.T, client redis.UniversalClient) {
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
