package keys

import (
	"strings"
	"testing"
)

const (
	secret32 = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="             // 32 bytes
	secret40 = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nw==" // 40 bytes
)

func file(hmac, enc, token string, extra ...string) string {
	return "hmac_keys:\n" + hmac + "encryption_keys:\n" + enc + "token_keys:\n" + token + strings.Join(extra, "")
}

func entry(id, secret string) string { return "  - id: " + id + "\n    secret: " + secret + "\n" }

func TestParseAcceptsAKeyFile(t *testing.T) {
	set, err := Parse([]byte(file(entry("h2", secret32)+entry("h1", secret40), entry("e1", secret32), entry("t1", secret40))))
	if err != nil {
		t.Fatal(err)
	}
	if set.ActiveHMAC().ID != "h2" || set.ActiveEncryption().ID != "e1" || set.ActiveToken().ID != "t1" {
		t.Errorf("active keys = %s %s %s, want the first listed", set.ActiveHMAC().ID, set.ActiveEncryption().ID, set.ActiveToken().ID)
	}
	if len(set.HMAC) != 2 || len(set.HMAC[1].Secret) != 40 {
		t.Errorf("hmac keys = %+v", set.HMAC)
	}
}

func TestAnActiveKeyCanBeNamed(t *testing.T) {
	// Rotation step one: every instance learns the new key while the old
	// one stays active.
	set, err := Parse([]byte(file(entry("new", secret32)+entry("old", secret32), entry("e1", secret32), entry("t1", secret32), "active_hmac_key: old\n")))
	if err != nil {
		t.Fatal(err)
	}
	if set.ActiveHMAC().ID != "old" || set.HMAC[1].ID != "new" {
		t.Errorf("hmac keys in order %s, %s; want old (active), new", set.HMAC[0].ID, set.HMAC[1].ID)
	}
}

func TestParseRejectsBadKeyFiles(t *testing.T) {
	good := entry("k", secret32)
	for _, tc := range []struct{ name, yaml, want string }{
		{"empty file", "", "not a valid key file"},
		{"no hmac keys", file("", good, good), "hmac_keys: at least one key"},
		{"no encryption keys", file(good, "", good), "encryption_keys: at least one key"},
		{"no token keys", file(good, good, ""), "token_keys: at least one key"},
		{"unknown field", file(good, good, good, "hmac_key: x\n"), "field hmac_key not found"},
		{"bad id", file(entry("a b", secret32), good, good), "hmac_keys[0].id"},
		{"duplicate id", file(good+good, good, good), "hmac_keys[1].id"},
		{"not base64", file(good, good, entry("t", "'%%%'")), "token_keys[0].secret: not base64"},
		{"too short", file(entry("h", "c2hvcnQ="), good, good), "hmac_keys[0].secret: must be at least 32 bytes, got 5"},
		{"encryption key not 32 bytes", file(good, entry("e", secret40), good), "encryption_keys[0].secret: must be exactly 32 bytes"},
		{"unknown active key", file(good, good, good, "active_token_key: nope\n"), `active_token_key: "nope" is not an id in token_keys`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
			for _, secret := range []string{secret32, secret40} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error leaks a secret: %v", err)
				}
			}
		})
	}
}
