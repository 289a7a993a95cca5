// Package config reads consentd's settings from flags and CONSENTD_*
// environment variables (a flag wins over its variable) and validates them
// once, at start, with errors that name the setting.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/ratelimit"
)

// Config is every setting, with its defaults applied.
type Config struct {
	RedisURL         string        // redis://[:password@]host:port/db (standalone mode)
	RedisTimeout     time.Duration // per Redis command or pipeline, all its waits together; a dead or stalled Redis fails calls after this, never hangs them
	RedisMode        string        // standalone, cluster or sentinel
	RedisAddrs       []string      // cluster: seed nodes; sentinel: the sentinels (host:port each)
	RedisMaster      string        // sentinel: the master's name
	RedisPassword    string        // from CONSENTD_REDIS_PASSWORD only (cluster and sentinel modes; standalone puts it in the URL)
	GRPCAddr         string        // the internal API's gRPC listener
	HTTPAddr         string        // the internal API's REST listener (and, unless split off, the public and admin endpoints)
	PublicAddr       string        // browsers' listener (HTTP, TLS without client certificates); "" serves their calls on HTTPAddr only
	AdminAddr        string        // operators' listener (plain HTTP): health, readiness, metrics, pprof with Pprof; "" serves them on HTTPAddr
	Pprof            bool          // serve Go's profiles at /debug/pprof/ on AdminAddr
	PolicyPath       string        // "" means the policy shipped in the binary (deploy/policy.yaml)
	GVLPath          string        // the IAB Global Vendor List (GVL v3 JSON) for the policy's iab.tcf; "" none
	KeysFile         string
	APIKeysFile      string // API keys with names and scopes
	APIKey           string // from CONSENTD_API_KEY only (never a flag: flags show in ps): one key with every scope
	Demo             bool   // no authentication: make run's demo; never in production
	DemoSite         string // demo mode: the sdk-js folder whose demo/ and dist/ are served at /demo/ and /sdk/
	Console          bool   // serve the privacy console at /console/ (on by default)
	TokenTTL         time.Duration
	CORSOrigins      []string        // site origins whose pages may call the REST API
	RateLimitIP      ratelimit.Limit // per client IP: browsers and public calls; zero: unlimited
	RateLimitKey     ratelimit.Limit // per API key; zero: unlimited
	TrustedProxyHops int             // proxies in front that append to X-Forwarded-For
	TLSCert          string          // PEM certificate (chain) for the internal and public listeners; "" serves plaintext
	TLSKey           string          // its PEM private key
	TLSClientCA      string          // PEM CA: when set, clients of the internal listeners must present a certificate it signed (mTLS)
	LogFormat        string          // json or text
	LogLevel         slog.Level
	ShutdownTimeout  time.Duration
	DrainDelay       time.Duration // on SIGTERM, /readyz fails this long before the listeners stop, so load balancers stop sending
	OTLPEndpoint     string        // OpenTelemetry traces go to this OTLP/gRPC collector (host:port); "" turns tracing off
	TraceSampleRatio float64       // the share of requests traced when tracing is on
	DebugAddr        string        // serves Go's pprof profiles here when set (keep it on loopback); "" turns it off

	// Retention, enforced by Redis TTLs and stream trimming.
	VisitorRetention time.Duration // anonymous visitors' records: deleted after this long without a write
	HistoryRetention time.Duration // a subject's history: deleted after this long without a write; 0: kept with the record
	FeedRetention    time.Duration // change-feed entries older than this are trimmed
	StatsRetention   time.Duration // a day's consent statistics (per partition) expire this long after their first count

	// The change feed.
	FeedPollInterval    time.Duration // how often an idle watch looks for new changes
	FeedMonitorInterval time.Duration // how often the consumer-lag metrics are refreshed
}

// EnvOnly are the settings that have no flag, because flags show in ps.
var EnvOnly = []string{"CONSENTD_API_KEY", "CONSENTD_REDIS_PASSWORD"}

