// Package keys loads the operator's keys: customer-managed secrets that
// consentd uses but never makes for production. There are three kinds, each
// a list so a key can be rotated: new data uses the active key while data
// made with an older one stays readable.
//
//	hmac_keys        name Redis keys after a keyed hash of the subject id
//	encryption_keys  seal sensitive fields (AES-256-GCM)
//	token_keys       sign subject tokens (HMAC-SHA256)
package keys

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"regexp"

	"go.yaml.in/yaml/v3"
)

// MinSecretBytes is the shortest secret accepted: 256 bits. Encryption keys
// are exactly this long (AES-256).
const MinSecretBytes = 32

// Key is one secret with the id it is known by.
type Key struct {
	ID     string
	Secret []byte
}

// Set is the loaded key file. In each list the active key comes first.
type Set struct {
	HMAC       []Key
	Encryption []Key
	Token      []Key
}

// ActiveHMAC is the key that names new Redis keys.
func (s Set) ActiveHMAC() Key { return s.HMAC[0] }

// ActiveEncryption is the key that seals new data.
func (s Set) ActiveEncryption() Key { return s.Encryption[0] }

// ActiveToken is the key that signs new subject tokens.
func (s Set) ActiveToken() Key { return s.Token[0] }

type keyEntry struct {
	ID     string `yaml:"id"`
	Secret string `yaml:"secret"`
}

type fileFormat struct {
	HMACKeys            []keyEntry `yaml:"hmac_keys"`
	EncryptionKeys      []keyEntry `yaml:"encryption_keys"`
	TokenKeys           []keyEntry `yaml:"token_keys"`
	ActiveHMACKey       string     `yaml:"active_hmac_key"`
	ActiveEncryptionKey string     `yaml:"active_encryption_key"`
	ActiveTokenKey      string     `yaml:"active_token_key"`
}

var keyID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// Load reads a key file:
//
//	hmac_keys:
//	  - id: h2026a
//	    secret: <base64 of at least 32 random bytes>
//	encryption_keys:
//	  - id: e2026a
//	    secret: <base64 of exactly 32 random bytes>
//	token_keys:
//	  - id: t2026a
//	    secret: <base64 of at least 32 random bytes>
//	# optional: which key of a list is active (default: the first listed)
//	active_hmac_key: h2026a
func Load(path string) (Set, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Set{}, fmt.Errorf("keys file: %w", err)
	}
	set, err := Parse(data)
	if err != nil {
		return Set{}, fmt.Errorf("keys file %s: %w", path, err)
	}
	return set, nil
}

// Parse reads a key file's contents. Errors name the field, never a secret.
func Parse(data []byte) (Set, error) {
	var f fileFormat
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return Set{}, fmt.Errorf("not a valid key file: %w", err)
	}
	var set Set
	var errs []error
	var err error
	if set.HMAC, err = parseList("hmac_keys", f.HMACKeys, "active_hmac_key", f.ActiveHMACKey, false); err != nil {
		errs = append(errs, err)
	}
	if set.Encryption, err = parseList("encryption_keys", f.EncryptionKeys, "active_encryption_key", f.ActiveEncryptionKey, true); err != nil {
		errs = append(errs, err)
	}
	if set.Token, err = parseList("token_keys", f.TokenKeys, "active_token_key", f.ActiveTokenKey, false); err != nil {
		errs = append(errs, err)
	}
	return set, errors.Join(errs...)
}

// parseList decodes one list and moves the active key to the front.
func parseList(field string, entries []keyEntry, activeField, active string, exact bool) ([]Key, error) {
	if len(entries) == 0 {
		return nil, fmt.Errorf("%s: at least one key is required (make one with: head -c 32 /dev/urandom | base64)", field)
	}
	var out []Key
	seen := map[string]bool{}
	for i, k := range entries {
		if !keyID.MatchString(k.ID) {
			return nil, fmt.Errorf("%s[%d].id: must be 1-32 characters of A-Z a-z 0-9 _ -", field, i)
		}
		if seen[k.ID] {
			return nil, fmt.Errorf("%s[%d].id: %q is used twice", field, i, k.ID)
		}
		seen[k.ID] = true
		secret, err := base64.StdEncoding.DecodeString(k.Secret)
		if err != nil {
			return nil, fmt.Errorf("%s[%d].secret: not base64", field, i)
		}
		switch {
		case exact && len(secret) != MinSecretBytes:
			return nil, fmt.Errorf("%s[%d].secret: must be exactly %d bytes (AES-256), got %d", field, i, MinSecretBytes, len(secret))
		case len(secret) < MinSecretBytes:
			return nil, fmt.Errorf("%s[%d].secret: must be at least %d bytes, got %d (make one with: head -c 32 /dev/urandom | base64)", field, i, MinSecretBytes, len(secret))
		}
		out = append(out, Key{ID: k.ID, Secret: secret})
	}
	if active == "" {
		return out, nil
	}
	for i, k := range out {
		if k.ID == active {
			out[0], out[i] = out[i], out[0]
			return out, nil
		}
	}
	return nil, fmt.Errorf("%s: %q is not an id in %s", activeField, active, field)
}
