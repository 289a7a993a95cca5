package keys

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

var (
	encKey1 = Key{ID: "e1", Secret: []byte("0123456789abcdef0123456789abcdef")}
	encKey2 = Key{ID: "e2", Secret: []byte("fedcba9876543210fedcba9876543210")}
)

func mustSealer(t *testing.T, keys ...Key) *Sealer {
	t.Helper()
	s, err := NewSealer(keys)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealRoundTrips(t *testing.T) {
	s := mustSealer(t, encKey1, encKey2)
	for _, plaintext := range []string{"", "alice", "user-4711@example.com", strings.Repeat("x", 128)} {
		sealed := s.Seal([]byte(plaintext))
		if !strings.HasPrefix(sealed, "e1.") {
			t.Errorf("Seal(%q) = %q: not sealed with the active key e1", plaintext, sealed)
		}
		if plaintext != "" && strings.Contains(sealed, plaintext) {
			t.Errorf("Seal(%q) = %q contains the plaintext", plaintext, sealed)
		}
		got, err := s.Open(sealed)
		if err != nil || !bytes.Equal(got, []byte(plaintext)) {
			t.Errorf("Open(Seal(%q)) = %q, %v", plaintext, got, err)
		}
		// The body is base64url of a 12-byte nonce, the ciphertext and a 16-byte tag.
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(sealed, "e1."))
		if err != nil || len(raw) != 12+len(plaintext)+16 {
			t.Errorf("Seal(%q): body of %d bytes (%v), want 12 + %d + 16", plaintext, len(raw), err, len(plaintext))
		}
	}
	if a, b := s.Seal([]byte("alice")), s.Seal([]byte("alice")); a == b {
		t.Errorf("sealing twice gave the same value %q: the nonce is not random", a)
	}
}

func TestSealedValuesOpenAfterRotation(t *testing.T) {
	before := mustSealer(t, encKey1)
	sealed := before.Seal([]byte("alice"))

	// The new key e2 becomes active; e1 stays listed, so old values open.
	after := mustSealer(t, encKey2, encKey1)
	if got, err := after.Open(sealed); err != nil || string(got) != "alice" {
		t.Fatalf("Open of a value sealed before the rotation = %q, %v", got, err)
	}
	if resealed := after.Seal([]byte("alice")); !strings.HasPrefix(resealed, "e2.") {
		t.Fatalf("after the rotation Seal = %q, want the new active key e2", resealed)
	}

	// Once e1 is removed, its values no longer open, and the error says why.
	_, err := mustSealer(t, encKey2).Open(sealed)
	if !errors.Is(err, ErrUnknownKeyID) || !strings.Contains(err.Error(), `"e1"`) {
		t.Fatalf("Open with e1 removed = %v, want ErrUnknownKeyID naming e1", err)
	}
}

func TestOpenRefusesBadValues(t *testing.T) {
	s := mustSealer(t, encKey1, encKey2)
	good := s.Seal([]byte("alice"))
	id, body, _ := strings.Cut(good, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(body)
	flip := func(i int) string {
		b := bytes.Clone(raw)
		b[i] ^= 0x01
		return id + "." + base64.RawURLEncoding.EncodeToString(b)
	}
	// Sealed by key e3, which has e1's secret, then relabelled e1: without
	// the id in the additional data this would open.
	relabelled := "e1." + strings.TrimPrefix(mustSealer(t, Key{ID: "e3", Secret: encKey1.Secret}).Seal([]byte("alice")), "e3.")

	for _, tc := range []struct {
		name, sealed string
		want         error
	}{
		{"unknown key id", "e9." + body, ErrUnknownKeyID},
		{"flipped nonce byte", flip(0), ErrNotAuthentic},
		{"flipped ciphertext byte", flip(12), ErrNotAuthentic},
		{"flipped tag byte", flip(len(raw) - 1), ErrNotAuthentic},
		{"truncated", good[:len(good)-4], ErrNotAuthentic},
		{"shorter than a nonce and a tag", id + "." + base64.RawURLEncoding.EncodeToString(raw[:20]), ErrNotAuthentic},
		{"empty", "", ErrNotAuthentic},
		{"no separator", id + body, ErrNotAuthentic},
		{"empty id", "." + body, ErrNotAuthentic},
		{"bad id characters", "e 1." + body, ErrNotAuthentic},
		{"empty body", "e1.", ErrNotAuthentic},
		{"not base64url", "e1." + body[:10] + "+/" + body[12:], ErrNotAuthentic},
		{"padded base64", good + "==", ErrNotAuthentic},
		{"relabelled with another id of the same secret", relabelled, ErrNotAuthentic},
		{"plaintext", "alice", ErrNotAuthentic},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Open(tc.sealed)
			if !errors.Is(err, tc.want) || got != nil {
				t.Fatalf("Open(%q) = %q, %v; want %v", tc.sealed, got, err, tc.want)
			}
			for _, leak := range []string{"alice", string(encKey1.Secret), string(encKey2.Secret)} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("error %q names %q", err, leak)
				}
			}
		})
	}
}

func TestNewSealerRefusesBadKeys(t *testing.T) {
	for _, tc := range []struct {
		name string
		keys []Key
		want string
	}{
		{"no keys", nil, "at least one"},
		{"short key", []Key{{ID: "e1", Secret: encKey1.Secret[:31]}}, "exactly 32 bytes"},
		{"long key", []Key{{ID: "e1", Secret: append(bytes.Clone(encKey1.Secret), 'x')}}, "exactly 32 bytes"},
		{"id with a dot", []Key{{ID: "e.1", Secret: encKey1.Secret}}, "id must be"},
		{"empty id", []Key{{Secret: encKey1.Secret}}, "id must be"},
		{"duplicate id", []Key{encKey1, {ID: "e1", Secret: encKey2.Secret}}, "used twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewSealer(tc.keys)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewSealer = %v, want an error about %q", err, tc.want)
			}
			for _, k := range tc.keys {
				if len(k.Secret) > 0 && strings.Contains(err.Error(), string(k.Secret)) {
					t.Errorf("error %q names a secret", err)
				}
			}
		})
	}
}

func TestASealerFromAKeyFile(t *testing.T) {
	set, err := Parse([]byte(file(entry("h1", secret32), entry("new", secret32)+entry("old", secret32), entry("t1", secret32), "active_encryption_key: old\n")))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSealer(set.Encryption)
	if err != nil {
		t.Fatal(err)
	}
	if sealed := s.Seal([]byte("alice")); !strings.HasPrefix(sealed, "old.") {
		t.Fatalf("Seal = %q, want the active key old", sealed)
	}
}
