package config

import (
	"io"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaultsNeedOnlyAKeysFile(t *testing.T) {
	c, err := Load([]string{"--keys-file", "k.yaml"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.RedisURL != "redis://127.0.0.1:6379/0" || c.GRPCAddr != "127.0.0.1:9090" || c.HTTPAddr != "127.0.0.1:8080" ||
		c.PolicyPath != "" || c.RedisTimeout != time.Second || c.LogFormat != "json" {
		t.Errorf("defaults = %+v", c)
	}
}

func TestEnvironmentSetsAndFlagsOverride(t *testing.T) {
	c, err := Load([]string{"--http-addr", "127.0.0.1:9999"}, env(map[string]string{
		"CONSENTD_KEYS_FILE":     "/etc/consentd/keys.yaml",
		"CONSENTD_HTTP_ADDR":     "127.0.0.1:1111",
		"CONSENTD_REDIS_URL":     "redis://10.0.0.1:6380/2",
		"CONSENTD_REDIS_TIMEOUT": "250ms",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.KeysFile != "/etc/consentd/keys.yaml" || c.HTTPAddr != "127.0.0.1:9999" ||
		c.RedisURL != "redis://10.0.0.1:6380/2" || c.RedisTimeout != 250*time.Millisecond {
		t.Errorf("config = %+v", c)
	}
}

func TestBadSettingsAreNamed(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"missing keys file", nil, nil, "--keys-file (CONSENTD_KEYS_FILE): required"},
		{"bad redis url", []string{"--keys-file=k", "--redis-url=http://x"}, nil, "--redis-url (CONSENTD_REDIS_URL)"},
		{"bad grpc addr", []string{"--keys-file=k", "--grpc-addr=9090"}, nil, "--grpc-addr (CONSENTD_GRPC_ADDR)"},
		{"same ports", []string{"--keys-file=k", "--grpc-addr=127.0.0.1:1", "--http-addr=127.0.0.1:1"}, nil, "need different ports"},
		{"bad log format", []string{"--keys-file=k", "--log-format=xml"}, nil, "--log-format"},
		{"bad log level", []string{"--keys-file=k", "--log-level=loud"}, nil, "--log-level"},
		{"bad duration in env", []string{"--keys-file=k"}, map[string]string{"CONSENTD_REDIS_TIMEOUT": "soon"}, "CONSENTD_REDIS_TIMEOUT"},
		{"negative timeout", []string{"--keys-file=k", "--redis-timeout=-1s"}, nil, "must be positive"},
		{"unknown flag", []string{"--keys-file=k", "--colour=red"}, nil, "flag provided but not defined: -colour"},
		{"stray argument", []string{"--keys-file=k", "serve"}, nil, `unexpected argument "serve"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.args, env(tc.env), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
