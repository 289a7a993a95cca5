package store_test

import (
	"errors"
	"testing"

	"github.com/consentd/consentd/server/internal/redistest"
	"github.com/consentd/consentd/server/store"
	"github.com/consentd/consentd/server/store/storetest"
)

// A full Redis (maxmemory reached under noeviction, deploy/'s setting)
// refuses writes before they start: a write fails as ErrStorageFull (and
// ErrUnavailable), changes nothing, and applies once there is room again;
// single reads keep working; StorageFull says so without writing.
func TestAFullRedisRefusesWritesWholeAndKeepsServingReads(t *testing.T) {
	srv := redistest.Start(t, "--maxmemory-policy", "noeviction")
	client := quickClient(t, srv)
	s, _ := storetest.NewStore(t, client)
	const subject = "user-full"
	if _, err := s.Write(t.Context(), update(subject, true)); err != nil {
		t.Fatal(err)
	}
	if full, err := s.StorageFull(t.Context()); full || err != nil {
		t.Fatalf("StorageFull with room = %v, %v", full, err)
	}
	keysBefore := client.DBSize(t.Context()).Val()

	// One byte: whatever Redis uses is over it.
	if err := client.ConfigSet(t.Context(), "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if full, err := s.StorageFull(t.Context()); !full || err != nil {
		t.Errorf("StorageFull with Redis full = %v, %v", full, err)
	}
	_, err := s.Write(t.Context(), update(subject, false))
	if !errors.Is(err, store.ErrStorageFull) || !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("write with Redis full: %v, want ErrStorageFull and ErrUnavailable", err)
	}
	if err := s.CreateConsumer(t.Context(), "mailer", false); !errors.Is(err, store.ErrStorageFull) {
		t.Errorf("CreateConsumer with Redis full: %v, want ErrStorageFull", err)
	}
	rec, err := s.Get(t.Context(), subject)
	if err != nil || rec.Revision != 1 || !rec.Decisions["analytics"].Granted {
		t.Errorf("read with Redis full: %+v, %v; want revision 1 with analytics granted", rec, err)
	}
	if n := client.DBSize(t.Context()).Val(); n != keysBefore {
		t.Errorf("the refused writes left keys: %d, had %d", n, keysBefore)
	}
	// The history is read by a script that writes nothing, which a full
	// Redis runs.
	if err := s.VerifyChain(t.Context(), subject); err != nil {
		t.Errorf("reading the history with Redis full: %v", err)
	}

	if err := client.ConfigSet(t.Context(), "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	if full, err := s.StorageFull(t.Context()); full || err != nil {
		t.Errorf("StorageFull with room again = %v, %v", full, err)
	}
	res, err := s.Write(t.Context(), update(subject, false))
	if err != nil || res.Record.Revision != 2 {
		t.Fatalf("write with room again: %+v, %v", res, err)
	}
	if err := s.VerifyChain(t.Context(), subject); err != nil {
		t.Errorf("chain after: %v", err)
	}
}
