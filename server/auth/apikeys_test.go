package auth

import (
	"strings"
	"testing"
)

const someKey = "key-checkout-0123456789abcdefghijklmnopq"

func TestAnAPIKeysFileMapsKeysToNamedPrincipals(t *testing.T) {
	keys, err := ParseAPIKeys([]byte("keys:\n  - name: checkout\n    hash: " + HashKey(someKey) + "\n    scopes: [check, read]\n"))
	if err != nil {
		t.Fatal(err)
	}
	p, ok := keys.Lookup(someKey)
	if !ok || p.Kind != Service || p.Name != "checkout" || !p.Has(ScopeCheck) || !p.Has(ScopeRead) || p.Has(ScopeWrite) {
		t.Fatalf("principal = %+v, %v", p, ok)
	}
	if p.Actor() != "key:checkout" {
		t.Errorf("actor = %q", p.Actor())
	}
	if _, ok := keys.Lookup(someKey + "x"); ok {
		t.Error("a different key was accepted")
	}
	if _, ok := keys.Lookup(HashKey(someKey)); ok {
		t.Error("the hash itself was accepted as a key")
	}
}

func TestAdminHoldsEveryScope(t *testing.T) {
	p := Principal{Kind: Service, Scopes: map[Scope]bool{ScopeAdmin: true}}
	for _, s := range AllScopes {
		if !p.Has(s) {
			t.Errorf("admin lacks %s", s)
		}
	}
	if (Principal{Kind: Visitor, Scopes: map[Scope]bool{ScopeAdmin: true}}).Has(ScopeRead) {
		t.Error("a visitor holds a scope")
	}
}

func TestTheSingleEnvironmentKeyHasEveryScope(t *testing.T) {
	keys, err := SingleAPIKey(someKey)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := keys.Lookup(someKey)
	if !ok || p.Name != "default" || !p.Has(ScopeWatch) || !p.Has(ScopeToken) {
		t.Fatalf("principal = %+v, %v", p, ok)
	}
	if _, err := SingleAPIKey("short"); err == nil || !strings.Contains(err.Error(), "CONSENTD_API_KEY: must be at least 32 characters") {
		t.Fatalf("a short key: %v", err)
	}
}

func TestBadAPIKeysFilesAreRefusedNamingTheField(t *testing.T) {
	hash := HashKey(someKey)
	entry := func(name, hash, scopes string) string {
		return "  - name: " + name + "\n    hash: " + hash + "\n    scopes: " + scopes + "\n"
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"empty", "", "not a valid API keys file"},
		{"no keys", "keys: []\n", "keys: at least one key"},
		{"unknown field", "keys:\n  - name: a\n    key: secret\n", "field key not found"},
		{"bad name", "keys:\n" + entry("Check Out", hash, "[check]"), "keys[0].name"},
		{"duplicate name", "keys:\n" + entry("a", hash, "[check]") + entry("a", HashKey("other-key-0123456789abcdefghijklmnop"), "[read]"), "keys[1].name"},
		{"raw key instead of hash", "keys:\n" + entry("a", someKey, "[check]"), "keys[0].hash: must be \"sha256:\""},
		{"short hash", "keys:\n" + entry("a", "sha256:abcd", "[check]"), "keys[0].hash"},
		{"no scopes", "keys:\n" + entry("a", hash, "[]"), "keys[0].scopes: at least one scope"},
		{"unknown scope", "keys:\n" + entry("a", hash, "[check, sudo]"), `keys[0].scopes[1]: unknown scope "sudo"`},
		{"same key twice", "keys:\n" + entry("a", hash, "[check]") + entry("b", hash, "[read]"), "keys[1].hash: the same key is listed twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseAPIKeys([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), someKey) {
				t.Errorf("the error echoes a key: %v", err)
			}
		})
	}
}
