package app

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/internal/eventually"
	"github.com/consentd/consentd/server/internal/redistest"
)

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
