package app

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/internal/redistest"
	"github.com/consentd/consentd/server/ratelimit"
)

// A full Redis: maxmemory reached under maxmemory-policy noeviction, the
// setting deploy/ runs Redis with (evicting would silently drop consent
// records). Redis then refuses every command that may grow its memory, with
// "OOM command not allowed when used memory > 'maxmemory'", and keeps
// serving reads. consentd must say so: writes are UNAVAILABLE (503) with
// "storage is full", checks keep answering from the store, /readyz and the
// metrics tell the operator, and the rate limiter keeps limiting.

// startFullable is a Redis of a few MB that refuses writes when full, as
// deploy/ configures it, and its admin client.
func startFullable(t *testing.T) (*redistest.Server, *goredis.Client) {
	t.Helper()
	redis := redistest.Start(t, "--maxmemory", "8mb", "--maxmemory-policy", "noeviction")
	return redis, redis.Client(t)
}

// fillRedis writes 64 KiB values until Redis refuses one for memory, then
// lowers maxmemory a little below what it uses, so that connection buffers
// shrinking cannot bring it back under the limit while the test runs.
func fillRedis(t *testing.T, rdb *goredis.Client) {
	t.Helper()
	value := strings.Repeat("x", 64<<10)
	for i := 0; ; i++ {
		err := rdb.Set(ctx(t), fmt.Sprintf("filler:%d", i), value, 0).Err()
		if goredis.IsOOMError(err) {
			break
		}
		if err != nil {
			t.Fatalf("filling Redis: %v", err)
		}
		if i > 1000 {
			t.Fatal("Redis never filled up: is maxmemory set?")
		}
	}
	used := usedMemory(t, rdb)
	if err := rdb.ConfigSet(ctx(t), "maxmemory", strconv.FormatInt(used-(1<<20), 10)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx(t), "one-more", "x", 0).Err(); !goredis.IsOOMError(err) {
		t.Fatalf("Redis is not full: SET answered %v", err)
	}
}

// raiseMaxmemory is the operator's fix: more room (0 is no limit).
func raiseMaxmemory(t *testing.T, rdb *goredis.Client) {
	t.Helper()
	if err := rdb.ConfigSet(ctx(t), "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
}

func usedMemory(t *testing.T, rdb *goredis.Client) int64 {
	t.Helper()
	info, err := rdb.Info(ctx(t), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("INFO memory has no used_memory:\n%s", info)
	return 0
}

// wantStorageFull: a gRPC error that says the storage is full, is
// UNAVAILABLE (retry later), carries the STORAGE_FULL reason and leaks
// nothing of Redis.
func wantStorageFull(t *testing.T, what string, err error) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "storage is full") {
		t.Errorf("%s with Redis full: %v, want Unavailable saying the storage is full", what, err)
		return
	}
	var reason string
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			reason = info.GetReason()
		}
	}
	if reason != "STORAGE_FULL" {
		t.Errorf("%s with Redis full: details %v, want an ErrorInfo with reason STORAGE_FULL", what, st.Details())
	}
	leaks(t, what, st.Message())
}

// wantStorageFullREST is wantStorageFull for a REST answer.
func wantStorageFullREST(t *testing.T, what string, code int, body map[string]any) {
	t.Helper()
	if code != http.StatusServiceUnavailable || !strings.Contains(jsonPath(body, "message"), "storage is full") ||
		jsonPath(body, "details.0.reason") != "STORAGE_FULL" {
		t.Errorf("%s with Redis full: %d %v, want 503 saying the storage is full, reason STORAGE_FULL", what, code, body)
	}
	leaks(t, what, jsonPath(body, "message"))
}

func leaks(t *testing.T, what, msg string) {
	t.Helper()
	for _, internal := range []string{"OOM", "maxmemory", "redis", "Redis", "script"} {
		if strings.Contains(msg, internal) {
			t.Errorf("%s: the message %q shows %q", what, msg, internal)
		}
	}
}