// Flag is one of consentd's flags, for tools and tests that check
// deployment files against the real settings.
type Flag struct{ Name, Env, Default string }

// Flags lists every flag with its environment variable and default.
func Flags() []Flag {
	var out []Flag
	fs, _, _, _ := define("consentd", func(string) string { return "" }, io.Discard, nil)
	fs.VisitAll(func(f *flag.Flag) { out = append(out, Flag{Name: f.Name, Env: envName(f.Name), Default: f.DefValue}) })
	return out
}

// text holds the flags that are parsed as text and checked after parsing.
type text struct {
	logLevel, corsOrigins, rateIP, rateKey, hops, redisAddrs, sampleRatio string
}

// Load parses args (without the program name) and the environment. getenv
// is os.Getenv outside tests.
func Load(args []string, getenv func(string) string, usageOut io.Writer) (Config, error) {
	fs, c, t, err := define("consentd", getenv, usageOut, nil)
	if err != nil {
		return Config{}, err
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q: every setting is a --flag", fs.Arg(0))
	}
	c.CORSOrigins = commaList(t.corsOrigins)
	c.RedisAddrs = commaList(t.redisAddrs)
	var err2 error
	if c.RateLimitIP, err2 = ratelimit.ParseLimit(t.rateIP); err2 != nil {
		return Config{}, fmt.Errorf("--rate-limit-ip (CONSENTD_RATE_LIMIT_IP): %v", err2)
	}
	if c.RateLimitKey, err2 = ratelimit.ParseLimit(t.rateKey); err2 != nil {
		return Config{}, fmt.Errorf("--rate-limit-key (CONSENTD_RATE_LIMIT_KEY): %v", err2)
	}
	if c.TrustedProxyHops, err2 = strconv.Atoi(t.hops); err2 != nil || c.TrustedProxyHops < 0 || c.TrustedProxyHops > 10 {
		return Config{}, fmt.Errorf("--trusted-proxy-hops (CONSENTD_TRUSTED_PROXY_HOPS): %q is not a number from 0 to 10", t.hops)
	}
	if c.TraceSampleRatio, err2 = strconv.ParseFloat(t.sampleRatio, 64); err2 != nil || c.TraceSampleRatio < 0 || c.TraceSampleRatio > 1 {
		return Config{}, fmt.Errorf("--trace-sample-ratio (CONSENTD_TRACE_SAMPLE_RATIO): %q is not a number from 0 to 1", t.sampleRatio)
	}
	if err := c.LogLevel.UnmarshalText([]byte(t.logLevel)); err != nil {
		return Config{}, fmt.Errorf("--log-level (CONSENTD_LOG_LEVEL): %q is not one of debug, info, warn, error", t.logLevel)
	}
	return *c, c.validate()
}

