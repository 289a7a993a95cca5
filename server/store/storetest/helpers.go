package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/store"
)

// NewStore returns a store on a fresh key prefix, and the prefix.
func NewStore(t testing.TB, client redis.UniversalClient) (*store.Store, string) {
	t.Helper()
	prefix := newPrefix()
	return NewStoreOn(t, client, prefix, HMACKey), prefix
}

// newPrefix is a fresh key prefix, so tests can share one Redis.
func newPrefix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "storetest-" + hex.EncodeToString(b)
}

// NewStoreOn returns a store on prefix (from NewStore) with active as its
// HMAC key and previous as its previous ones: one configuration of an HMAC
// key rotation. Its other options are NewStore's.
func NewStoreOn(t testing.TB, client redis.UniversalClient, prefix string, active []byte, previous ...[]byte) *store.Store {
	t.Helper()
	s, err := store.New(client, store.Options{Prefix: prefix, HMACKey: active, PreviousHMACKeys: previous,
		Sealer: Sealer, Partitions: 16})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ctx(t testing.TB) context.Context { return t.Context() }

func ptr(v int64) *int64 { return &v }

func boolPtr(v bool) *bool { return &v }

func apiEvent() store.EventInfo {
	return store.EventInfo{Type: "update", Actor: "api", Source: domain.SourceAPI, PolicyVersion: "test", Channel: "grpc"}
}

// decisions builds a decision map from purpose, granted pairs.
func decisions(at time.Time, pairs ...any) map[string]domain.Decision {
	m := map[string]domain.Decision{}
	for i := 0; i < len(pairs); i += 2 {
		m[pairs[i].(string)] = domain.Decision{Granted: pairs[i+1].(bool), DecidedAt: at, Source: domain.SourceAPI, PolicyVersion: 1, Region: "DE"}
	}
	return m
}

// write applies w, filling in an event and a time when missing.
func write(t testing.TB, s *store.Store, w store.Write) store.WriteResult {
	t.Helper()
	if w.Event.Type == "" {
		w.Event = apiEvent()
	}
	if w.Now.IsZero() {
		w.Now = t0
	}
	res, err := s.Write(ctx(t), w)
	if err != nil {
		t.Fatalf("write: %v", err)
	}
	return res
}

func get(t testing.TB, s *store.Store, subjectID string) domain.Record {
	t.Helper()
	rec, err := s.Get(ctx(t), subjectID)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	return rec
}

func revisions(events []store.Event) []int64 {
	var out []int64
	for _, e := range events {
		out = append(out, e.Revision)
	}
	return out
}

// assertUnchanged checks the subject still reads want, with events events.
func assertUnchanged(t *testing.T, s *store.Store, subjectID string, want domain.Record, events int) {
	t.Helper()
	if got := get(t, s, subjectID); !reflect.DeepEqual(got, want) {
		t.Errorf("record changed: %+v, want %+v", got, want)
	}
	if got, err := s.Events(ctx(t), subjectID, 0, 1000); err != nil || len(got) != events {
		t.Errorf("%d events (%v), want %d", len(got), err, events)
	}
}

func assertChainBroken(t *testing.T, s *store.Store, subjectID string, revision int64) {
	t.Helper()
	err := s.VerifyChain(ctx(t), subjectID)
	if !errors.Is(err, store.ErrChainBroken) {
		t.Fatalf("VerifyChain = %v, want ErrChainBroken", err)
	}
	if want := fmt.Sprintf("at revision %d:", revision); !strings.Contains(err.Error(), want) {
		t.Fatalf("VerifyChain = %v, want it to name revision %d", err, revision)
	}
	// History gives the same verdict, having checked the events before it
	// (these histories start at revision 1).
	h, herr := s.History(ctx(t), subjectID)
	if herr != nil || h.Chain == nil || h.Chain.Error() != err.Error() || h.Checked != int(revision-1) {
		t.Fatalf("History: chain %v, %d checked, %v; want %v, %d checked", h.Chain, h.Checked, herr, err, revision-1)
	}
}

// scanKeys lists the keys matching pattern, on every master of a cluster.
func scanKeys(t testing.TB, client redis.UniversalClient, pattern string) []string {
	t.Helper()
	var (
		mu   sync.Mutex
		keys []string
	)
	scan := func(ctx context.Context, c redis.Cmdable) error {
		iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			keys = append(keys, iter.Val())
			mu.Unlock()
		}
		return iter.Err()
	}
	var err error
	if cluster, ok := client.(*redis.ClusterClient); ok {
		err = cluster.ForEachMaster(ctx(t), func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	} else {
		err = scan(ctx(t), client)
	}
	if err != nil {
		t.Fatalf("scan %s: %v", pattern, err)
	}
	slices.Sort(keys)
	return keys
}

// onlyKey is the one key under prefix whose name contains part.
func onlyKey(t testing.TB, client redis.UniversalClient, prefix, part string) string {
	t.Helper()
	var found []string
	for _, k := range scanKeys(t, client, prefix+":*") {
		if strings.Contains(k, part) {
			found = append(found, k)
		}
	}
	if len(found) != 1 {
		t.Fatalf("keys with %q under %s: %q, want exactly one", part, prefix, found)
	}
	return found[0]
}

// keySlot is the Redis Cluster slot of key: CRC16 of its hash tag (or of the
// whole key) mod 16384, as the cluster specification defines it. On a
// cluster, Redis' own CLUSTER KEYSLOT must agree.
func keySlot(t testing.TB, client redis.UniversalClient, key string) int {
	t.Helper()
	if got := slotOf("123456789"); got != 12739 { // the specification's example
		t.Fatalf("slotOf is wrong: %d", got)
	}
	slot := slotOf(key)
	if cluster, ok := client.(*redis.ClusterClient); ok {
		if redisSlot := cluster.ClusterKeySlot(ctx(t), key).Val(); int(redisSlot) != slot {
			t.Fatalf("CLUSTER KEYSLOT %s = %d, computed %d", key, redisSlot, slot)
		}
	}
	return slot
}

func slotOf(key string) int {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if end := strings.IndexByte(key[open+1:], '}'); end > 0 {
			key = key[open+1 : open+1+end]
		}
	}
	var crc uint16 // CRC-16/XMODEM
	for _, c := range []byte(key) {
		crc ^= uint16(c) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc % 16384)
}
