package store

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/keys"
)

var (
	testKey    = []byte("0123456789abcdef0123456789abcdef")
	otherKey   = []byte("another-key-another-key-another-key")
	testSealer = mustSealer()
)

func mustSealer() *keys.Sealer {
	s, err := keys.NewSealer([]keys.Key{{ID: "e1", Secret: []byte("store-test-encryption-key-32byte")}})
	if err != nil {
		panic(err)
	}
	return s
}

// keysFor names the subject's keys under the active HMAC key (where writes
// put its data), as knownKeysFor's first.
func (s *Store) keysFor(subjectID string) subjectKeys {
	return s.keysUnder(s.opts.HMACKey, s.partitionBase(s.partitionOf(subjectID)), subjectID)
}

// newTestStore builds a store that is never connected. opts.Sealer defaults
// to testSealer.
func newTestStore(t *testing.T, opts Options) *Store {
	t.Helper()
	if opts.Sealer == nil {
		opts.Sealer = testSealer
	}
	s, err := New(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}), opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewValidatesOptions(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialed by New
	for _, tc := range []struct {
		name string
		opts Options
		want string // in the error; "" for no error
	}{
		{"defaults", Options{HMACKey: testKey, Sealer: testSealer}, ""},
		{"previous HMAC keys", Options{HMACKey: testKey, PreviousHMACKeys: [][]byte{otherKey, []byte("a-third-key-a-third-key-a-third-key")}, Sealer: testSealer}, ""},
		{"short HMAC key", Options{HMACKey: testKey[:31], Sealer: testSealer}, "at least 32"},
		{"no HMAC key", Options{Sealer: testSealer}, "at least 32"},
		{"short previous HMAC key", Options{HMACKey: testKey, PreviousHMACKeys: [][]byte{otherKey, testKey[:31]}, Sealer: testSealer}, "previous HMAC key 1 has 31 bytes"},
		{"previous HMAC key is the active one", Options{HMACKey: testKey, PreviousHMACKeys: [][]byte{testKey}, Sealer: testSealer}, "previous HMAC key 0 is the active"},
		{"previous HMAC key twice", Options{HMACKey: testKey, PreviousHMACKeys: [][]byte{otherKey, otherKey}, Sealer: testSealer}, "previous HMAC keys 0 and 1 are the same"},
		{"no sealer", Options{HMACKey: testKey}, "no Sealer"},
		{"brace in prefix", Options{HMACKey: testKey, Sealer: testSealer, Prefix: "a{b}"}, "prefix"},
		{"space in prefix", Options{HMACKey: testKey, Sealer: testSealer, Prefix: "a b"}, "prefix"},
		{"negative partitions", Options{HMACKey: testKey, Sealer: testSealer, Partitions: -1}, "partitions"},
		{"too many partitions", Options{HMACKey: testKey, Sealer: testSealer, Partitions: MaxPartitions + 1}, "partitions"},
		{"negative idempotency TTL", Options{HMACKey: testKey, Sealer: testSealer, IdempotencyTTL: -time.Hour}, "idempotency TTL"},
		{"negative feed retention", Options{HMACKey: testKey, Sealer: testSealer, FeedRetention: -time.Hour}, "feed retention"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(client, tc.opts)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("New = %v, want an error about %q", err, tc.want)
			}
		})
	}
	// New copies the keys: a caller zeroing its slices changes nothing.
	active, previous := bytes.Clone(testKey), bytes.Clone(otherKey)
	s := newTestStore(t, Options{HMACKey: active, PreviousHMACKeys: [][]byte{previous}})
	want := s.knownKeysFor("alice")
	clear(active)
	clear(previous)
	if got := s.knownKeysFor("alice"); !slices.Equal(got, want) {
		t.Fatalf("zeroing the caller's keys changed the key names: %+v, was %+v", got, want)
	}
	s = newTestStore(t, Options{HMACKey: testKey})
	if s.opts.Prefix != "consentd" || s.opts.Partitions != 64 || s.opts.IdempotencyTTL != 24*time.Hour || s.opts.FeedRetention != 35*24*time.Hour {
		t.Fatalf("defaults = %+v", s.opts)
	}
}

