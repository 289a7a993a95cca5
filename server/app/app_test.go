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
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/auth"
	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/internal/eventually"
	"github.com/consentd/consentd/server/internal/redistest"
)

// These tests run the whole consentd, as main does, against a real
// redis-server, and talk to it over both gRPC and REST.

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

func testLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

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

func TestEveryRPCOverGRPC(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	c := srv.grpc

	policy, err := c.GetPolicy(ctx(t), &consentv1.GetPolicyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(policy.GetPolicy().GetPurposes()) == 0 || policy.GetPolicy().GetPurposes()[0].GetId() != "necessary" {
		t.Fatalf("policy = %v", policy)
	}

	got, err := c.GetConsent(ctx(t), &consentv1.GetConsentRequest{SubjectId: "user-1", Region: "DE"})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetConsent().GetRevision() != 0 || purposeOf(t, got.GetConsent(), "analytics").GetAllowed() {
		t.Fatalf("a new subject in an opt-in region has revision 0 and analytics denied, got %v", got)
	}

	up, err := c.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{
		SubjectId: "user-1", Region: "DE", Source: consentv1.Source_SOURCE_BANNER,
		Decisions: map[string]bool{"analytics": true, "ads": false},
	})
	if err != nil {
		t.Fatal(err)
	}
	a := purposeOf(t, up.GetConsent(), "analytics")
	if up.GetConsent().GetRevision() != 1 || !a.GetAllowed() || a.GetReason() != consentv1.Reason_REASON_EXPLICIT ||
		a.GetDecision().GetSource() != consentv1.Source_SOURCE_BANNER {
		t.Fatalf("after granting analytics: %v", up)
	}

	check, err := c.CheckConsent(ctx(t), &consentv1.CheckConsentRequest{SubjectId: "user-1", Purpose: "analytics", MinRevision: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !check.GetAllowed() || check.GetReason() != consentv1.Reason_REASON_EXPLICIT || check.GetRevision() != 1 {
		t.Fatalf("check = %v", check)
	}

	batch, err := c.BatchCheckConsent(ctx(t), &consentv1.BatchCheckConsentRequest{Checks: []*consentv1.ConsentCheck{
		{SubjectId: "user-1", Purpose: "analytics"},
		{SubjectId: "user-1", Purpose: "ads"},
		{SubjectId: "nobody", Purpose: "necessary"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := []bool{true, false, true}
	for i, r := range batch.GetResults() {
		if r.GetAllowed() != want[i] {
			t.Errorf("batch result %d = %v, want allowed=%v", i, r, want[i])
		}
	}

	wd, err := c.WithdrawConsent(ctx(t), &consentv1.WithdrawConsentRequest{SubjectId: "user-1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range wd.GetConsent().GetPurposes() {
		if p.GetPurpose() != "necessary" && p.GetAllowed() {
			t.Errorf("after withdrawing everything, %s is still allowed", p.GetPurpose())
		}
	}

	events, err := c.ListConsentEvents(ctx(t), &consentv1.ListConsentEventsRequest{SubjectId: "user-1", Reason: "test", PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(events.GetEvents()) != 1 || events.GetEvents()[0].GetType() != consentv1.EventType_EVENT_TYPE_WITHDRAW ||
		events.GetEvents()[0].GetChannel() != "grpc" || events.GetNextPageToken() == "" {
		t.Fatalf("newest event page = %v", events)
	}
	older, err := c.ListConsentEvents(ctx(t), &consentv1.ListConsentEventsRequest{SubjectId: "user-1", Reason: "test", PageToken: events.GetNextPageToken()})
	if err != nil {
		t.Fatal(err)
	}
	if len(older.GetEvents()) != 1 || older.GetEvents()[0].GetRevision() != 1 || older.GetNextPageToken() != "" {
		t.Fatalf("older page = %v", older)
	}
	if older.GetEvents()[0].GetHash() != events.GetEvents()[0].GetPrevHash() {
		t.Errorf("events are not chained: %q != %q", older.GetEvents()[0].GetHash(), events.GetEvents()[0].GetPrevHash())
	}

	// Load balancers and Kubernetes' gRPC probes ask by the service's name.
	for _, name := range []string{"", "consent.v1.ConsentService"} {
		health, err := healthpb.NewHealthClient(srv.conn).Check(ctx(t), &healthpb.HealthCheckRequest{Service: name})
		if err != nil || health.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("gRPC health of %q = %v, %v", name, health, err)
		}
	}
}

func TestEveryRPCOverREST(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())

	code, body, _ := srv.rest(t, "GET", "/v1/policy", "")
	if code != 200 || body["policy"] == nil {
		t.Fatalf("GET /v1/policy = %d %v", code, body)
	}

	code, body, _ = srv.rest(t, "PATCH", "/v1/subjects/visitor-9/consent",
		`{"decisions": {"analytics": true, "marketing.email": false}, "region": "FR", "source": "SOURCE_BANNER"}`)
	if code != 200 || jsonPath(body, "consent.revision") != "1" {
		t.Fatalf("PATCH consent = %d %v", code, body)
	}

	code, body, _ = srv.rest(t, "GET", "/v1/subjects/visitor-9/consent", "")
	if code != 200 || jsonPath(body, "consent.region") != "FR" || jsonPath(body, "consent.region_id") != "eea" {
		t.Fatalf("GET consent = %d %v", code, body)
	}

	code, body, _ = srv.rest(t, "GET", "/v1/subjects/visitor-9/purposes/analytics:check", "")
	if code != 200 || body["allowed"] != true || body["reason"] != "REASON_EXPLICIT" || body["revision"] != "1" {
		t.Fatalf("check analytics = %d %v", code, body)
	}
	code, body, _ = srv.rest(t, "GET", "/v1/subjects/visitor-9/purposes/marketing.email:check?min_revision=1", "")
	if code != 200 || body["allowed"] != false || body["reason"] != "REASON_EXPLICIT" {
		t.Fatalf("check marketing.email = %d %v (a denial must show allowed: false)", code, body)
	}

	code, body, _ = srv.rest(t, "POST", "/v1/consent:batchCheck",
		`{"checks": [{"subject_id": "visitor-9", "purpose": "analytics"}, {"subject_id": "other", "purpose": "analytics", "region": "DE"}]}`)
	if code != 200 || jsonPath(body, "results.0.allowed") != "true" || jsonPath(body, "results.1.allowed") != "false" {
		t.Fatalf("batch check = %d %v", code, body)
	}

	code, body, _ = srv.rest(t, "POST", "/v1/subjects/visitor-9/consent:withdraw", `{"purposes": ["analytics"]}`)
	if code != 200 || jsonPath(body, "consent.revision") != "2" {
		t.Fatalf("withdraw = %d %v", code, body)
	}

	code, body, _ = srv.rest(t, "GET", "/v1/subjects/visitor-9/events?reason=test", "")
	if code != 200 || jsonPath(body, "events.0.type") != "EVENT_TYPE_WITHDRAW" || jsonPath(body, "events.0.channel") != "rest" ||
		jsonPath(body, "events.1.changes.0.purpose") != "analytics" {
		t.Fatalf("events = %d %v", code, body)
	}
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

func TestBadInputGetsAClearErrorAndChangesNothing(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	const subject = "alice@example.com"
	if _, err := srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{
		SubjectId: subject, Decisions: map[string]bool{"analytics": true}, IdempotencyKey: "first-write",
	}); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, srv, subject)

	rev := func(n int64) *int64 { return &n }
	grpcCases := []struct {
		name  string
		call  func() error
		code  codes.Code
		field string
	}{
		{"bad subject id", func() error {
			_, err := srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: "has space", Decisions: map[string]bool{"analytics": false}})
			return err
		}, codes.InvalidArgument, "subject_id"},
		{"subject id too long", func() error {
			_, err := srv.grpc.CheckConsent(ctx(t), &consentv1.CheckConsentRequest{SubjectId: strings.Repeat("a", 129), Purpose: "analytics"})
			return err
		}, codes.InvalidArgument, "subject_id"},
		{"unknown purpose", func() error {
			_, err := srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: subject, Decisions: map[string]bool{"analytics": false, "telepathy": true}})
			return err
		}, codes.InvalidArgument, `decisions["telepathy"]`},
		{"unknown purpose in a check", func() error {
			_, err := srv.grpc.CheckConsent(ctx(t), &consentv1.CheckConsentRequest{SubjectId: subject, Purpose: "telepathy"})
			return err
		}, codes.InvalidArgument, "purpose"},
		{"denying necessary", func() error {
			_, err := srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: subject, Decisions: map[string]bool{"analytics": false, "necessary": false}})
			return err
		}, codes.InvalidArgument, `decisions["necessary"]`},
		{"withdrawing necessary", func() error {
			_, err := srv.grpc.WithdrawConsent(ctx(t), &consentv1.WithdrawConsentRequest{SubjectId: subject, Purposes: []string{"analytics", "necessary"}})
			return err
		}, codes.InvalidArgument, "purposes[1]"},
		{"no decisions", func() error {
			_, err := srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: subject})
			return err
		}, codes.InvalidArgument, "decisions"},
		{"oversized batch", func() error {
			checks := make([]*consentv1.ConsentCheck, 1001)
			for i := range checks {
				checks[i] = &consentv1.ConsentCheck{SubjectId: subject, Purpose: "analytics"}
			}
			_, err := srv.grpc.BatchCheckConsent(ctx(t), &consentv1.BatchCheckConsentRequest{Checks: checks})
			return err
		}, codes.InvalidArgument, "checks"},
		{"bad check inside a batch", func() error {
			_, err := srv.grpc.BatchCheckConsent(ctx(t), &consentv1.BatchCheckConsentRequest{Checks: []*consentv1.ConsentCheck{
				{SubjectId: subject, Purpose: "analytics"}, {SubjectId: subject, Purpose: "nope"}}})
			return err
		}, codes.InvalidArgument, "checks[1].purpose"},
		{"wrong expected revision", func() error {
			_, err := srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: subject, Decisions: map[string]bool{"analytics": false}, ExpectedRevision: rev(7)})
			return err
		}, codes.Aborted, "expected_revision"},
		{"negative expected revision", func() error {
			_, err := srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: subject, Decisions: map[string]bool{"analytics": false}, ExpectedRevision: rev(-1)})
			return err
		}, codes.InvalidArgument, "expected_revision"},
		{"min revision not reached", func() error {
			_, err := srv.grpc.CheckConsent(ctx(t), &consentv1.CheckConsentRequest{SubjectId: subject, Purpose: "analytics", MinRevision: 99})
			return err
		}, codes.FailedPrecondition, "min_revision"},
		{"bad region code", func() error {
			_, err := srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: subject, Decisions: map[string]bool{"analytics": false}, Region: "Germany"})
			return err
		}, codes.InvalidArgument, "region"},
		{"unknown source", func() error {
			_, err := srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: subject, Decisions: map[string]bool{"analytics": false}, Source: 42})
			return err
		}, codes.InvalidArgument, "source"},
		{"idempotency key reused for another request", func() error {
			_, err := srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: subject, Decisions: map[string]bool{"analytics": false}, IdempotencyKey: "first-write"})
			return err
		}, codes.InvalidArgument, "idempotency_key"},
		{"bad idempotency key", func() error {
			_, err := srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: subject, Decisions: map[string]bool{"analytics": false}, IdempotencyKey: "with space"})
			return err
		}, codes.InvalidArgument, "idempotency_key"},
		{"page size too big", func() error {
			_, err := srv.grpc.ListConsentEvents(ctx(t), &consentv1.ListConsentEventsRequest{SubjectId: subject, Reason: "test", PageSize: 501})
			return err
		}, codes.InvalidArgument, "page_size"},
		{"forged page token", func() error {
			_, err := srv.grpc.ListConsentEvents(ctx(t), &consentv1.ListConsentEventsRequest{SubjectId: subject, Reason: "test", PageToken: "garbage"})
			return err
		}, codes.InvalidArgument, "page_token"},
	}
	for _, tc := range grpcCases {
		t.Run("gRPC "+tc.name, func(t *testing.T) {
			err := tc.call()
			st := status.Convert(err)
			if st.Code() != tc.code || !strings.Contains(st.Message(), tc.field) {
				t.Fatalf("got %v %q, want %v naming %q", st.Code(), st.Message(), tc.code, tc.field)
			}
			if after := snapshot(t, srv, subject); !proto.Equal(before, after) {
				t.Fatalf("stored data changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}

	restCases := []struct {
		name, method, path, body string
		status                   int
		field                    string
	}{
		{"malformed JSON", "PATCH", "/v1/subjects/" + subject + "/consent", `{"decisions": {"analytics": tru`, 400, "body"},
		{"wrong JSON type", "PATCH", "/v1/subjects/" + subject + "/consent", `{"decisions": {"analytics": "yes"}}`, 400, "decisions.analytics: must be true or false"},
		{"unknown JSON field", "PATCH", "/v1/subjects/" + subject + "/consent", `{"decisionz": {"analytics": false}}`, 400, "decisionz: unknown field"},
		{"bad subject id in the path", "GET", "/v1/subjects/bad%20id/consent", "", 400, "subject_id"},
		{"unknown purpose in the path", "GET", "/v1/subjects/" + subject + "/purposes/telepathy:check", "", 400, "purpose"},
		{"denying necessary", "PATCH", "/v1/subjects/" + subject + "/consent", `{"decisions": {"necessary": false}}`, 400, `decisions[\"necessary\"]`},
		{"wrong expected revision", "PATCH", "/v1/subjects/" + subject + "/consent", `{"decisions": {"analytics": false}, "expected_revision": 5}`, 409, "expected_revision"},
		{"min revision not reached", "GET", "/v1/subjects/" + subject + "/consent?min_revision=50", "", 412, "min_revision"},
		{"not a number", "GET", "/v1/subjects/" + subject + "/consent?min_revision=soon", "", 400, "min_revision"},
		{"empty batch", "POST", "/v1/consent:batchCheck", `{"checks": []}`, 400, "checks"},
		{"wrong method", "POST", "/v1/subjects/" + subject + "/consent", `{"decisions": {"analytics": false}}`, 405, "method: POST is not allowed"},
		{"unknown path", "GET", "/v1/subjects/" + subject + "/consents", "", 404, "path: no such path"},
	}
	for _, tc := range restCases {
		t.Run("REST "+tc.name, func(t *testing.T) {
			code, body, _ := srv.rest(t, tc.method, tc.path, tc.body)
			msg, _ := body["message"].(string)
			raw, _ := json.Marshal(body)
			if code != tc.status || !strings.Contains(string(raw), tc.field) || msg == "" {
				t.Fatalf("got %d %s, want %d naming %q", code, raw, tc.status, tc.field)
			}
			if after := snapshot(t, srv, subject); !proto.Equal(before, after) {
				t.Fatalf("stored data changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}

// snapshot is everything stored about a subject: consent and full history.
func snapshot(t *testing.T, srv *consentd, subject string) *consentv1.ListConsentEventsResponse {
	t.Helper()
	// As the subject: an operator's read would itself add an access event.
	own := as(ctx(t), tokenFor(t, subject, time.Now(), time.Hour))
	consent, err := srv.grpc.GetConsent(own, &consentv1.GetConsentRequest{SubjectId: subject})
	if err != nil {
		t.Fatal(err)
	}
	events, err := srv.grpc.ListConsentEvents(own, &consentv1.ListConsentEventsRequest{SubjectId: subject, PageSize: 500})
	if err != nil {
		t.Fatal(err)
	}
	// Fold the consent into the response so one proto.Equal compares both.
	events.NextPageToken = consent.String()
	return events
}

func TestConcurrentWritersLoseNoUpdate(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	const writers, writes = 8, 15
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range writes {
				if _, err := srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{
					SubjectId: "busy", Decisions: map[string]bool{"analytics": (w+i)%2 == 0},
				}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got, err := srv.grpc.GetConsent(ctx(t), &consentv1.GetConsentRequest{SubjectId: "busy"})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetConsent().GetRevision() != writers*writes {
		t.Fatalf("revision = %d after %d writes", got.GetConsent().GetRevision(), writers*writes)
	}
	events, err := srv.grpc.ListConsentEvents(ctx(t), &consentv1.ListConsentEventsRequest{SubjectId: "busy", Reason: "test", PageSize: 500})
	if err != nil {
		t.Fatal(err)
	}
	if len(events.GetEvents()) != writers*writes {
		t.Fatalf("%d events after %d writes", len(events.GetEvents()), writers*writes)
	}
}

func TestRetriedIdempotentWriteAppliesOnce(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	req := &consentv1.UpdateConsentRequest{SubjectId: "retry", Decisions: map[string]bool{"ads": true}, IdempotencyKey: "order-77"}
	first, err := srv.grpc.UpdateConsent(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	// Over REST too, with the same key and the same request.
	code, body, _ := srv.rest(t, "PATCH", "/v1/subjects/retry/consent", `{"decisions": {"ads": true}, "idempotency_key": "order-77"}`)
	if code != 200 || jsonPath(body, "consent.revision") != "1" {
		t.Fatalf("REST retry = %d %v", code, body)
	}
	second, err := srv.grpc.UpdateConsent(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(first, second) {
		t.Fatalf("a retry returned another result:\n%v\n%v", first, second)
	}
	events, _ := srv.grpc.ListConsentEvents(ctx(t), &consentv1.ListConsentEventsRequest{SubjectId: "retry", Reason: "test"})
	if len(events.GetEvents()) != 1 {
		t.Fatalf("%d events after one write retried twice", len(events.GetEvents()))
	}
}

func TestSecGPCHeaderOptsOutOfGPCPurposesInOptOutRegions(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	// Only the exact value "1" is a GPC signal.
	for _, v := range []string{"0", "true", "yes", "11"} {
		code, body, _ := srv.rest(t, "PATCH", "/v1/subjects/no-signal/consent", `{"decisions": {"analytics": true}, "region": "US-CA"}`, "Sec-GPC", v)
		if code != 200 || jsonPath(body, "consent.gpc_time") != "null" {
			t.Fatalf("Sec-GPC %q: %d %v", v, code, body)
		}
	}
	code, body, _ := srv.rest(t, "PATCH", "/v1/subjects/gpc-visitor/consent", `{"decisions": {"analytics": true}, "region": "US-CA"}`, "Sec-GPC", "1")
	if code != 200 {
		t.Fatalf("PATCH with Sec-GPC: %d %v", code, body)
	}
	check, err := srv.grpc.CheckConsent(ctx(t), &consentv1.CheckConsentRequest{SubjectId: "gpc-visitor", Purpose: "ads"})
	if err != nil {
		t.Fatal(err)
	}
	if check.GetAllowed() || check.GetReason() != consentv1.Reason_REASON_GPC {
		t.Fatalf("ads under GPC in California = %v, want denied for GPC", check)
	}
	events, _ := srv.grpc.ListConsentEvents(ctx(t), &consentv1.ListConsentEventsRequest{SubjectId: "gpc-visitor", Reason: "test"})
	if !events.GetEvents()[0].GetGpc() {
		t.Errorf("the event does not record the GPC signal: %v", events.GetEvents()[0])
	}
	// A browser may report its signal before choosing anything: the write
	// records the signal alone.
	code, body, _ = srv.rest(t, "PATCH", "/v1/subjects/quiet-visitor/consent", `{"decisions": {}, "gpc": true, "region": "US-CO"}`)
	if code != 200 || jsonPath(body, "consent.revision") != "1" || jsonPath(body, "consent.gpc_time") == "null" {
		t.Fatalf("a GPC-only write: %d %v", code, body)
	}
	if code, body, _ = srv.rest(t, "PATCH", "/v1/subjects/quiet-visitor/consent", `{"decisions": {}}`); code != 400 || !strings.Contains(jsonPath(body, "message"), "decisions") {
		t.Fatalf("an empty write without GPC: %d %v, want 400 naming decisions", code, body)
	}

	// An explicit later choice by the person wins.
	if _, err := srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: "gpc-visitor", Decisions: map[string]bool{"ads": true}, Gpc: true}); err != nil {
		t.Fatal(err)
	}
	check, _ = srv.grpc.CheckConsent(ctx(t), &consentv1.CheckConsentRequest{SubjectId: "gpc-visitor", Purpose: "ads"})
	if !check.GetAllowed() || check.GetReason() != consentv1.Reason_REASON_EXPLICIT {
		t.Fatalf("ads after an explicit grant = %v", check)
	}
}

func TestRedisDownFailsWritesAndChecksFailClosedThenTheServiceRecovers(t *testing.T) {
	redis := redistest.Start(t)
	srv := start(t, redis.URL())
	if _, err := srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: "s", Decisions: map[string]bool{"analytics": true}}); err != nil {
		t.Fatal(err)
	}

	redis.Stop()
	// Checks still answer, failing closed: denied, store unavailable, no
	// revision read; necessary stays allowed.
	for purpose, want := range map[string]consentv1.Reason{"analytics": consentv1.Reason_REASON_STORE_UNAVAILABLE, "necessary": consentv1.Reason_REASON_NECESSARY} {
		check, err := srv.grpc.CheckConsent(ctx(t), &consentv1.CheckConsentRequest{SubjectId: "s", Purpose: purpose})
		if err != nil || check.GetReason() != want || check.GetAllowed() != (purpose == "necessary") || check.GetRevision() != 0 {
			t.Fatalf("check of %s with Redis down: %v, %v; want fail-closed %v", purpose, check, err, want)
		}
	}
	batch, err := srv.grpc.BatchCheckConsent(ctx(t), &consentv1.BatchCheckConsentRequest{Checks: []*consentv1.ConsentCheck{{SubjectId: "s", Purpose: "ads"}}})
	if err != nil || batch.GetResults()[0].GetAllowed() || batch.GetResults()[0].GetReason() != consentv1.Reason_REASON_STORE_UNAVAILABLE {
		t.Fatalf("batch check with Redis down: %v, %v", batch, err)
	}
	if code, body, _ := srv.rest(t, "GET", "/v1/subjects/s/purposes/analytics:check", ""); code != 200 || jsonPath(body, "reason") != "REASON_STORE_UNAVAILABLE" {
		t.Fatalf("REST check with Redis down = %d %v", code, body)
	}
	// Writes and reads of the record fail: the caller must retry.
	_, err = srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: "s", Decisions: map[string]bool{"analytics": false}})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("update with Redis down: %v, want Unavailable", err)
	}
	if code, _, _ := srv.rest(t, "GET", "/v1/subjects/s/consent", ""); code != 503 {
		t.Fatalf("REST read with Redis down = %d, want 503", code)
	}
	if _, err := srv.grpc.FilterSubjects(ctx(t), &consentv1.FilterSubjectsRequest{Purpose: "ads", SubjectIds: []string{"s"}}); status.Code(err) != codes.Unavailable {
		t.Fatalf("filter with Redis down: %v, want Unavailable (an empty list would look like opt-outs)", err)
	}
	if code, _, _ := srv.rest(t, "GET", "/readyz", ""); code != 503 {
		t.Fatalf("/readyz with Redis down = %d, want 503", code)
	}
	if code, _, _ := srv.rest(t, "GET", "/healthz", ""); code != 200 {
		t.Fatalf("/healthz with Redis down = %d, want 200 (the process is alive)", code)
	}

	redis.Restart() // no persistence in tests: the data is gone, the service is back
	check, err := srv.grpc.CheckConsent(ctx(t), &consentv1.CheckConsentRequest{SubjectId: "s", Purpose: "analytics"})
	if err != nil {
		t.Fatalf("check after Redis returned: %v", err)
	}
	if check.GetRevision() != 0 || check.GetReason() == consentv1.Reason_REASON_STORE_UNAVAILABLE {
		t.Fatalf("check after restart = %v", check)
	}
	if code, _, _ := srv.rest(t, "GET", "/readyz", ""); code != 200 {
		t.Fatalf("/readyz after Redis returned = %d", code)
	}
}

func TestOperationalEndpoints(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	if _, err := srv.grpc.CheckConsent(ctx(t), &consentv1.CheckConsentRequest{SubjectId: "m", Purpose: "ads"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{"/healthz", "ok"},
		{"/readyz", "ready"},
		{"/metrics", `grpc_server_handled_total{grpc_code="OK",grpc_method="CheckConsent"`},
		{"/metrics", "grpc_server_handling_seconds_bucket"},
		{"/metrics", "consentd_redis_errors_total"},
		{"/openapi.json", `"/v1/subjects/{subject_id}/purposes/{purpose}:check"`},
		{"/.well-known/gpc.json", `"gpc": true`},
	} {
		resp, err := http.Get(srv.baseURL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), tc.want) {
			t.Errorf("GET %s = %d, want it to contain %s; got %.300s", tc.path, resp.StatusCode, tc.want, b)
		}
	}
}

func TestRequestIDIsReturnedAndLoggedButNoSubjectID(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	_, _, h := srv.rest(t, "GET", "/v1/subjects/secret-person-42/consent", "", "X-Request-Id", "req-abc-123")
	if h.Get("X-Request-Id") != "req-abc-123" {
		t.Fatalf("X-Request-Id = %q, want the caller's", h.Get("X-Request-Id"))
	}
	_, _, h = srv.rest(t, "GET", "/v1/subjects/secret-person-42/consent", "")
	if len(h.Get("X-Request-Id")) < 16 {
		t.Fatalf("no request id made: %q", h.Get("X-Request-Id"))
	}
	var md metadata.MD
	if _, err := srv.grpc.GetPolicy(ctx(t), &consentv1.GetPolicyRequest{}, grpc.Header(&md)); err != nil || len(md.Get("x-request-id")) != 1 {
		t.Fatalf("gRPC x-request-id header = %v, %v", md, err)
	}
	// The call lines; the start-up line names the listen addresses, which are
	// not a client's.
	var calls []string
	for _, line := range strings.Split(srv.logs.String(), "\n") {
		if strings.Contains(line, `"msg":"call"`) {
			calls = append(calls, line)
		}
	}
	logs := strings.Join(calls, "\n")
	if !strings.Contains(logs, "req-abc-123") {
		t.Errorf("the request id is not in the logs:\n%s", logs)
	}
	for _, secret := range []string{"secret-person-42", "127.0.0.1"} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain %q:\n%s", secret, logs)
		}
	}
}

func TestShutdownLetsInFlightCallsFinish(t *testing.T) {
	redis := redistest.Start(t)
	srv := start(t, redis.URL(), func(c *config.Config) { c.RedisTimeout = 5 * time.Second })
	if _, err := srv.grpc.GetPolicy(ctx(t), &consentv1.GetPolicyRequest{}); err != nil {
		t.Fatal(err)
	}
	// Redis answers nothing for a second: the check below is in flight when
	// the shutdown starts, and must still get its answer.
	client := redis.Client(t)
	go func() { _ = client.Do(context.Background(), "DEBUG", "SLEEP", "1").Err() }()
	// A client that gives up after 20ms tells when Redis stops answering.
	prober := goredis.NewClient(&goredis.Options{Addr: redis.Addr(), ReadTimeout: 20 * time.Millisecond, MaxRetries: -1})
	defer prober.Close()
	eventually.True(t, "Redis to be asleep", func() bool { return prober.Ping(context.Background()).Err() != nil })
	answered := make(chan error, 1)
	go func() {
		_, err := srv.grpc.CheckConsent(context.Background(), &consentv1.CheckConsentRequest{SubjectId: "late", Purpose: "ads"})
		answered <- err
	}()
	eventually.True(t, "the check to be in flight", func() bool {
		resp, err := http.Get(srv.baseURL + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), `grpc_server_started_total{grpc_method="CheckConsent",grpc_service="consent.v1.ConsentService",grpc_type="unary"} 1`)
	})
	srv.stop()
	if err := <-answered; err != nil {
		t.Fatalf("the in-flight call failed during shutdown: %v", err)
	}
	if _, err := srv.grpc.GetPolicy(ctx(t), &consentv1.GetPolicyRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("a call after shutdown: %v, want Unavailable", err)
	}
}

func TestABadPolicyOrKeysFileStopsStartUpNamingTheProblem(t *testing.T) {
	redisURL := redistest.Start(t).URL()
	dir := t.TempDir()
	badPolicy := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(badPolicy, []byte("version: x\ndefault_region: world\npurposes: []\nregions: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badKeys := filepath.Join(dir, "keys.yaml")
	if err := os.WriteFile(badKeys, []byte("hmac_keys:\n  - id: k\n    secret: c2hvcnQ=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		tweak func(*config.Config)
		want  string
	}{
		{"bad policy", func(c *config.Config) { c.PolicyPath = badPolicy }, "line 3: purposes"},
		{"missing policy", func(c *config.Config) { c.PolicyPath = filepath.Join(dir, "nope.yaml") }, "nope.yaml"},
		{"bad keys", func(c *config.Config) { c.KeysFile = badKeys }, "hmac_keys[0].secret: must be at least 32 bytes"},
		{"port taken", nil, "--http-addr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, redisURL)
			if tc.tweak != nil {
				tc.tweak(&cfg)
			} else {
				taken := start(t, redisURL)
				cfg.HTTPAddr = strings.TrimPrefix(taken.baseURL, "http://")
			}
			a, err := New(cfg, slog.New(slog.DiscardHandler))
			if err == nil {
				a.shutdown()
				t.Fatal("consentd started")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

func TestPolicyReloadTakesEffectAndABadFileKeepsTheOldOne(t *testing.T) {
	shipped, err := os.ReadFile("../../deploy/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "policy.yaml")
	write := func(b []byte) {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(shipped)
	redisURL := redistest.Start(t).URL()
	cfg := testConfig(t, redisURL)
	cfg.PolicyPath = path
	a, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.shutdown() })
	version := func() string { return a.policy.Load().Version }

	write([]byte(strings.Replace(string(shipped), `version: "2026-11-01"`, `version: "2026-12-01"`, 1)))
	if err := a.ReloadPolicy(); err != nil {
		t.Fatal(err)
	}
	if version() != "2026-12-01" {
		t.Fatalf("policy version after reload = %q", version())
	}
	write([]byte("version: broken\n"))
	if err := a.ReloadPolicy(); err == nil || !strings.Contains(err.Error(), "purposes") {
		t.Fatalf("reloading a bad file: %v", err)
	}
	if version() != "2026-12-01" {
		t.Fatalf("a bad reload replaced the policy: %q", version())
	}
}

func TestGRPCReflectionListsTheService(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	stream, err := reflectionpb.NewServerReflectionClient(srv.conn).ServerReflectionInfo(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{"consent.v1.ConsentService", "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, missing %s", names, want)
		}
	}
}

func TestABrowsersWriteRecordsCoarseClientFactsSealed(t *testing.T) {
	redis := redistest.Start(t)
	srv := start(t, redis.URL())
	code, body, _ := srv.rest(t, "PATCH", "/v1/subjects/dana/consent", `{"decisions": {"ads": false}}`,
		"User-Agent", "TestBrowser/1.0 (X11; Linux x86_64)", "Sec-CH-UA-Platform", `"Linux"`, "Sec-CH-UA-Mobile", "?0")
	if code != 200 {
		t.Fatalf("PATCH: %d %v", code, body)
	}
	if _, err := srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: "dana", Decisions: map[string]bool{"ads": true}}); err != nil {
		t.Fatal(err)
	}
	events, err := srv.grpc.ListConsentEvents(as(ctx(t), tokenFor(t, "dana", time.Now(), time.Hour)), &consentv1.ListConsentEventsRequest{SubjectId: "dana"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := events.GetEvents()[1].GetClient(), `ua=TestBrowser/1.0 (X11; Linux x86_64); platform="Linux"; mobile=?0`; got != want {
		t.Errorf("client facts of the browser's write = %q, want %q", got, want)
	}
	if got := events.GetEvents()[0].GetClient(); got != "" {
		t.Errorf("a service's gRPC write recorded client facts %q", got)
	}
	// In Redis they are sealed.
	keys, _ := redis.Client(t).Keys(ctx(t), "*:h:*").Result()
	for _, k := range keys {
		for _, e := range redis.Client(t).LRange(ctx(t), k, 0, -1).Val() {
			if strings.Contains(e, "TestBrowser") || strings.Contains(e, "Linux") {
				t.Errorf("history holds client facts in the clear: %s", e)
			}
		}
	}
}

func TestFilteringASendListKeepsOnlyThoseWhoAgreed(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	for id, granted := range map[string]bool{"u1": true, "u2": false, "u4": true} {
		if _, err := srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: id, Region: "DE",
			Decisions: map[string]bool{"marketing.email": granted}}); err != nil {
			t.Fatal(err)
		}
	}
	// 10,000 ids: three decided, the rest never asked (opt-in: not allowed),
	// one given twice.
	ids := []string{"u1", "u2", "u3", "u4", "u1"}
	for i := len(ids); i < 10000; i++ {
		ids = append(ids, fmt.Sprintf("nobody-%d", i))
	}
	got, err := srv.grpc.FilterSubjects(ctx(t), &consentv1.FilterSubjectsRequest{Purpose: "marketing.email", SubjectIds: ids, Region: "DE"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.GetAllowedSubjectIds(), []string{"u1", "u4"}) {
		t.Fatalf("allowed = %v, want [u1 u4]", got.GetAllowedSubjectIds())
	}
	code, body, _ := srv.rest(t, "POST", "/v1/purposes/marketing.email:filterSubjects", `{"subject_ids": ["u4", "u2", "u1"]}`)
	if code != 200 || jsonPath(body, "allowed_subject_ids") != `["u4","u1"]` {
		t.Fatalf("REST filter = %d %v", code, body)
	}

	for _, tc := range []struct {
		name  string
		req   *consentv1.FilterSubjectsRequest
		field string
	}{
		{"no ids", &consentv1.FilterSubjectsRequest{Purpose: "ads"}, "subject_ids"},
		{"10,001 ids", &consentv1.FilterSubjectsRequest{Purpose: "ads", SubjectIds: append(ids, "one-too-many")}, "subject_ids"},
		{"a bad id", &consentv1.FilterSubjectsRequest{Purpose: "ads", SubjectIds: []string{"u1", "bad id"}}, "subject_ids[1]"},
		{"an unknown purpose", &consentv1.FilterSubjectsRequest{Purpose: "telepathy", SubjectIds: []string{"u1"}}, "purpose"},
		{"a bad region", &consentv1.FilterSubjectsRequest{Purpose: "ads", SubjectIds: []string{"u1"}, Region: "de"}, "region"},
	} {
		_, err := srv.grpc.FilterSubjects(ctx(t), tc.req)
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), tc.field) {
			t.Errorf("%s: %v, want InvalidArgument naming %s", tc.name, err, tc.field)
		}
	}
}