// define registers the flags on a new FlagSet, each default taken from the
// flag's environment variable when that is set. only, when not nil, names
// the flags to register; the others' settings take their defaults (and
// variables) without a flag.
func define(name string, getenv func(string) string, usageOut io.Writer, only map[string]bool) (*flag.FlagSet, *Config, *text, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(usageOut)
	c, t := &Config{}, &text{}
	str := func(dst *string, name, def, usage string) {
		env := envName(name)
		if v := getenv(env); v != "" {
			def = v
		}
		if only != nil && !only[name] {
			*dst = def
			return
		}
		fs.StringVar(dst, name, def, usage+" (env "+env+")")
	}
	dur := func(dst *time.Duration, name string, def time.Duration, usage string) error {
		env := envName(name)
		if v := getenv(env); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%s: %q is not a duration like 500ms or 10s", env, v)
			}
			def = d
		}
		if only != nil && !only[name] {
			*dst = def
			return nil
		}
		fs.DurationVar(dst, name, def, usage+" (env "+env+")")
		return nil
	}
	str(&c.RedisURL, "redis-url", "redis://127.0.0.1:6379/0", "Redis to store consent in (standalone mode), redis://[:password@]host:port/db")
	str(&c.RedisMode, "redis-mode", "standalone", "standalone (--redis-url), cluster (--redis-addrs: seed nodes) or sentinel (--redis-addrs: sentinels, --redis-master)")
	str(&t.redisAddrs, "redis-addrs", "", "cluster: comma-separated seed nodes; sentinel: the sentinels (host:port each)")
	str(&c.RedisMaster, "redis-master", "", "sentinel mode: the name of the master the sentinels watch")
	str(&c.GRPCAddr, "grpc-addr", "127.0.0.1:9090", "address of the internal API's gRPC listener (every RPC, API keys; TLS and mTLS when set)")
	str(&c.HTTPAddr, "http-addr", "127.0.0.1:8080", "address of the internal API's REST listener (every RPC, OpenAPI, the console); also health, metrics and the public routes unless --admin-addr and --public-addr split them off")
	str(&c.PublicAddr, "public-addr", "", "address of the public listener for browsers (the SDK's calls with subject tokens, the policy, CORS; never API keys or client certificates), e.g. 0.0.0.0:8443; empty: served on --http-addr")
	str(&c.AdminAddr, "admin-addr", "", "address of the admin listener (plain HTTP, never client certificates): /healthz, /readyz, /metrics and, with --pprof, /debug/pprof/; empty: health and metrics on --http-addr")
	str(&c.PolicyPath, "policy", "", "policy file (purposes and regions); empty: the shipped deploy/policy.yaml")
	str(&c.GVLPath, "gvl", "", "the IAB Global Vendor List (vendor-list.json, GVL v3) the policy's iab.tcf needs; reloaded with the policy on SIGHUP")
	str(&c.KeysFile, "keys-file", "", "the operator's key file (HMAC key for Redis key names); required")
	str(&c.DemoSite, "demo-site", "", "demo mode only: the sdk-js folder; its demo/ is served at /demo/ and dist/ at /sdk/")
	str(&c.APIKeysFile, "api-keys-file", "", "API keys file: names, SHA-256 hashes and scopes of the services' keys")
	str(&t.corsOrigins, "cors-origins", "", "comma-separated site origins allowed to call the REST API from a browser, e.g. https://shop.example")
	str(&t.rateIP, "rate-limit-ip", "20/s", "calls per client IP from browsers and public endpoints, like 20/s or 600/m; 0: unlimited")
	str(&t.rateKey, "rate-limit-key", "0", "calls per API key, like 5000/s; 0: unlimited")
	str(&t.hops, "trusted-proxy-hops", "0", "proxies in front of consentd that append the client to X-Forwarded-For")
	str(&c.TLSCert, "tls-cert", "", "PEM certificate for TLS on the internal listeners and the public one; empty: plaintext")
	str(&c.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	str(&c.TLSClientCA, "tls-client-ca", "", "PEM CA certificate: require client certificates it signed (mutual TLS) on the internal listeners; never on --public-addr or --admin-addr")
	str(&c.LogFormat, "log-format", "json", "log format: json or text")
	str(&c.OTLPEndpoint, "otlp-endpoint", "", "send OpenTelemetry traces to this OTLP/gRPC collector (host:port); empty: tracing off")
	str(&c.DebugAddr, "debug-addr", "", "serve Go profiling (/debug/pprof/) on a listener of its own at this address, e.g. 127.0.0.1:6060 (or --pprof on --admin-addr); empty: off. Never expose it")
	str(&t.sampleRatio, "trace-sample-ratio", "0.1", "with --otlp-endpoint: the share of requests traced, 0 to 1")
	c.APIKey = getenv("CONSENTD_API_KEY")
	c.RedisPassword = getenv("CONSENTD_REDIS_PASSWORD")
	demoDefault, err := strconv.ParseBool(orDefault(getenv("CONSENTD_DEMO"), "false"))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("CONSENTD_DEMO: %q is not true or false", getenv("CONSENTD_DEMO"))
	}
	c.Demo = demoDefault
	if only == nil || only["demo"] {
		fs.BoolVar(&c.Demo, "demo", demoDefault, "demo mode: calls without credentials are allowed (make run only, never in production) (env CONSENTD_DEMO)")
	}
	consoleDefault, err := strconv.ParseBool(orDefault(getenv("CONSENTD_CONSOLE"), "true"))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("CONSENTD_CONSOLE: %q is not true or false", getenv("CONSENTD_CONSOLE"))
	}
	c.Console = consoleDefault
	if only == nil || only["console"] {
		fs.BoolVar(&c.Console, "console", consoleDefault, "serve the privacy console at /console/ (it needs an API key to do anything); --console=false turns it off (env CONSENTD_CONSOLE)")
	}
	pprofDefault, err := strconv.ParseBool(orDefault(getenv("CONSENTD_PPROF"), "false"))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("CONSENTD_PPROF: %q is not true or false", getenv("CONSENTD_PPROF"))
	}
	c.Pprof = pprofDefault
	if only == nil || only["pprof"] {
		fs.BoolVar(&c.Pprof, "pprof", pprofDefault, "serve Go profiling (/debug/pprof/) on --admin-addr (env CONSENTD_PPROF)")
	}
	str(&t.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	if err := errors.Join(
		dur(&c.RedisTimeout, "redis-timeout", time.Second, "how long one Redis command or pipeline may wait, for a connection and for the reply together, before the call fails with Unavailable (checks fail closed)"),
		dur(&c.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "how long in-flight requests may take to finish on SIGTERM"),
		dur(&c.DrainDelay, "drain-delay", 5*time.Second, "on SIGTERM, how long /readyz fails while still serving, so load balancers stop sending first"),
		dur(&c.TokenTTL, "token-ttl", 180*24*time.Hour, "how long a subject token lives (refreshable before it ends)"),
		dur(&c.VisitorRetention, "visitor-retention", 396*24*time.Hour, "anonymous visitors' records (state and history) are deleted after this long without a write (default 13 months)"),
		dur(&c.HistoryRetention, "history-retention", 0, "a subject's history is deleted after this long without a write; 0: kept as long as the record"),
		dur(&c.FeedRetention, "feed-retention", 35*24*time.Hour, "change-feed entries older than this are trimmed, acknowledged or not (a metric counts those a consumer lost)"),
		dur(&c.StatsRetention, "stats-retention", 400*24*time.Hour, "a day's consent statistics (aggregate counts, no subject ids) expire this long after the day's first count (default 400 days)"),
		dur(&c.FeedPollInterval, "feed-poll-interval", 250*time.Millisecond, "how often a change-feed watch looks for new changes while idle"),
		dur(&c.FeedMonitorInterval, "feed-monitor-interval", 30*time.Second, "how often the change-feed consumer lag metrics are refreshed"),
	); err != nil {
		return nil, nil, nil, err
	}
	return fs, c, t, nil
}

