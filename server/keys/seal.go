package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Errors of Sealer.Open. They name no secret and no plaintext.
var (
	// ErrUnknownKeyID: the value was sealed with an encryption key that is
	// not in the key file (any more): keep a key listed while data sealed
	// with it is still kept.
	ErrUnknownKeyID = errors.New("keys: sealed with an unknown encryption key id")
	// ErrNotAuthentic: the value is malformed, was changed, or was sealed
	// under the same id with another secret.
	ErrNotAuthentic = errors.New("keys: sealed value is malformed or not authentic")
)

// Sealer seals with the active encryption key and opens with any known one.
// It is safe for concurrent use.
//
// A sealed value is "<key id>.<base64url, no padding, of nonce|ciphertext|tag>"
// with AES-256-GCM, a random 12-byte nonce and a 16-byte tag: the id says
// which key opens it, so values sealed before a rotation stay readable while
// their key is listed. The key id is also the GCM additional data, so a value
// relabelled with another id does not open. Ids never contain '.' (see
// keyID), which makes the first '.' the separator.
//
// With random nonces one key must not seal more than 2^32 values (NIST SP
// 800-38D); at 1,000 seals a second that is over 100 years, and rotating the
// encryption key resets the count.
type Sealer struct {
	activeID string
	aeads    map[string]cipher.AEAD // by key id
	// macKeys are derived from the encryption keys, active first: integrity
	// tags (MAC) need a key that whoever can write to the store does not
	// hold, and the encryption keys are the operator's secrets already, so
	// a rotation of those rotates these too.
	macKeys [][]byte
}

// NewSealer builds a Sealer from keys, the active one first (as in
// Set.Encryption). Each secret must be exactly 32 bytes (AES-256).
func NewSealer(keys []Key) (*Sealer, error) {
	if len(keys) == 0 {
		return nil, errors.New("keys: sealer: at least one encryption key is required")
	}
	s := &Sealer{activeID: keys[0].ID, aeads: make(map[string]cipher.AEAD, len(keys))}
	for i, k := range keys {
		if !keyID.MatchString(k.ID) {
			return nil, fmt.Errorf("keys: sealer: key %d: id must be 1-32 characters of A-Z a-z 0-9 _ -", i)
		}
		if _, dup := s.aeads[k.ID]; dup {
			return nil, fmt.Errorf("keys: sealer: key id %q is used twice", k.ID)
		}
		if len(k.Secret) != MinSecretBytes {
			return nil, fmt.Errorf("keys: sealer: key %q: must be exactly %d bytes (AES-256), got %d", k.ID, MinSecretBytes, len(k.Secret))
		}
		block, err := aes.NewCipher(k.Secret) // copies the key: the caller may zero k.Secret
		if err != nil {
			return nil, fmt.Errorf("keys: sealer: key %q: %w", k.ID, err)
		}
		// Draws the 12-byte nonce from crypto/rand on every Seal and puts it
		// in front of the ciphertext, so no caller can reuse a nonce.
		aead, err := cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			return nil, fmt.Errorf("keys: sealer: key %q: %w", k.ID, err)
		}
		s.aeads[k.ID] = aead
		mac := hmac.New(sha256.New, k.Secret)
		mac.Write([]byte("consentd integrity v1"))
		s.macKeys = append(s.macKeys, mac.Sum(nil)) // in the keys' order: the active first
	}
	return s, nil
}

// MAC is an HMAC-SHA256 of the parts (each length-prefixed, so parts cannot
// run into each other) under the integrity key derived from the active
// encryption key. Whoever can write to the store but does not hold the key
// file cannot make one.
func (s *Sealer) MAC(parts ...[]byte) []byte { return mac(s.macKeys[0], parts) }

// VerifyMAC reports whether tag is MAC(parts) under the integrity key of any
// known encryption key: tags made before a rotation stay valid while their
// key is listed. tag may be a prefix of the MAC, of at least 16 bytes.
func (s *Sealer) VerifyMAC(tag []byte, parts ...[]byte) bool {
	if len(tag) < 16 {
		return false
	}
	for _, key := range s.macKeys {
		if hmac.Equal(mac(key, parts)[:min(len(tag), sha256.Size)], tag) {
			return true
		}
	}
	return false
}

func mac(key []byte, parts [][]byte) []byte {
	h := hmac.New(sha256.New, key)
	var n [4]byte
	for _, p := range parts {
		l := len(p)
		n[0], n[1], n[2], n[3] = byte(l>>24), byte(l>>16), byte(l>>8), byte(l)
		h.Write(n[:])
		h.Write(p)
	}
	return h.Sum(nil)
}

// SealedWithActive reports whether a value made by Seal was sealed with the
// active key (so need not be sealed again after a rotation).
func (s *Sealer) SealedWithActive(sealed string) bool {
	return strings.HasPrefix(sealed, s.activeID+".")
}

// Seal encrypts plaintext with the active key. Sealing the same plaintext
// twice gives different values (random nonce).
func (s *Sealer) Seal(plaintext []byte) string {
	sealed := s.aeads[s.activeID].Seal(nil, nil, plaintext, []byte(s.activeID))
	return s.activeID + "." + base64.RawURLEncoding.EncodeToString(sealed)
}

// Open decrypts a value made by Seal with any key the Sealer knows. The
// error wraps ErrUnknownKeyID or ErrNotAuthentic.
func (s *Sealer) Open(sealed string) ([]byte, error) {
	id, body, ok := strings.Cut(sealed, ".")
	if !ok || !keyID.MatchString(id) {
		return nil, ErrNotAuthentic
	}
	aead, known := s.aeads[id]
	if !known {
		return nil, fmt.Errorf("%w %q", ErrUnknownKeyID, id) // an id is not a secret, and it matched keyID
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return nil, ErrNotAuthentic
	}
	plaintext, err := aead.Open(nil, nil, raw, []byte(id)) // fails on short input too
	if err != nil {
		return nil, ErrNotAuthentic
	}
	return plaintext, nil
}