func TestKeyLayout(t *testing.T) {
	s := newTestStore(t, Options{HMACKey: testKey, Prefix: "cd", Partitions: 64})
	mac := hmac.New(sha256.New, testKey)
	mac.Write([]byte("alice"))
	id := base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:16])
	// The partition is an unkeyed hash: the first 2 bytes of SHA-256 of the id.
	sum := sha256.Sum256([]byte("alice"))
	partition := (int(sum[0])<<8 | int(sum[1])) % 64
	base := fmt.Sprintf("cd:{p%d}", partition)

	k := s.keysFor("alice")
	want := subjectKeys{id: id, base: base, state: base + ":s:" + id, history: base + ":h:" + id, idempotency: base + ":i:" + id, feed: base + ":feed"}
	if k != want {
		t.Fatalf("keysFor(alice) = %+v, want %+v", k, want)
	}
	if s.stateKey("alice") != k.state { // the check path's own, pooled-HMAC way
		t.Fatalf("stateKey(alice) = %q, want %q", s.stateKey("alice"), k.state)
	}
	if s.feedKey(partition) != k.feed {
		t.Fatalf("feedKey(%d) = %q, want %q", partition, s.feedKey(partition), k.feed)
	}
	if field := idempotencyField("req-1"); !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(field) {
		t.Fatalf("idempotency field = %q", field)
	}
	if k.tombstones() != base+":tomb" {
		t.Fatalf("tombstones = %q", k.tombstones())
	}
	if len(id) != 22 {
		t.Fatalf("subject key id %q: want 22 characters (16 bytes)", id)
	}
	// Another HMAC key gives other key names (the key is what hides the ids)
	// but the same partition: rotating the HMAC key keeps a subject's slot.
	other := newTestStore(t, Options{HMACKey: otherKey, Prefix: "cd", Partitions: 64})
	if ok := other.keysFor("alice"); ok.id == id || ok.base != base {
		t.Fatalf("under another HMAC key alice is %+v: want another id in the same partition %s", ok, base)
	}
	// Subjects spread over the partitions.
	seen := map[string]bool{}
	for i := range 2000 {
		seen[s.keysFor(fmt.Sprint("subject-", i)).feed] = true
	}
	if len(seen) != 64 {
		t.Fatalf("2000 subjects fell into %d of 64 partitions", len(seen))
	}
}

func TestKnownKeysShareTheSubjectsSlot(t *testing.T) {
	third := []byte("a-third-key-a-third-key-a-third-key")
	s := newTestStore(t, Options{HMACKey: testKey, PreviousHMACKeys: [][]byte{otherKey, third}, Prefix: "cd"})
	for _, subject := range []string{"alice", "bob", "visitor-8f14e45fceea167a5a36dedd4bea2543"} {
		known := s.knownKeysFor(subject)
		if len(known) != 3 || known[0] != s.keysFor(subject) {
			t.Fatalf("knownKeysFor(%s) = %+v: want 3 names, the active key's first", subject, known)
		}
		for i, k := range known {
			// Each key's names are what a store with that key alone would use.
			alone := newTestStore(t, Options{HMACKey: [][]byte{testKey, otherKey, third}[i], Prefix: "cd"})
			if k != alone.keysFor(subject) {
				t.Errorf("%s under key %d: %+v, want %+v", subject, i, k, alone.keysFor(subject))
			}
			if k.base != known[0].base || k.feed != known[0].feed {
				t.Errorf("%s: key %d names partition %s, the active key %s", subject, i, k.base, known[0].base)
			}
		}
		if known[0].id == known[1].id || known[1].id == known[2].id {
			t.Errorf("%s: two keys give the same names: %+v", subject, known)
		}
	}
	if without := newTestStore(t, Options{HMACKey: testKey}); without.rotating() || len(without.knownKeysFor("alice")) != 1 {
		t.Fatal("a store without previous keys reads more than one name")
	}
}