func commaList(v string) []string {
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func envName(flagName string) string {
	return "CONSENTD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func (c Config) validate() error {
	errs := []error{c.validateStore()}
	errs = append(errs, c.validateListeners()...)
	if !c.Demo && c.APIKeysFile == "" && c.APIKey == "" {
		errs = append(errs, errors.New("--api-keys-file (CONSENTD_API_KEYS_FILE) or CONSENTD_API_KEY: one is required, so that services can authenticate (or --demo for a local demo without authentication)"))
	}
	if c.DemoSite != "" && !c.Demo {
		errs = append(errs, errors.New("--demo-site (CONSENTD_DEMO_SITE): only with --demo"))
	} else if c.DemoSite != "" {
		if st, err := os.Stat(filepath.Join(c.DemoSite, "demo")); err != nil || !st.IsDir() {
			errs = append(errs, fmt.Errorf("--demo-site (CONSENTD_DEMO_SITE): %s has no demo/ folder; give the sdk-js folder", c.DemoSite))
		}
	}
	if c.APIKeysFile != "" && c.APIKey != "" {
		errs = append(errs, errors.New("--api-keys-file and CONSENTD_API_KEY: set one, not both"))
	}
	for _, o := range c.CORSOrigins {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" || u.RawQuery != "" {
			errs = append(errs, fmt.Errorf("--cors-origins (CONSENTD_CORS_ORIGINS): %q is not an origin like https://shop.example", o))
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key (CONSENTD_TLS_CERT, CONSENTD_TLS_KEY): set both or neither"))
	}
	if c.TLSClientCA != "" && c.TLSCert == "" {
		errs = append(errs, errors.New("--tls-client-ca (CONSENTD_TLS_CLIENT_CA): needs --tls-cert and --tls-key: mutual TLS is TLS first"))
	}
	if c.TokenTTL <= 0 {
		errs = append(errs, fmt.Errorf("--token-ttl (CONSENTD_TOKEN_TTL): must be positive, got %s", c.TokenTTL))
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		errs = append(errs, fmt.Errorf("--log-format (CONSENTD_LOG_FORMAT): %q is not json or text", c.LogFormat))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--shutdown-timeout (CONSENTD_SHUTDOWN_TIMEOUT): must be positive, got %s", c.ShutdownTimeout))
	}
	if c.OTLPEndpoint != "" {
		if _, _, err := net.SplitHostPort(c.OTLPEndpoint); err != nil {
			errs = append(errs, fmt.Errorf("--otlp-endpoint (CONSENTD_OTLP_ENDPOINT): %q is not host:port", c.OTLPEndpoint))
		}
	}
	if c.DrainDelay < 0 || c.DrainDelay >= c.ShutdownTimeout {
		errs = append(errs, fmt.Errorf("--drain-delay (CONSENTD_DRAIN_DELAY): must be 0 or more and shorter than --shutdown-timeout (%s), got %s", c.ShutdownTimeout, c.DrainDelay))
	}
	errs = append(errs, tooShort(
		minDuration{"feed-poll-interval", c.FeedPollInterval, false, time.Millisecond},
		minDuration{"feed-monitor-interval", c.FeedMonitorInterval, false, 10 * time.Millisecond},
	)...)
	return errors.Join(errs...)
}

// validateListeners checks the listeners' addresses: each host:port, and
// no two the same. The optional ones (public, admin, debug) are off when
// empty.
func (c Config) validateListeners() []error {
	var errs []error
	type listener struct{ name, value, example string }
	all := []listener{
		{"grpc-addr", c.GRPCAddr, "127.0.0.1:9090"}, {"http-addr", c.HTTPAddr, "127.0.0.1:8080"},
		{"public-addr", c.PublicAddr, "0.0.0.0:8443"}, {"admin-addr", c.AdminAddr, "0.0.0.0:8081"},
		{"debug-addr", c.DebugAddr, "127.0.0.1:6060"},
	}
	seen := map[string]string{}
	for i, l := range all {
		if l.value == "" && i >= 2 {
			continue
		}
		if _, _, err := net.SplitHostPort(l.value); err != nil {
			errs = append(errs, fmt.Errorf("--%s (%s): %q is not host:port, e.g. %s", l.name, envName(l.name), l.value, l.example))
			continue
		}
		// Port 0 (the kernel picks one) cannot clash.
		if _, port, _ := net.SplitHostPort(l.value); port == "0" {
			continue
		}
		if other, ok := seen[l.value]; ok {
			errs = append(errs, fmt.Errorf("--%s and --%s: both are %q; they need different ports", other, l.name, l.value))
			continue
		}
		seen[l.value] = l.name
	}
	if c.Pprof && c.AdminAddr == "" {
		errs = append(errs, errors.New("--pprof (CONSENTD_PPROF): needs --admin-addr, where the profiles are served (or --debug-addr, a listener of its own)"))
	}
	return errs
}

// storeFlags are the settings a command working on the store directly
// (LoadTool) takes: where Redis is, the keys, and the retention the store
// applies.
var storeFlags = map[string]bool{
	"redis-url": true, "redis-mode": true, "redis-addrs": true, "redis-master": true, "redis-timeout": true,
	"keys-file": true, "visitor-retention": true, "history-retention": true, "feed-retention": true,
}

// LoadTool parses the arguments of a consentd subcommand that works on the
// store directly (`consentd verify`, `consentd rekey`): the store's settings
// (storeFlags), from flags and CONSENTD_* variables as for the server, so a
// command run in the server's environment finds the same Redis and keys;
// and the command's own flags, which extra registers. The other settings
// keep their defaults. Arguments that are not flags are refused.
func LoadTool(name string, args []string, getenv func(string) string, usageOut io.Writer, extra func(*flag.FlagSet)) (Config, error) {
	fs, c, t, err := define("consentd "+name, getenv, usageOut, storeFlags)
	if err != nil {
		return Config{}, err
	}
	extra(fs)
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q: every setting is a --flag", fs.Arg(0))
	}
	c.RedisAddrs = commaList(t.redisAddrs)
	return *c, c.validateStore()
}

