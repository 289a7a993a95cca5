package auth

import (
	"testing"
	"time"

	"github.com/consentd/consentd/server/keys"
)

// FuzzVerify: no input but the one token minted here is accepted, and
// nothing panics. Mutations of that token (the fuzzer starts from it) must
// all be refused.
func FuzzVerify(f *testing.F) {
	tokens, err := NewTokens([]keys.Key{keyA}, time.Hour, func() time.Time { return epoch })
	if err != nil {
		f.Fatal(err)
	}
	valid, _, err := tokens.Issue("alice")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add("")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, token string) {
		subject, err := tokens.Verify(token)
		if err == nil && (token != valid || subject != "alice") {
			t.Fatalf("accepted %q as %q", token, subject)
		}
	})
}
