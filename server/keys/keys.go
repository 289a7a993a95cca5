// Package keys loads the operator's keys: customer-managed secrets that
// consentd uses but never generates for production. For now it holds the
// HMAC key that turns subject ids into Redis key names.
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

// MinSecretBytes is the shortest HMAC secret accepted: 256 bits.
const MinSecretBytes = 32

// Key is one secret with the id it is known by.
type Key struct {
	ID     string
	Secret []byte
}

// Set is the loaded key file.
type Set struct {
	// HMAC keys for Redis key names, the one in use first. Later entries are
	// kept so a rotation can still find data written under them.
	HMAC []Key
}

// ActiveHMAC is the key used for new data.
func (s Set) ActiveHMAC() Key { return s.HMAC[0] }

type fileFormat struct {
	HMACKeys []struct {
		ID     string `yaml:"id"`
		Secret string `yaml:"secret"`
	} `yaml:"hmac_keys"`
}

var keyID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,32}$`)

// Load reads a key file:
//
//	hmac_keys:
//	  - id: k2026a
//	    secret: <base64 of at least 32 random bytes>
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
	if len(f.HMACKeys) == 0 {
		return Set{}, errors.New("hmac_keys: at least one key is required")
	}
	var set Set
	seen := map[string]bool{}
	for i, k := range f.HMACKeys {
		if !keyID.MatchString(k.ID) {
			return Set{}, fmt.Errorf("hmac_keys[%d].id: must be 1-32 characters of A-Z a-z 0-9 . _ -", i)
		}
		if seen[k.ID] {
			return Set{}, fmt.Errorf("hmac_keys[%d].id: %q is used twice", i, k.ID)
		}
		seen[k.ID] = true
		secret, err := base64.StdEncoding.DecodeString(k.Secret)
		if err != nil {
			return Set{}, fmt.Errorf("hmac_keys[%d].secret: not base64", i)
		}
		if len(secret) < MinSecretBytes {
			return Set{}, fmt.Errorf("hmac_keys[%d].secret: must be at least %d bytes, got %d (make one with: head -c 32 /dev/urandom | base64)", i, MinSecretBytes, len(secret))
		}
		set.HMAC = append(set.HMAC, Key{ID: k.ID, Secret: secret})
	}
	return set, nil
}
