package config

import (
	"io"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaultsNeedOnlyKeysFiles(t *testing.T) {
	c, err := Load([]string{"--keys-file", "k.yaml", "--api-keys-file", "api-keys.yaml"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.RedisURL != "redis://127.0.0.1:6379/0" || c.GRPCAddr != "127.0.0.1:9090" || c.HTTPAddr != "127.0.0.1:8080" ||
		c.PolicyPath != "" || c.RedisTimeout != time.Second || c.LogFormat != "json" || c.Demo ||
		c.TokenTTL != 180*24*time.Hour || len(c.CORSOrigins) != 0 ||
		c.RateLimitIP.Rate != 20 || c.RateLimitIP.Period != time.Second || !c.RateLimitKey.IsZero() || c.TrustedProxyHops != 0 ||
		c.VisitorRetention != 396*24*time.Hour || c.HistoryRetention != 0 || c.FeedRetention != 35*24*time.Hour ||
		c.StatsRetention != 400*24*time.Hour ||
		c.FeedPollInterval != 250*time.Millisecond || c.FeedMonitorInterval != 30*time.Second ||
		c.RedisMode != "standalone" || c.DrainDelay != 5*time.Second || c.OTLPEndpoint != "" || c.TraceSampleRatio != 0.1 {
		t.Errorf("defaults = %+v", c)
	}
}

func TestEnvironmentSetsAndFlagsOverride(t *testing.T) {
	c, err := Load([]string{"--http-addr", "127.0.0.1:9999"}, env(map[string]string{
		"CONSENTD_KEYS_FILE":     "/etc/consentd/keys.yaml",
		"CONSENTD_HTTP_ADDR":     "127.0.0.1:1111",
		"CONSENTD_REDIS_URL":     "redis://10.0.0.1:6380/2",
		"CONSENTD_REDIS_TIMEOUT": "250ms",
		"CONSENTD_API_KEY":       "0123456789abcdef0123456789abcdef",
		"CONSENTD_CORS_ORIGINS":  "https://shop.example, http://localhost:3000",
		"CONSENTD_GVL":           "/etc/consentd/vendor-list.json",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.KeysFile != "/etc/consentd/keys.yaml" || c.HTTPAddr != "127.0.0.1:9999" ||
		c.RedisURL != "redis://10.0.0.1:6380/2" || c.RedisTimeout != 250*time.Millisecond ||
		c.APIKey != "0123456789abcdef0123456789abcdef" || len(c.CORSOrigins) != 2 || c.CORSOrigins[1] != "http://localhost:3000" ||
		c.GVLPath != "/etc/consentd/vendor-list.json" {
		t.Errorf("config = %+v", c)
	}
}

func TestDemoModeNeedsNoAPIKeys(t *testing.T) {
	for _, args := range [][]string{{"--keys-file=k", "--demo"}, {"--keys-file=k"}} {
		e := env(nil)
		if len(args) == 1 {
			e = env(map[string]string{"CONSENTD_DEMO": "true"})
		}
		c, err := Load(args, e, io.Discard)
		if err != nil || !c.Demo {
			t.Errorf("%v: demo=%v, %v", args, c.Demo, err)
		}
	}
}

func TestListenerSettings(t *testing.T) {
	c, err := Load([]string{"--keys-file=k", "--demo", "--public-addr=0.0.0.0:8443", "--pprof"}, env(map[string]string{
		"CONSENTD_ADMIN_ADDR": "0.0.0.0:8081",
	}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.PublicAddr != "0.0.0.0:8443" || c.AdminAddr != "0.0.0.0:8081" || !c.Pprof || c.HTTPAddr != "127.0.0.1:8080" {
		t.Errorf("listeners = public %q admin %q pprof %t http %q", c.PublicAddr, c.AdminAddr, c.Pprof, c.HTTPAddr)
	}
	c, err = Load([]string{"--keys-file=k", "--demo"}, env(nil), io.Discard)
	if err != nil || c.PublicAddr != "" || c.AdminAddr != "" || c.Pprof {
		t.Errorf("defaults: public %q admin %q pprof %t (%v): want all off", c.PublicAddr, c.AdminAddr, c.Pprof, err)
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
		{"no API keys outside demo mode", []string{"--keys-file=k"}, nil, "--api-keys-file (CONSENTD_API_KEYS_FILE) or CONSENTD_API_KEY: one is required"},
		{"both API key settings", []string{"--keys-file=k", "--api-keys-file=a"}, map[string]string{"CONSENTD_API_KEY": "x"}, "set one, not both"},
		{"bad demo value", []string{"--keys-file=k"}, map[string]string{"CONSENTD_DEMO": "maybe"}, "CONSENTD_DEMO"},
		{"bad CORS origin", []string{"--keys-file=k", "--demo", "--cors-origins=shop.example"}, nil, "--cors-origins (CONSENTD_CORS_ORIGINS)"},
		{"CORS origin with a path", []string{"--keys-file=k", "--demo", "--cors-origins=https://shop.example/x"}, nil, "--cors-origins"},
		{"bad IP rate", []string{"--keys-file=k", "--demo", "--rate-limit-ip=fast"}, nil, "--rate-limit-ip (CONSENTD_RATE_LIMIT_IP)"},
		{"bad rate unit", []string{"--keys-file=k", "--demo", "--rate-limit-key=5/d"}, nil, "--rate-limit-key"},
		{"bad proxy hops", []string{"--keys-file=k", "--demo", "--trusted-proxy-hops=-1"}, nil, "--trusted-proxy-hops"},
		{"TLS cert without key", []string{"--keys-file=k", "--demo", "--tls-cert=c.pem"}, nil, "set both or neither"},
		{"client CA without TLS", []string{"--keys-file=k", "--demo", "--tls-client-ca=ca.pem"}, nil, "mutual TLS is TLS first"},
		{"demo site outside demo mode", []string{"--keys-file=k", "--api-keys-file=a", "--demo-site=sdk-js"}, nil, "--demo-site (CONSENTD_DEMO_SITE): only with --demo"},
		{"demo site without a demo folder", []string{"--keys-file=k", "--demo", "--demo-site=/nonexistent"}, nil, "has no demo/ folder"},
		{"zero token lifetime", []string{"--keys-file=k", "--demo", "--token-ttl=0s"}, nil, "--token-ttl"},
		{"bad redis url", []string{"--keys-file=k", "--demo", "--redis-url=http://x"}, nil, "--redis-url (CONSENTD_REDIS_URL)"},
		{"bad grpc addr", []string{"--keys-file=k", "--grpc-addr=9090"}, nil, "--grpc-addr (CONSENTD_GRPC_ADDR)"},
		{"same ports", []string{"--keys-file=k", "--grpc-addr=127.0.0.1:1", "--http-addr=127.0.0.1:1"}, nil, "need different ports"},
		{"bad public addr", []string{"--keys-file=k", "--demo", "--public-addr=8443"}, nil, `--public-addr (CONSENTD_PUBLIC_ADDR): "8443" is not host:port`},
		{"bad admin addr in env", []string{"--keys-file=k", "--demo"}, map[string]string{"CONSENTD_ADMIN_ADDR": "admin"}, `--admin-addr (CONSENTD_ADMIN_ADDR): "admin" is not host:port`},
		{"public on the internal HTTP address", []string{"--keys-file=k", "--demo", "--public-addr=127.0.0.1:8080"}, nil, `--http-addr and --public-addr: both are "127.0.0.1:8080"; they need different ports`},
		{"admin on the public address", []string{"--keys-file=k", "--demo", "--public-addr=0.0.0.0:8443", "--admin-addr=0.0.0.0:8443"}, nil, "--public-addr and --admin-addr: both are"},
		{"admin on the gRPC address", []string{"--keys-file=k", "--demo", "--admin-addr=127.0.0.1:9090"}, nil, "--grpc-addr and --admin-addr: both are"},
		{"debug on the admin address", []string{"--keys-file=k", "--demo", "--admin-addr=127.0.0.1:6060", "--debug-addr=127.0.0.1:6060"}, nil, "--admin-addr and --debug-addr: both are"},
		{"pprof without the admin listener", []string{"--keys-file=k", "--demo", "--pprof"}, nil, "--pprof (CONSENTD_PPROF): needs --admin-addr"},
		{"bad pprof value", []string{"--keys-file=k"}, map[string]string{"CONSENTD_PPROF": "yes please"}, "CONSENTD_PPROF"},
		{"bad log format", []string{"--keys-file=k", "--log-format=xml"}, nil, "--log-format"},
		{"bad log level", []string{"--keys-file=k", "--log-level=loud"}, nil, "--log-level"},
		{"bad duration in env", []string{"--keys-file=k"}, map[string]string{"CONSENTD_REDIS_TIMEOUT": "soon"}, "CONSENTD_REDIS_TIMEOUT"},
		{"negative timeout", []string{"--keys-file=k", "--redis-timeout=-1s"}, nil, "must be positive"},
		{"visitor retention too short", []string{"--keys-file=k", "--demo", "--visitor-retention=10m"}, nil, "--visitor-retention (CONSENTD_VISITOR_RETENTION): must be at least 1h0m0s"},
		{"negative history retention", []string{"--keys-file=k", "--demo", "--history-retention=-1h"}, nil, "--history-retention (CONSENTD_HISTORY_RETENTION)"},
		{"zero feed retention", []string{"--keys-file=k", "--demo", "--feed-retention=0s"}, nil, "--feed-retention (CONSENTD_FEED_RETENTION)"},
		{"stats retention shorter than a day", []string{"--keys-file=k", "--demo", "--stats-retention=12h"}, nil, "--stats-retention (CONSENTD_STATS_RETENTION): must be at least 24h0m0s, got 12h0m0s"},
		{"zero stats retention", []string{"--keys-file=k", "--demo"}, map[string]string{"CONSENTD_STATS_RETENTION": "0s"}, "--stats-retention (CONSENTD_STATS_RETENTION): must be at least"},
		{"bad stats retention", []string{"--keys-file=k", "--demo", "--stats-retention=400d"}, nil, "stats-retention"},
		{"zero feed poll interval", []string{"--keys-file=k", "--demo", "--feed-poll-interval=0s"}, nil, "--feed-poll-interval"},
		{"zero feed monitor interval", []string{"--keys-file=k", "--demo"}, map[string]string{"CONSENTD_FEED_MONITOR_INTERVAL": "0s"}, "--feed-monitor-interval"},
		{"unknown redis mode", []string{"--keys-file=k", "--demo", "--redis-mode=ring"}, nil, "--redis-mode (CONSENTD_REDIS_MODE)"},
		{"cluster without addresses", []string{"--keys-file=k", "--demo", "--redis-mode=cluster"}, nil, "--redis-addrs (CONSENTD_REDIS_ADDRS): required"},
		{"bad cluster address", []string{"--keys-file=k", "--demo", "--redis-mode=cluster", "--redis-addrs=a:1,b"}, nil, `"b" is not host:port`},
		{"sentinel without a master", []string{"--keys-file=k", "--demo", "--redis-mode=sentinel", "--redis-addrs=a:1"}, nil, "--redis-master"},
		{"addresses in standalone mode", []string{"--keys-file=k", "--demo", "--redis-addrs=a:1"}, nil, "only with --redis-mode cluster or sentinel"},
		{"bad OTLP endpoint", []string{"--keys-file=k", "--demo", "--otlp-endpoint=collector"}, nil, "--otlp-endpoint"},
		{"bad sample ratio", []string{"--keys-file=k", "--demo", "--trace-sample-ratio=2"}, nil, "--trace-sample-ratio"},
		{"drain longer than shutdown", []string{"--keys-file=k", "--demo", "--drain-delay=20s"}, nil, "--drain-delay"},
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

func TestFlagsListsEverySettingWithItsVariable(t *testing.T) {
	flags := map[string]Flag{}
	for _, f := range Flags() {
		flags[f.Name] = f
	}
	for name, env := range map[string]string{"redis-url": "CONSENTD_REDIS_URL", "redis-mode": "CONSENTD_REDIS_MODE", "drain-delay": "CONSENTD_DRAIN_DELAY", "demo": "CONSENTD_DEMO"} {
		if flags[name].Env != env {
			t.Errorf("%s: %+v, want env %s", name, flags[name], env)
		}
	}
	if flags["http-addr"].Default != "127.0.0.1:8080" || len(flags) < 30 {
		t.Errorf("Flags() = %v", flags)
	}
}

func TestConsoleIsOnByDefaultAndCanBeTurnedOff(t *testing.T) {
	base := map[string]string{"CONSENTD_KEYS_FILE": "k", "CONSENTD_API_KEY": "0123456789abcdef0123456789abcdef"}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want bool
	}{
		{nil, nil, true},
		{[]string{"--console=false"}, nil, false},
		{nil, map[string]string{"CONSENTD_CONSOLE": "false"}, false},
		{[]string{"--console"}, map[string]string{"CONSENTD_CONSOLE": "false"}, true}, // the flag wins
	} {
		e := map[string]string{}
		for k, v := range base {
			e[k] = v
		}
		for k, v := range tc.env {
			e[k] = v
		}
		c, err := Load(tc.args, env(e), io.Discard)
		if err != nil || c.Console != tc.want {
			t.Errorf("%v %v: console=%v, %v; want %v", tc.args, tc.env, c.Console, err, tc.want)
		}
	}
	if _, err := Load(nil, env(map[string]string{"CONSENTD_KEYS_FILE": "k", "CONSENTD_API_KEY": base["CONSENTD_API_KEY"], "CONSENTD_CONSOLE": "maybe"}), io.Discard); err == nil || !strings.Contains(err.Error(), "CONSENTD_CONSOLE") {
		t.Errorf("CONSENTD_CONSOLE=maybe: %v", err)
	}
}

func TestStatsRetentionFromEnvironmentOrFlag(t *testing.T) {
	c, err := Load([]string{"--keys-file=k", "--demo"}, env(map[string]string{"CONSENTD_STATS_RETENTION": "720h"}), io.Discard)
	if err != nil || c.StatsRetention != 720*time.Hour {
		t.Fatalf("from the environment: %v, %v; want 720h", c.StatsRetention, err)
	}
	c, err = Load([]string{"--keys-file=k", "--demo", "--stats-retention=48h"}, env(map[string]string{"CONSENTD_STATS_RETENTION": "720h"}), io.Discard)
	if err != nil || c.StatsRetention != 48*time.Hour {
		t.Fatalf("flag over environment: %v, %v; want 48h", c.StatsRetention, err)
	}
}
