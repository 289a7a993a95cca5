package store_test

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/internal/redistest"
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
		Event: store.EventInfo{Type: store.EventWithdraw, Actor: "key:app", Source: domain.SourceAPI, Channel: "grpc"}}); err != nil {
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