func TestAFullRedisRefusesWritesAsUnavailableServesChecksAndLosesNothing(t *testing.T) {
	redis, rdb := startFullable(t)
	srv := start(t, redis.URL())
	c := srv.grpc
	const subject = "user-full"
	before, err := c.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: subject, Region: "DE",
		Decisions: map[string]bool{"analytics": true, "ads": false}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: "erase-me", Decisions: map[string]bool{"ads": true}}); err != nil {
		t.Fatal(err)
	}
	fillRedis(t, rdb)

	// Writes and withdrawals, over gRPC and REST.
	retried := &consentv1.UpdateConsentRequest{SubjectId: subject, Region: "DE", IdempotencyKey: "k-full",
		Decisions: map[string]bool{"ads": true}}
	_, err = c.UpdateConsent(ctx(t), retried)
	wantStorageFull(t, "UpdateConsent", err)
	_, err = c.WithdrawConsent(ctx(t), &consentv1.WithdrawConsentRequest{SubjectId: subject})
	wantStorageFull(t, "WithdrawConsent", err)
	code, body, _ := srv.rest(t, "PATCH", "/v1/subjects/"+subject+"/consent", `{"decisions": {"ads": true}}`)
	wantStorageFullREST(t, "PATCH consent", code, body)
	code, body, _ = srv.rest(t, "POST", "/v1/subjects/"+subject+"/consent:withdraw", `{}`)
	wantStorageFullREST(t, "POST consent:withdraw", code, body)

	// Reads are served from the store (not a fail-closed denial, which has
	// no revision).
	check, err := c.CheckConsent(ctx(t), &consentv1.CheckConsentRequest{SubjectId: subject, Purpose: "analytics"})
	if err != nil || !check.GetAllowed() || check.GetReason() != consentv1.Reason_REASON_EXPLICIT || check.GetRevision() != 1 {
		t.Errorf("check with Redis full: %v, %v; want the stored grant at revision 1", check, err)
	}
	code, body, _ = srv.rest(t, "GET", "/v1/subjects/"+subject+"/purposes/ads:check", "")
	if code != 200 || jsonPath(body, "allowed") != "false" || jsonPath(body, "reason") != "REASON_EXPLICIT" || jsonPath(body, "revision") != "1" {
		t.Errorf("REST check with Redis full: %d %v", code, body)
	}
	batch, err := c.BatchCheckConsent(ctx(t), &consentv1.BatchCheckConsentRequest{Checks: []*consentv1.ConsentCheck{
		{SubjectId: subject, Purpose: "analytics"}, {SubjectId: "someone-else", Purpose: "analytics", Region: "US-CA"},
	}})
	if err != nil || !batch.GetResults()[0].GetAllowed() || batch.GetResults()[0].GetRevision() != 1 ||
		batch.GetResults()[1].GetReason() != consentv1.Reason_REASON_DEFAULT {
		t.Errorf("batch check with Redis full: %v, %v", batch, err)
	}
	got, err := c.GetConsent(ctx(t), &consentv1.GetConsentRequest{SubjectId: subject})
	if err != nil || got.GetConsent().GetRevision() != 1 {
		t.Errorf("GetConsent with Redis full: %v, %v", got, err)
	}

	// An erasure deletes before it writes its tombstone, so Redis lets it
	// run to the end: it works, and frees memory.
	if erased, err := c.EraseSubject(ctx(t), &consentv1.EraseSubjectRequest{SubjectId: "erase-me", Reason: "oom test"}); err != nil || !erased.GetErased() {
		t.Errorf("erasure with Redis full: %v, %v", erased, err)
	}

	// The operator makes room; the same write (same idempotency key) applies
	// once, on top of the state from before.
	raiseMaxmemory(t, rdb)
	after, err := c.UpdateConsent(ctx(t), retried)
	if err != nil {
		t.Fatalf("the write once Redis has room: %v", err)
	}
	if after.GetConsent().GetRevision() != before.GetConsent().GetRevision()+1 ||
		!purposeOf(t, after.GetConsent(), "analytics").GetAllowed() || !purposeOf(t, after.GetConsent(), "ads").GetAllowed() {
		t.Errorf("after the retry: %v, want revision 2 with analytics (from before) and ads granted", after)
	}
	export, err := c.ExportSubject(ctx(t), &consentv1.ExportSubjectRequest{SubjectId: subject, Reason: "oom test"})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range export.GetEvents() {
		types = append(types, strings.TrimPrefix(e.GetType().String(), "EVENT_TYPE_"))
	}
	if strings.Join(types, ",") != "UPDATE,UPDATE,EXPORT" || !export.GetChain().GetValid() {
		t.Errorf("history after the full spell: %v, chain %v; want UPDATE,UPDATE,EXPORT and a valid chain", types, export.GetChain())
	}
}

