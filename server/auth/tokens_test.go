package auth

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/consentd/consentd/server/keys"
)

var (
	keyA  = keys.Key{ID: "a", Secret: []byte("0123456789abcdef0123456789abcdef")}
	keyB  = keys.Key{ID: "b", Secret: []byte("fedcba9876543210fedcba9876543210")}
	epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

func minter(t *testing.T, now time.Time, ks ...keys.Key) *Tokens {
	t.Helper()
	tokens, err := NewTokens(ks, time.Hour, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	return tokens
}

func issue(t *testing.T, tokens *Tokens, subject string) string {
	t.Helper()
	token, _, err := tokens.Issue(subject)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func TestATokenOpensItsSubjectUntilItExpires(t *testing.T) {
	token := issue(t, minter(t, epoch, keyA), "alice")
	if got, err := minter(t, epoch.Add(59*time.Minute), keyA).Verify(token); err != nil || got != "alice" {
		t.Fatalf("Verify = %q, %v", got, err)
	}
	if _, err := minter(t, epoch.Add(time.Hour), keyA).Verify(token); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("at expiry: %v, want ErrTokenExpired", err)
	}
}

func TestRotatedTokenKeysKeepOldTokensValid(t *testing.T) {
	old := issue(t, minter(t, epoch, keyA), "alice")
	rotated := minter(t, epoch, keyB, keyA) // b signs now, a still verifies
	if got, err := rotated.Verify(old); err != nil || got != "alice" {
		t.Fatalf("a token of the previous key: %q, %v", got, err)
	}
	if got, err := rotated.Verify(issue(t, rotated, "bob")); err != nil || got != "bob" {
		t.Fatalf("a token of the new key: %q, %v", got, err)
	}
	if _, err := minter(t, epoch, keyA).Verify(issue(t, rotated, "bob")); !errors.Is(err, ErrTokenInvalid) {
		t.Fatalf("a token of a key no longer known: %v, want ErrTokenInvalid", err)
	}
}

func TestForgedTokensAreInvalid(t *testing.T) {
	tokens := minter(t, epoch, keyA)
	good := issue(t, tokens, "alice")
	parts := strings.Split(good, ".")
	swapSubject := func() string {
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		forged := strings.Replace(string(payload), `"alice"`, `"bobby"`, 1)
		return parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forged)) + "." + parts[2]
	}
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	for name, token := range map[string]string{
		"another key":         issue(t, minter(t, epoch, keys.Key{ID: "a", Secret: []byte("not-the-key-consentd-knows-about!")}), "alice"),
		"an unknown key id":   issue(t, minter(t, epoch, keys.Key{ID: "z", Secret: keyA.Secret}), "alice"),
		"a changed subject":   swapSubject(),
		"alg none":            noneHeader + "." + parts[1] + ".",
		"no signature":        parts[0] + "." + parts[1] + ".",
		"garbage":             "a.b.c",
		"empty":               "",
		"an API key":          "key-admin-0123456789abcdefghijklmnopqrstuv",
		"a truncated token":   good[:len(good)-3],
		"trailing characters": good + "x",
	} {
		t.Run(name, func(t *testing.T) {
			if subject, err := tokens.Verify(token); !errors.Is(err, ErrTokenInvalid) {
				t.Fatalf("Verify = %q, %v; want ErrTokenInvalid", subject, err)
			}
		})
	}
}
