package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/auth"
	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/internal/eventually"
	"github.com/consentd/consentd/server/internal/redistest"
)

type consentd struct {
	app     *App
	grpc    consentv1.ConsentServiceClient
	conn    *grpc.ClientConn
	baseURL string
	logs    *syncBuffer
	stop    func() // cancels Run and waits for it; a failure fails the test
}

const testKeys = `hmac_keys:
  - id: h1
    secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=
encryption_keys:
  - id: e1
    secret: ZW5jcnlwdGlvbi1rZXktMzItYnl0ZXMtbG9uZy4uLi4=
token_keys:
  - id: t1
    secret: dG9rZW4tc2lnbmluZy1rZXktb2YtMzItYnl0ZXMuLi4=
`

// testConfig is a valid config on free ports with a fresh keys file.
func testConfig(t testing.TB, redisURL string) config.Config {
	t.Helper()
	keysFile := filepath.Join(t.TempDir(), "keys.yaml")
	if err := os.WriteFile(keysFile, []byte(testKeys), 0o600); err != nil {
		t.Fatal(err)
	}
	apiKeysFile := filepath.Join(t.TempDir(), "api-keys.yaml")
	if err := os.WriteFile(apiKeysFile, []byte(testAPIKeysFile()), 0o600); err != nil {
		t.Fatal(err)
	}
	return config.Config{
		RedisURL: redisURL, RedisTimeout: 500 * time.Millisecond,
		GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		KeysFile: keysFile, APIKeysFile: apiKeysFile, TokenTTL: time.Hour,
		LogFormat: "json", LogLevel: slog.LevelDebug, ShutdownTimeout: 10 * time.Second,
	}
}

// apiKeys are the test services' keys, by name; each holds the scope of its
// name, and "admin" holds every scope.
var apiKeys = map[string]string{
	"admin":  "key-admin-0123456789abcdefghijklmnopqrstuv",
	"check":  "key-check-0123456789abcdefghijklmnopqrstuv",
	"read":   "key-read-0123456789abcdefghijklmnopqrstuvw",
	"write":  "key-write-0123456789abcdefghijklmnopqrstuv",
	"watch":  "key-watch-0123456789abcdefghijklmnopqrstuv",
	"rights": "key-rights-0123456789abcdefghijklmnopqrstu",
	"token":  "key-token-0123456789abcdefghijklmnopqrstuv",
}

func testAPIKeysFile() string {
	var b strings.Builder
	b.WriteString("keys:\n")
	for _, name := range slices.Sorted(maps.Keys(apiKeys)) {
		fmt.Fprintf(&b, "  - name: %s\n    hash: %s\n    scopes: [%s]\n", name, auth.HashKey(apiKeys[name]), name)
	}
	return b.String()
}

type credentialsKey struct{}

// as makes the test's gRPC calls present credential ("" for none) instead of
// the admin key the test client sends by default.
func as(ctx context.Context, credential string) context.Context {
	return context.WithValue(ctx, credentialsKey{}, credential)
}

// withCredentials is the test client's interceptor: it sends the admin API
// key unless the call's context says otherwise.
func withCredentials(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return invoker(credentialed(ctx), method, req, reply, cc, opts...)
}

// withStreamCredentials is withCredentials for streaming calls.
func withStreamCredentials(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return streamer(credentialed(ctx), desc, cc, method, opts...)
}

func credentialed(ctx context.Context) context.Context {
	credential := apiKeys["admin"]
	if c, ok := ctx.Value(credentialsKey{}).(string); ok {
		credential = c
	}
	if credential != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+credential)
	}
	return ctx
}

// runInBackground runs a until the test ends or stop is called.
func runInBackground(t testing.TB, a *App) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("consentd stopped with: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func start(t *testing.T, redisURL string, tweak ...func(*config.Config)) *consentd {
	t.Helper()
	cfg := testConfig(t, redisURL)
	for _, f := range tweak {
		f(&cfg)
	}
	logs := &syncBuffer{}
	t.Cleanup(func() { assertCleanLogs(t, logs.String()) }) // after the stop below: cleanups run last first
	a, err := New(cfg, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	stop := runInBackground(t, a)
	conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(withCredentials), grpc.WithStreamInterceptor(withStreamCredentials))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &consentd{app: a, grpc: consentv1.NewConsentServiceClient(conn), conn: conn, baseURL: "http://" + a.HTTPAddr(), logs: logs, stop: stop}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// rest sends a JSON request and decodes the JSON answer into a map. It
// sends the admin API key unless the headers given set Authorization ("" for
// none).
func (c *consentd) rest(t *testing.T, method, path, body string, header ...string) (int, map[string]any, http.Header) {
	t.Helper()
	code, raw, h := c.restRaw(t, method, path, body, header...)
	var out map[string]any
	if len(raw) > 0 && strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: not JSON: %s", method, path, raw)
		}
	}
	return code, out, h
}

