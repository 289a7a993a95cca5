package store_test

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/internal/redistest"
	"github.com/consentd/consentd/server/keys"
	"github.com/consentd/consentd/server/store"
	"github.com/consentd/consentd/server/store/storetest"
)

// A feed reader acts only on changes made with the operator's keys: an
// entry copied from a real one with its event changed (a withdrawal turned
// into a grant, say) stops the reader with an error rather than reaching a
// consumer.
func TestTheFeedReaderRefusesAForgedChange(t *testing.T) {
	client := redistest.Start(t).Client(t)
	s, err := store.New(client, store.Options{Prefix: "forged", HMACKey: storetest.HMACKey, Sealer: storetest.Sealer, Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	denied := map[string]domain.Decision{"ads": {Granted: false, DecidedAt: time.Unix(1_750_000_000, 0), Source: domain.SourceAPI}}
	if _, err := s.Write(ctx, store.Write{SubjectID: "alice", Decisions: denied,
		Event: store.EventInfo{Type: domain.EventWithdraw, Actor: "key:app", Source: domain.SourceAPI, Channel: "grpc"}}); err != nil {
		t.Fatal(err)
	}
	reader, err := s.WatchFeed(ctx, store.FeedQuery{FromOldest: true})
	if err != nil {
		t.Fatal(err)
	}
	if batches, _, err := reader.Read(ctx); err != nil || len(batches) != 1 {
		t.Fatalf("the authentic change: %v, %v", batches, err)
	}

	const feed = "forged:{p0}:feed"
	real := client.XRange(ctx, feed, "-", "+").Val()[0].Values
	forged := map[string]any{}
	for k, v := range real {
		forged[k] = v
	}
	forged["ev"] = strings.Replace(real["ev"].(string), `"ads":"d"`, `"ads":"g"`, 1)
	client.XAdd(ctx, &redis.XAddArgs{Stream: feed, Values: forged})
	if batches, _, err := reader.Read(ctx); err == nil || !strings.Contains(err.Error(), "keyed hash") {
		t.Fatalf("a forged change read as %v, %v; want an error naming the keyed hash", batches, err)
	}
}

// After the encryption key is rotated, a subject's next write wraps its
// data key with the new key, so the old one can go once every subject was
// written (its events' MACs aside: see the README); what was sealed before
// still opens.
func TestAWriteWrapsTheDataKeyWithTheActiveEncryptionKey(t *testing.T) {
	client := redistest.Start(t).Client(t)
	old := keys.Key{ID: "e1", Secret: []byte("an-encryption-key-of-32-bytes-01")}
	rotated := keys.Key{ID: "e2", Secret: []byte("an-encryption-key-of-32-bytes-02")}
	storeWith := func(ks ...keys.Key) *store.Store {
		sealer, err := keys.NewSealer(ks)
		if err != nil {
			t.Fatal(err)
		}
		s, err := store.New(client, store.Options{Prefix: "rewrap", HMACKey: storetest.HMACKey, Sealer: sealer})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ctx := t.Context()
	write := func(s *store.Store, client string) {
		t.Helper()
		if _, err := s.Write(ctx, store.Write{SubjectID: "alice", Decisions: map[string]domain.Decision{"ads": {Granted: true, Source: domain.SourceBanner}},
			Event: store.EventInfo{Type: domain.EventUpdate, Actor: "visitor", Source: domain.SourceBanner, Client: client}}); err != nil {
			t.Fatal(err)
		}
	}
	wrappedWith := func() string {
		names := client.Keys(ctx, "rewrap:*:k:*").Val()
		if len(names) != 1 {
			t.Fatalf("data keys: %v", names)
		}
		id, _, _ := strings.Cut(client.Get(ctx, names[0]).Val(), ".")
		return id
	}
	write(storeWith(old), "ua=first")
	if id := wrappedWith(); id != "e1" {
		t.Fatalf("the data key is wrapped with %q, want e1", id)
	}
	s := storeWith(rotated, old)
	write(s, "ua=second")
	if id := wrappedWith(); id != "e2" {
		t.Fatalf("after a write under the rotated key the data key is wrapped with %q, want e2", id)
	}
	h, err := s.History(ctx, "alice")
	if err != nil || h.Chain != nil || len(h.Events) != 2 || h.Events[0].Client != "ua=first" || h.Events[1].Client != "ua=second" {
		t.Fatalf("history after the rotation: %+v, %v", h, err)
	}
}
