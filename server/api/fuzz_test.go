package api

import (
	"errors"
	"testing"

	"github.com/consentd/consentd/server/domain"
)

// FuzzParsePageToken: a page token is accepted only if it is exactly what
// pageToken makes, and a refused one names page_token.
func FuzzParsePageToken(f *testing.F) {
	f.Add(pageToken(42))
	f.Add("")
	f.Add("garbage")
	f.Add("YmVmb3JlOi0x") // before:-1
	f.Fuzz(func(t *testing.T, token string) {
		before, err := parsePageToken(token)
		if err != nil {
			var fe *domain.FieldError
			if !errors.As(err, &fe) || fe.Field != "page_token" {
				t.Fatalf("error %v does not name page_token", err)
			}
			return
		}
		if token != "" && (before < 1 || pageToken(before) != token) {
			t.Fatalf("accepted %q as %d", token, before)
		}
	})
}

// FuzzValidateIdempotencyKey: an accepted key is 0-128 printable ASCII
// characters without spaces.
func FuzzValidateIdempotencyKey(f *testing.F) {
	f.Add("order-77")
	f.Add("with space")
	f.Add("é")
	f.Fuzz(func(t *testing.T, key string) {
		if validateIdempotencyKey(key) != nil {
			return
		}
		if len(key) > 128 {
			t.Fatalf("accepted %d bytes", len(key))
		}
		for _, c := range []byte(key) {
			if c < 0x21 || c > 0x7e {
				t.Fatalf("accepted byte %#x", c)
			}
		}
	})
}