// restRaw is rest with the answer's body as it came.
func (c *consentd) restRaw(t *testing.T, method, path, body string, header ...string) (int, []byte, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.baseURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apiKeys["admin"])
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if req.Header.Get("Authorization") == "" {
		req.Header.Del("Authorization")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp.StatusCode, raw, resp.Header
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func purposeOf(t *testing.T, c *consentv1.Consent, id string) *consentv1.PurposeConsent {
	t.Helper()
	for _, p := range c.GetPurposes() {
		if p.GetPurpose() == id {
			return p
		}
	}
	t.Fatalf("purpose %q missing from %v", id, c)
	return nil
}

// jsonPath walks a decoded JSON value by dot-separated keys and indexes and
// formats the leaf, so tests can compare against one string.
func jsonPath(v any, path string) string {
	for _, key := range strings.Split(path, ".") {
		switch node := v.(type) {
		case map[string]any:
			v = node[key]
		case []any:
			i := 0
			for _, ch := range key {
				i = i*10 + int(ch-'0')
			}
			if i >= len(node) {
				return "<missing>"
			}
			v = node[i]
		default:
			return "<missing>"
		}
	}
	b, _ := json.Marshal(v)
	return strings.Trim(string(b), `"`)
}

func within(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// waitAsleep returns once Redis stops answering (DEBUG SLEEP has begun).
func waitAsleep(t *testing.T, redis *redistest.Server) {
	t.Helper()
	prober := goredis.NewClient(&goredis.Options{Addr: redis.Addr(), ReadTimeout: 20 * time.Millisecond, MaxRetries: -1})
	defer prober.Close()
	eventually.True(t, "Redis to be asleep", func() bool { return prober.Ping(context.Background()).Err() != nil })
}

func restCallContext(c context.Context, web *http.Client, srv *consentd, method, path, body string) (int, map[string]any, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(c, method, srv.baseURL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+apiKeys["admin"])
	resp, err := web.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	var out map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		_ = json.Unmarshal(raw, &out)
	}
	return resp.StatusCode, out, nil
}

// allEvents is the subject's whole history, oldest first, read as the
// subject (an operator's read would add an access event).
func allEvents(t *testing.T, srv *consentd, own context.Context, subject string) []*consentv1.ConsentEvent {
	t.Helper()
	var out []*consentv1.ConsentEvent
	token := ""
	for {
		page := must(srv.grpc.ListConsentEvents(own, &consentv1.ListConsentEventsRequest{SubjectId: subject, PageSize: 500, PageToken: token})).ok(t)
		out = append(out, page.GetEvents()...)
		if token = page.GetNextPageToken(); token == "" {
			break
		}
	}
	slices.Reverse(out) // newest first on the wire
	return out
}

// Each write sets every non-necessary purpose of a subject to one bit of the
// subject's write counter, so the state, and each history event, says which
// write it holds.
var counterPurposes = []string{"functional", "analytics", "ads", "marketing.email", "marketing.sms", "marketing.phone", "marketing.push", "marketing.in_app"}

const maxCounter = 1<<8 - 1 // what counterPurposes can hold

func decisionsFor(counter int) map[string]bool {
	out := map[string]bool{}
	for i, p := range counterPurposes {
		out[p] = counter>>i&1 == 1
	}
	return out
}

func counterOf(decisions map[string]bool) int {
	n := 0
	for i, p := range counterPurposes {
		if decisions[p] {
			n |= 1 << i
		}
	}
	return n
}

type ackedWrite struct {
	counter  int
	revision int64
	at       time.Time
}

// acksSince counts the writes acknowledged after at.
func acksSince(acks []ackedWrite, at time.Time) int {
	k := 0
	for _, a := range acks {
		if a.at.After(at) {
			k++
		}
	}
	return k
}
