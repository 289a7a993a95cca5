package storetest

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/store"
)

func testIdempotentRetry(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, _ := NewStore(t, client)
	w := store.Write{SubjectID: "alice", IdempotencyKey: "req-1", ExpectedRevision: ptr(0),
		Decisions: decisions(t0, "analytics", true), Event: apiEvent(), Now: t0}
	first, err := s.Write(ctx(t), w)
	if err != nil || first.Replayed {
		t.Fatalf("first write: %+v, %v", first, err)
	}
	// A later write by someone else; then the retry arrives, later still.
	write(t, s, store.Write{SubjectID: "alice", Decisions: decisions(t0, "ads", true)})
	later := get(t, s, "alice")
	w.Now = t0.Add(time.Minute)
	retry, err := s.Write(ctx(t), w)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if !retry.Replayed || !reflect.DeepEqual(retry.Record, first.Record) || retry.Record.Revision != 1 {
		t.Fatalf("retry = %+v, want a replay of %+v", retry, first)
	}
	assertUnchanged(t, s, "alice", later, 2)
	// The same key on another subject is another request.
	if res := write(t, s, store.Write{SubjectID: "bob", IdempotencyKey: "req-1", Decisions: decisions(t0, "ads", false)}); res.Replayed {
		t.Fatal("an idempotency key of alice replayed on bob")
	}
}

func testIdempotencyMismatch(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, _ := NewStore(t, client)
	write(t, s, store.Write{SubjectID: "alice", IdempotencyKey: "req-1", Decisions: decisions(t0, "analytics", true)})
	before := get(t, s, "alice")
	for name, w := range map[string]store.Write{
		"other value":   {Decisions: decisions(t0, "analytics", false)},
		"more purposes": {Decisions: decisions(t0, "analytics", true, "ads", true)},
		"region":        {Decisions: decisions(t0, "analytics", true), Region: "DE"},
		"gpc":           {Decisions: decisions(t0, "analytics", true), GPC: true},
		"expected rev":  {Decisions: decisions(t0, "analytics", true), ExpectedRevision: ptr(0)},
	} {
		w.SubjectID, w.IdempotencyKey, w.Event = "alice", "req-1", apiEvent()
		if _, err := s.Write(ctx(t), w); !errors.Is(err, store.ErrIdempotencyMismatch) {
			t.Errorf("%s: %v, want ErrIdempotencyMismatch", name, err)
		}
	}
	assertUnchanged(t, s, "alice", before, 1)
}