func TestDecisionEncodingRoundTrips(t *testing.T) {
	at := time.Unix(1_750_000_000, 0).UTC()
	for _, d := range []domain.Decision{
		{Granted: true, DecidedAt: at, ExpiresAt: at.Add(time.Hour), Source: domain.SourceBanner, PolicyVersion: 7, Region: "US-CA"},
		{Granted: false, DecidedAt: at, Source: domain.SourceGPC},
		{Granted: true, Source: domain.SourceLink, PolicyVersion: 1},
	} {
		v, err := encodeDecision(d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeDecision(v)
		if err != nil || got != d {
			t.Errorf("%q decodes to %+v, %v; want %+v", v, got, err, d)
		}
	}
	if v, _ := encodeDecision(domain.Decision{Granted: true, DecidedAt: at, Source: domain.SourceBanner, PolicyVersion: 2, Region: "DE"}); v != "g|1750000000|0|b|2|DE" {
		t.Errorf("encoded = %q", v)
	}
	for _, bad := range []string{"", "x|1|0|b|1|DE", "g|1|0|z|1|DE", "g|a|0|b|1|DE", "g|1|0|b"} {
		if _, err := decodeDecision(bad); err == nil {
			t.Errorf("decodeDecision(%q) accepted", bad)
		}
	}
}

// A stored decision ends with the revision of the write that stored it (the
// write script appends it); values stored before that have six parts and
// read with revision 0.
func TestDecisionRevisionDecodes(t *testing.T) {
	at := time.Unix(1_750_000_000, 0).UTC()
	base := domain.Decision{Granted: true, DecidedAt: at, Source: domain.SourceBanner, PolicyVersion: 2, Region: "DE"}
	withRev := base
	withRev.Revision = 42
	if v, _ := encodeDecision(withRev); v != "g|1750000000|0|b|2|DE" {
		t.Errorf("encodeDecision of a decision with a revision = %q: the revision is the store's to add", v)
	}
	for v, want := range map[string]domain.Decision{
		"g|1750000000|0|b|2|DE":    base,
		"g|1750000000|0|b|2|DE|42": withRev,
		"g|1750000000|0|b|2||7":    {Granted: true, DecidedAt: at, Source: domain.SourceBanner, PolicyVersion: 2, Revision: 7},
	} {
		if got, err := decodeDecision(v); err != nil || got != want {
			t.Errorf("decodeDecision(%q) = %+v, %v; want %+v", v, got, err, want)
		}
	}
	for _, bad := range []string{"g|1|0|b|1|DE|", "g|1|0|b|1|DE|x", "g|1|0|b|1|DE|0", "g|1|0|b|1|DE|-3", "g|1|0|b|1|DE|4|5", "g|1|0|b|1|DE|+4"} {
		if _, err := decodeDecision(bad); err == nil {
			t.Errorf("decodeDecision(%q) accepted", bad)
		}
	}
	for v, want := range map[string]int64{"12": 12, "1": 1} {
		var rec domain.Record
		if err := decodeField(&rec, fieldGuardianRevision, v, nil); err != nil || rec.GuardianRevision != want {
			t.Errorf("%s %q reads %d, %v; want %d", fieldGuardianRevision, v, rec.GuardianRevision, err, want)
		}
	}
	for _, bad := range []string{"", "x", "0", "-1", "+3"} {
		var rec domain.Record
		if err := decodeField(&rec, fieldGuardianRevision, bad, nil); err == nil {
			t.Errorf("%s %q accepted", fieldGuardianRevision, bad)
		}
	}
}

func TestUnavailableErrors(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{refused, true},
		{fmt.Errorf("wrapped: %w", refused), true},
		{context.DeadlineExceeded, true},
		{redis.ErrPoolTimeout, true},
		{redis.ErrClosed, true},
		{context.Canceled, false},
		{redis.Nil, false},
		{errors.New("ERR user_script:1: some bug"), false},
	} {
		err := wrapErr("op", tc.err)
		if got := errors.Is(err, ErrUnavailable); got != tc.want {
			t.Errorf("wrapErr(%v): unavailable = %v, want %v", tc.err, got, tc.want)
		}
		if !errors.Is(err, tc.err) {
			t.Errorf("wrapErr(%v) lost the cause", tc.err)
		}
	}
	if wrapErr("op", nil) != nil {
		t.Error("wrapErr(nil) != nil")
	}
	if c := (&ConflictError{Expected: 1, Current: 2}); !errors.Is(c, ErrConflict) {
		t.Error("ConflictError is not ErrConflict")
	}
}
