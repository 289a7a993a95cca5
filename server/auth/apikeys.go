package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// APIKeys holds the configured API keys, by the SHA-256 of the key. The keys
// themselves are never stored: they are long random strings, so a plain
// SHA-256 is enough to make a leaked file useless (no password-style
// stretching is needed).
type APIKeys struct {
	byHash map[[sha256.Size]byte]Principal
}

// HashKey is the SHA-256 of an API key, in the form the keys file holds.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Lookup returns the principal of a presented key.
func (k *APIKeys) Lookup(key string) (Principal, bool) {
	if k == nil {
		return Principal{}, false
	}
	p, ok := k.byHash[sha256.Sum256([]byte(key))]
	return p, ok
}

// Len is the number of keys.
func (k *APIKeys) Len() int {
	if k == nil {
		return 0
	}
	return len(k.byHash)
}

var keyName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// MinAPIKeyLength is the shortest API key accepted from CONSENTD_API_KEY:
// keys are bearer secrets, so they must be long and random.
const MinAPIKeyLength = 32

type apiKeysFile struct {
	Keys []struct {
		Name   string   `yaml:"name"`
		Hash   string   `yaml:"hash"`
		Scopes []string `yaml:"scopes"`
	} `yaml:"keys"`
}

// ParseAPIKeys reads an API keys file:
//
//	keys:
//	  - name: checkout            # recorded as the actor of its writes
//	    hash: sha256:<hex>        # printf %s "$KEY" | sha256sum
//	    scopes: [check, read]
//
// Errors name the field and never echo a hash.
func ParseAPIKeys(data []byte) (*APIKeys, error) {
	var f apiKeysFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("not a valid API keys file: %w", err)
	}
	if len(f.Keys) == 0 {
		return nil, fmt.Errorf("keys: at least one key is required")
	}
	out := &APIKeys{byHash: map[[sha256.Size]byte]Principal{}}
	names := map[string]bool{}
	for i, k := range f.Keys {
		field := fmt.Sprintf("keys[%d]", i)
		if !keyName.MatchString(k.Name) {
			return nil, fmt.Errorf("%s.name: must be 1-64 characters of a-z 0-9 . _ - starting with a letter or digit", field)
		}
		if names[k.Name] {
			return nil, fmt.Errorf("%s.name: %q is used twice", field, k.Name)
		}
		names[k.Name] = true
		hexHash, ok := strings.CutPrefix(k.Hash, "sha256:")
		raw, err := hex.DecodeString(hexHash)
		if !ok || err != nil || len(raw) != sha256.Size {
			return nil, fmt.Errorf("%s.hash: must be \"sha256:\" and 64 hex digits (printf %%s \"$KEY\" | sha256sum)", field)
		}
		if len(k.Scopes) == 0 {
			return nil, fmt.Errorf("%s.scopes: at least one scope is required", field)
		}
		p := Principal{Kind: Service, Name: k.Name, Scopes: map[Scope]bool{}}
		for j, s := range k.Scopes {
			scope, err := ParseScope(s)
			if err != nil {
				return nil, fmt.Errorf("%s.scopes[%d]: %v", field, j, err)
			}
			p.Scopes[scope] = true
		}
		hash := [sha256.Size]byte(raw)
		if _, dup := out.byHash[hash]; dup {
			return nil, fmt.Errorf("%s.hash: the same key is listed twice", field)
		}
		out.byHash[hash] = p
	}
	return out, nil
}

// LoadAPIKeys reads an API keys file from disk.
func LoadAPIKeys(path string) (*APIKeys, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("API keys file: %w", err)
	}
	keys, err := ParseAPIKeys(data)
	if err != nil {
		return nil, fmt.Errorf("API keys file %s: %w", path, err)
	}
	return keys, nil
}

// SingleAPIKey is the one key of CONSENTD_API_KEY: named "default", with
// every scope. Only its hash is kept.
func SingleAPIKey(key string) (*APIKeys, error) {
	if len(key) < MinAPIKeyLength {
		return nil, fmt.Errorf("CONSENTD_API_KEY: must be at least %d characters of random text, got %d", MinAPIKeyLength, len(key))
	}
	scopes := map[Scope]bool{}
	for _, s := range AllScopes {
		scopes[s] = true
	}
	return &APIKeys{byHash: map[[sha256.Size]byte]Principal{
		sha256.Sum256([]byte(key)): {Kind: Service, Name: "default", Scopes: scopes},
	}}, nil
}
