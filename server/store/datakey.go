package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/consentd/consentd/server/keys"
)

// Erasure by crypto-shredding. Every subject has its own data key: 32 random
// bytes, made on its first write, wrapped (sealed) with the operator's active
// encryption key and kept in a Redis key of its own (a string),
//
//	<prefix>:{p<partition>}:k:<handle>   the wrapped data key (a string)
//
// named by a random handle that the state hash keeps in _dk. Everything
// personal that a subject's writes leave behind is sealed with its data key:
// its id in its change-feed entries, and in its
// history events the client facts, a link's counterpart, a guardian and a
// reason (one sealed field "x" per event). The region code stays plain: a
// country or state, which consumers may apply rules by. Erasing a subject
// deletes the data key with the rest of its keys, in one script: from that
// moment every copy of what was sealed with it — the change feed's stream
// nodes, which XDEL only marks, an AOF not yet rewritten, replicas, RDB
// files and backups made since — is ciphertext that nothing opens.
//
// The data key lives under a handle, not under the subject's HMAC-keyed
// name, so that a feed entry finds it whatever HMAC key names the subject
// today (see "Rotating the HMAC key" in store.go and Rekey): feed entries
// carry the handle in "d".
//
// The wrapped record also holds the subject's id and a user's linked
// visitors (see dataKey).
//
// What a data key does not cover, and why: a backup made before the erasure
// holds the wrapped key like everything else (restore one, then erase again
// what was erased since; the tombstones say when); the erase notice in the
// change feed carries the subject id sealed with the operator's key, because
// downstream systems must learn whom to delete (it is trimmed with the feed).

const (
	dataKeyBytes = 32
	handleBytes  = 16
	// dataSealed starts a value sealed with a subject's data key; values
	// sealed with the operator's key start with the key's id, which never
	// holds it.
	dataSealed = "*"
)

// dataKey is a subject's data key, unwrapped, with what its wrapped record
// keeps besides the key: the subject's id (what `consentd verify` and
// `consentd rekey` need to name and check a subject found by a scan) and,
// for a user, the visitors linked to it (so that erasing the user finds them
// whatever the history's retention). Kept there rather than in the state
// hash: a sealed id is longer than the 64 bytes up to which Redis keeps a
// hash's values in its compact encoding.
type dataKey struct {
	handle   string
	secret   []byte
	subject  string
	visitors []string
	aead     cipher.AEAD
}

// dataKeyRecord is the wrapped record's plaintext, after "<handle>.".
type dataKeyRecord struct {
	Key      []byte   `json:"k"`
	Subject  string   `json:"s"`
	Visitors []string `json:"v,omitempty"`
}

// newDataKey makes a subject's data key.
func newDataKey(subjectID string) (dataKey, error) {
	raw := make([]byte, handleBytes+dataKeyBytes)
	if _, err := rand.Read(raw); err != nil {
		return dataKey{}, err
	}
	return makeDataKey(base64.RawURLEncoding.EncodeToString(raw[:handleBytes]), raw[handleBytes:], subjectID, nil)
}

// wrap seals the key's record with the operator's active encryption key, to
// store. The handle is sealed along, so a record copied under another handle
// does not open.
func (k dataKey) wrap(sealer *keys.Sealer) (string, error) {
	body, err := json.Marshal(dataKeyRecord{Key: k.secret, Subject: k.subject, Visitors: k.visitors})
	if err != nil {
		return "", err
	}
	return sealer.Seal(append([]byte(k.handle+"."), body...)), nil
}

// openDataKey unwraps a stored data key record.
func openDataKey(sealer *keys.Sealer, handle, wrapped string) (dataKey, error) {
	plain, err := sealer.Open(wrapped)
	if err != nil {
		return dataKey{}, fmt.Errorf("store: a subject's data key cannot be opened: %w", err)
	}
	body, ok := strings.CutPrefix(string(plain), handle+".")
	var rec dataKeyRecord
	if !ok || json.Unmarshal([]byte(body), &rec) != nil || len(rec.Key) != dataKeyBytes {
		return dataKey{}, fmt.Errorf("%w: a data key record stored under another handle, or malformed", errCorrupt)
	}
	return makeDataKey(handle, rec.Key, rec.Subject, rec.Visitors)
}

func makeDataKey(handle string, secret []byte, subject string, visitors []string) (dataKey, error) {
	block, err := aes.NewCipher(secret)
	if err != nil {
		return dataKey{}, err
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return dataKey{}, err
	}
	return dataKey{handle: handle, secret: secret, subject: subject, visitors: visitors, aead: aead}, nil
}

// seal encrypts plaintext with the data key (AES-256-GCM, random nonce, the
// handle as additional data): "*<base64url of nonce|ciphertext|tag>".
func (k dataKey) seal(plaintext []byte) string {
	return dataSealed + base64.RawURLEncoding.EncodeToString(k.aead.Seal(nil, nil, plaintext, []byte(k.handle)))
}

// errShredded: a value sealed with a data key that is gone (the subject was
// erased) or that was not given.
var errShredded = errors.New("store: sealed with a data key that no longer exists")

// open decrypts a value made by seal. A nil key opens nothing.
func (k *dataKey) open(sealed string) ([]byte, error) {
	body, ok := strings.CutPrefix(sealed, dataSealed)
	if !ok {
		return nil, errCorrupt
	}
	if k == nil {
		return nil, errShredded
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return nil, errCorrupt
	}
	plain, err := k.aead.Open(nil, nil, raw, []byte(k.handle))
	if err != nil {
		return nil, keys.ErrNotAuthentic
	}
	return plain, nil
}

// dataKeyName names the Redis key that holds a data key.
func dataKeyName(base, handle string) string { return base + ":k:" + handle }
