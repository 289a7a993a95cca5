package keys

import (
	"strings"
	"testing"
)

const secret32 = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // 32 bytes

func TestParseAcceptsAKeyFile(t *testing.T) {
	set, err := Parse([]byte("hmac_keys:\n  - id: k2\n    secret: " + secret32 + "\n  - id: k1\n    secret: " + secret32 + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := set.ActiveHMAC().ID; got != "k2" {
		t.Errorf("active key = %q, want the first listed, k2", got)
	}
	if len(set.HMAC) != 2 || len(set.HMAC[1].Secret) != 32 {
		t.Errorf("keys = %+v", set.HMAC)
	}
}

func TestParseRejectsBadKeyFiles(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"empty file", "", "not a valid key file"},
		{"no keys", "hmac_keys: []\n", "hmac_keys: at least one key"},
		{"unknown field", "hmac_key: x\n", "field hmac_key not found"},
		{"bad id", "hmac_keys:\n  - id: 'a b'\n    secret: " + secret32 + "\n", "hmac_keys[0].id"},
		{"duplicate id", "hmac_keys:\n  - id: a\n    secret: " + secret32 + "\n  - id: a\n    secret: " + secret32 + "\n", "hmac_keys[1].id"},
		{"not base64", "hmac_keys:\n  - id: a\n    secret: '%%%'\n", "hmac_keys[0].secret: not base64"},
		{"too short", "hmac_keys:\n  - id: a\n    secret: c2hvcnQ=\n", "at least 32 bytes, got 5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), secret32) {
				t.Errorf("error leaks the secret: %v", err)
			}
		})
	}
}