// validateStore checks the settings the store needs.
func (c Config) validateStore() error {
	var errs []error
	if _, err := redis.ParseURL(c.RedisURL); err != nil {
		errs = append(errs, fmt.Errorf("--redis-url (CONSENTD_REDIS_URL): %v; want redis://host:port/db", err))
	}
	if c.KeysFile == "" {
		errs = append(errs, errors.New("--keys-file (CONSENTD_KEYS_FILE): required: the operator's HMAC key for Redis key names (see README, Configuration)"))
	}
	if c.RedisTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--redis-timeout (CONSENTD_REDIS_TIMEOUT): must be positive, got %s", c.RedisTimeout))
	}
	switch c.RedisMode {
	case "standalone":
		if len(c.RedisAddrs) > 0 || c.RedisMaster != "" {
			errs = append(errs, errors.New("--redis-addrs and --redis-master (CONSENTD_REDIS_ADDRS, CONSENTD_REDIS_MASTER): only with --redis-mode cluster or sentinel"))
		}
	case "cluster", "sentinel":
		if len(c.RedisAddrs) == 0 {
			errs = append(errs, fmt.Errorf("--redis-addrs (CONSENTD_REDIS_ADDRS): required with --redis-mode %s", c.RedisMode))
		}
		for _, addr := range c.RedisAddrs {
			if _, _, err := net.SplitHostPort(addr); err != nil {
				errs = append(errs, fmt.Errorf("--redis-addrs (CONSENTD_REDIS_ADDRS): %q is not host:port", addr))
			}
		}
		if (c.RedisMode == "sentinel") != (c.RedisMaster != "") {
			errs = append(errs, errors.New("--redis-master (CONSENTD_REDIS_MASTER): required with --redis-mode sentinel, and only then"))
		}
	default:
		errs = append(errs, fmt.Errorf("--redis-mode (CONSENTD_REDIS_MODE): %q is not standalone, cluster or sentinel", c.RedisMode))
	}
	errs = append(errs, tooShort(
		minDuration{"visitor-retention", c.VisitorRetention, false, time.Hour},
		minDuration{"history-retention", c.HistoryRetention, true, time.Hour},
		minDuration{"feed-retention", c.FeedRetention, false, time.Hour},
		minDuration{"stats-retention", c.StatsRetention, false, 24 * time.Hour},
	)...)
	return errors.Join(errs...)
}

// minDuration is a duration setting and the least it may be.
type minDuration struct {
	name     string // the flag's, without the dashes
	value    time.Duration
	zeroOK   bool // 0 is allowed too, as a setting's way to turn itself off
	smallest time.Duration
}

// tooShort are the errors of the settings below their least.
func tooShort(settings ...minDuration) []error {
	var errs []error
	for _, d := range settings {
		if d.zeroOK && d.value == 0 {
			continue
		}
		if d.value < d.smallest {
			errs = append(errs, fmt.Errorf("--%s (%s): must be at least %s, got %s", d.name, envName(d.name), d.smallest, d.value))
		}
	}
	return errs
}