func TestReadyzAndMetricsSayWhenRedisIsFull(t *testing.T) {
	redis, rdb := startFullable(t)
	srv := start(t, redis.URL())
	if code, raw, _ := srv.restRaw(t, "GET", "/readyz", ""); code != 200 || string(raw) != "ready\n" {
		t.Fatalf("/readyz with room: %d %q", code, raw)
	}
	if v := metric(t, srv, "consentd_redis_storage_full"); v != "0" {
		t.Errorf("consentd_redis_storage_full with room = %s, want 0", v)
	}

	fillRedis(t, rdb)
	// Still ready: every instance shares this Redis, so taking them out of
	// the load balancer would fail checks too, which Redis still serves.
	code, raw, _ := srv.restRaw(t, "GET", "/readyz", "")
	if code != 200 || !strings.Contains(string(raw), "storage is full") {
		t.Errorf("/readyz with Redis full: %d %q, want 200 saying the storage is full", code, raw)
	}
	for range 3 {
		_, err := srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: "s", Decisions: map[string]bool{"ads": true}})
		if status.Code(err) != codes.Unavailable {
			t.Errorf("write with Redis full: %v", err)
		}
	}
	if v := metric(t, srv, "consentd_redis_storage_full"); v != "1" {
		t.Errorf("consentd_redis_storage_full with Redis full = %s, want 1", v)
	}
	if v, _ := strconv.Atoi(metric(t, srv, "consentd_redis_oom_errors_total")); v < 3 {
		t.Errorf("consentd_redis_oom_errors_total = %d after 3 refused writes", v)
	}

	raiseMaxmemory(t, rdb)
	if code, raw, _ := srv.restRaw(t, "GET", "/readyz", ""); code != 200 || string(raw) != "ready\n" {
		t.Errorf("/readyz once Redis has room: %d %q", code, raw)
	}
	if v := metric(t, srv, "consentd_redis_storage_full"); v != "0" {
		t.Errorf("consentd_redis_storage_full once Redis has room = %s, want 0", v)
	}
}

func TestTheRateLimiterStillLimitsWhenRedisIsFull(t *testing.T) {
	redis, rdb := startFullable(t)
	srv := start(t, redis.URL(), func(c *config.Config) { c.RateLimitIP, _ = ratelimit.ParseLimit("5/m") })
	fillRedis(t, rdb)
	// Public calls, per client IP: the policy is read from memory, so
	// nothing but the limiter stops them.
	allowed := 0
	for range 20 {
		if _, err := srv.grpc.GetPolicy(as(ctx(t), ""), &consentv1.GetPolicyRequest{}); err == nil {
			allowed++
		} else if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("GetPolicy: %v", err)
		}
	}
	if allowed > 5 {
		t.Errorf("with Redis full, %d of 20 public calls from one IP got through a limit of 5/m", allowed)
	}
	code, _, h := srv.rest(t, "GET", "/v1/policy", "", "Authorization", "")
	if code != http.StatusTooManyRequests || h.Get("Retry-After") == "" {
		t.Errorf("REST over the limit with Redis full: %d, Retry-After %q; want 429 with Retry-After", code, h.Get("Retry-After"))
	}
}

// metric is the value of an unlabelled series on /metrics, "<missing>" if
// there is none.
func metric(t *testing.T, srv *consentd, name string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), "GET", srv.baseURL+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			return v
		}
	}
	return "<missing>"
}
