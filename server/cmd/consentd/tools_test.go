package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/consentd/consentd/server/app"
	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/internal/redistest"
	"github.com/consentd/consentd/server/store"
)

const (
	hmacOld = "  - id: h1\n    secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"
	hmacNew = "  - id: h2\n    secret: bmV3LWhtYWMta2V5LTAxMjM0NTY3ODlhYmNkZWYwMTI=\n"
	others  = "encryption_keys:\n  - id: e1\n    secret: ZW5jcnlwdGlvbi1rZXktMzItYnl0ZXMtbG9uZy4uLi4=\n" +
		"token_keys:\n  - id: t1\n    secret: dG9rZW4tc2lnbmluZy1rZXktb2YtMzItYnl0ZXMuLi4=\n"
)

// keyFile writes a key file with the given HMAC keys, the first active.
func keyFile(t *testing.T, hmac ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys.yaml")
	if err := os.WriteFile(path, []byte("hmac_keys:\n"+strings.Join(hmac, "")+others), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// consentd runs the command in-process with no CONSENTD_* variables.
func consentd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	tool := tools[args[0]]
	code = tool(t.Context(), args[1:], func(string) string { return "" }, &out, &errOut)
	return code, out.String(), errOut.String()
}

// seed writes subjects through a store built as the commands build theirs.
func seed(t *testing.T, redisURL, keys string, subjects ...string) *store.Store {
	t.Helper()
	cfg, err := config.LoadTool("test", []string{"--redis-url", redisURL, "--keys-file", keys}, func(string) string { return "" }, os.Stderr, func(*flag.FlagSet) {})
	if err != nil {
		t.Fatal(err)
	}
	s, client, err := app.OpenStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	for _, id := range subjects {
		_, err := s.Write(context.Background(), store.Write{SubjectID: id,
			Decisions: map[string]domain.Decision{"ads": {Granted: false, DecidedAt: time.Unix(1_750_000_000, 0), Source: domain.SourceAPI}},
			Event:     store.EventInfo{Type: domain.EventUpdate, Actor: "api", Source: domain.SourceAPI}})
		if err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func TestVerifyCommand(t *testing.T) {
	srv := redistest.Start(t)
	url := "redis://" + srv.Addr() + "/0"
	keys := keyFile(t, hmacOld)
	seed(t, url, keys, "alice", "bob", "carol")

	code, out, errOut := consentd(t, "verify", "--all", "--redis-url", url, "--keys-file", keys)
	if code != 0 || !strings.Contains(out, "subjects checked: 3\nsubjects verified: 3\nsubjects unauthenticated (legacy): 0\nfeed entries checked: 3\nfindings: 0\n") {
		t.Errorf("verify of untouched data: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, _ := consentd(t, "verify", "--subject", "alice", "--redis-url", url, "--keys-file", keys); code != 0 || !strings.Contains(out, "subjects checked: 1\n") {
		t.Errorf("verify --subject: exit %d\n%s", code, out)
	}

	// A denial flipped to a grant in every state: one finding each, exit 1.
	client := srv.Client(t)
	for _, k := range client.Keys(t.Context(), "consentd:*:s:*").Val() {
		client.HSet(t.Context(), k, "ads", "g"+client.HGet(t.Context(), k, "ads").Val()[1:])
	}
	code, out, _ = consentd(t, "verify", "--all", "--redis-url", url, "--keys-file", keys)
	if code != 1 || strings.Count(out, "finding kind=state ") != 3 || !strings.Contains(out, "findings: 3 (state 3)\n") {
		t.Errorf("verify of tampered data: exit %d\n%s", code, out)
	}

	for _, args := range [][]string{
		{"verify", "--redis-url", url, "--keys-file", keys},                                // no scope
		{"verify", "--all", "--subject", "alice", "--redis-url", url, "--keys-file", keys}, // two
		{"verify", "--all", "--resume", "p3/keys/-/0", "--redis-url", url, "--keys-file", keys},
		{"verify", "--all", "--redis-url", url},                                          // no keys file
		{"verify", "--all", "--redis-url", "redis://127.0.0.1:1/0", "--keys-file", keys}, // no Redis
		{"rekey", "--rate", "-1", "--redis-url", url, "--keys-file", keys},
	} {
		if code, out, errOut := consentd(t, args...); code != 2 || errOut == "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want 2 and a reason", args, code, out, errOut)
		}
	}
}

// consentd's first argument chooses a subcommand; anything else is the
// server's flags.
func TestRunDispatchesSubcommands(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"verify"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "consentd verify:") {
		t.Errorf("consentd verify without flags: exit %d, %q", code, errOut.String())
	}
	errOut.Reset()
	if code := run([]string{"--no-such-flag"}, &out, &errOut); code != 2 || strings.Contains(errOut.String(), "verify") {
		t.Errorf("consentd --no-such-flag: exit %d, %q", code, errOut.String())
	}
}

func TestRekeyCommand(t *testing.T) {
	srv := redistest.Start(t)
	url := "redis://" + srv.Addr() + "/0"
	seed(t, url, keyFile(t, hmacOld), "alice", "bob", "carol")
	rotated := keyFile(t, hmacNew, hmacOld)

	code, out, errOut := consentd(t, "rekey", "--rate", "0", "--redis-url", url, "--keys-file", rotated)
	if code != 0 || !strings.HasPrefix(out, "moved: 3\n") || !strings.Contains(out, "without data key: 0\nerrors: 0\n") {
		t.Errorf("rekey: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = consentd(t, "rekey", "--redis-url", url, "--keys-file", rotated)
	if code != 0 || !strings.HasPrefix(out, "moved: 0\nalready active: 3\n") {
		t.Errorf("rekey again: exit %d\n%s", code, out)
	}
	// With the old key gone from the key file, everything reads and verifies.
	if code, out, _ := consentd(t, "verify", "--all", "--redis-url", url, "--keys-file", keyFile(t, hmacNew)); code != 0 || !strings.Contains(out, "subjects verified: 3\n") {
		t.Errorf("verify with the new key alone: exit %d\n%s", code, out)
	}
}
