package app

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/internal/redistest"
	"github.com/consentd/consentd/server/ratelimit"
)

// Writes made over REST and gRPC show in GET /v1/stats and in the metrics,
// each decision once; what is not a person's decision counts nothing.
func TestConsentStatsCountScriptedWritesOverREST(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	today := time.Now().UTC().Format(time.DateOnly)
	rest := func(method, path, body string, header ...string) {
		t.Helper()
		if code, resp, _ := srv.rest(t, method, path, body, header...); code != 200 {
			t.Fatalf("%s %s: %d %v", method, path, code, resp)
		}
	}
	everything := `{"functional": true, "analytics": true, "ads": true, "marketing.email": true, "marketing.sms": true,
		"marketing.phone": true, "marketing.push": true, "marketing.in_app": true, "necessary": true}`
	// alice, in DE, accepts everything on the banner, then withdraws ads in
	// the preference center.
	rest("PATCH", "/v1/subjects/alice/consent", `{"decisions": `+everything+`, "source": "SOURCE_BANNER", "region": "DE"}`)
	rest("POST", "/v1/subjects/alice/consent:withdraw", `{"purposes": ["ads"], "source": "SOURCE_PREFERENCE_CENTER"}`)
	// bob, in a region the policy does not list, denies ads on the banner
	// (everything that write decides: a reject all), retried with the same
	// idempotency key: counted once.
	for range 2 {
		rest("PATCH", "/v1/subjects/bob/consent", `{"decisions": {"ads": false}, "source": "SOURCE_BANNER", "region": "JP", "idempotency_key": "k1"}`)
	}
	// carol, in a US state the policy does not list (its country is), is
	// written by a backend over gRPC; a stale write of hers counts nothing.
	if _, err := srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: "carol", Region: "US-WY", Decisions: map[string]bool{"analytics": true}}); err != nil {
		t.Fatal(err)
	}
	_, err := srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: "carol", ExpectedRevision: proto.Int64(7), Decisions: map[string]bool{"analytics": false}})
	if status.Code(err) != codes.Aborted {
		t.Fatalf("a stale write: %v, want Aborted", err)
	}
	// Not decisions: a restriction, its lift, a visitor linked to alice.
	rest("POST", "/v1/subjects/alice:restrict", `{"reason": "ticket 1"}`)
	rest("POST", "/v1/subjects/alice:liftRestriction", `{"reason": "ticket 1"}`)
	visitor, err := srv.grpc.CreateVisitor(as(ctx(t), ""), &consentv1.CreateVisitorRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.grpc.LinkSubjects(ctx(t), &consentv1.LinkSubjectsRequest{SubjectId: "alice", VisitorId: visitor.GetSubjectId()}); err != nil {
		t.Fatal(err)
	}
	// The banner funnel, anonymously.
	for _, body := range []string{`{"step": "BANNER_STEP_SHOWN", "region": "DE"}`, `{"step": "BANNER_STEP_SHOWN", "region": "DE"}`, `{"step": "BANNER_STEP_CLOSED"}`} {
		rest("POST", "/v1/banner-events", body, "Authorization", "")
	}

	code, raw, _ := srv.restRaw(t, "GET", "/v1/stats?start_day="+today+"&end_day="+today, "", "Authorization", "Bearer "+apiKeys["read"])
	if code != 200 {
		t.Fatalf("GET /v1/stats: %d %s", code, raw)
	}
	var got consentv1.GetConsentStatsResponse
	if err := protojson.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	day := &consentv1.DayStats{Day: today}
	for _, p := range []string{"ads", "analytics", "functional", "marketing.email", "marketing.in_app", "marketing.phone", "marketing.push", "marketing.sms"} {
		c := &consentv1.DecisionCounts{Purpose: p, Region: "DE", Granted: 1}
		if p == "ads" {
			c.Withdrawn = 1
			day.Decisions = append(day.Decisions, c, &consentv1.DecisionCounts{Purpose: "ads", Region: "rest_of_world", Denied: 1})
			continue
		}
		day.Decisions = append(day.Decisions, c)
		if p == "analytics" {
			day.Decisions = append(day.Decisions, &consentv1.DecisionCounts{Purpose: "analytics", Region: "US", Granted: 1})
		}
	}
	day.Methods = []*consentv1.MethodCount{
		{Region: "DE", Method: consentv1.ConsentMethod_CONSENT_METHOD_BANNER_ACCEPT_ALL, Count: 1},
		{Region: "DE", Method: consentv1.ConsentMethod_CONSENT_METHOD_PREFERENCE_CENTER, Count: 1},
		{Region: "US", Method: consentv1.ConsentMethod_CONSENT_METHOD_API, Count: 1},
		{Region: "rest_of_world", Method: consentv1.ConsentMethod_CONSENT_METHOD_BANNER_REJECT_ALL, Count: 1},
	}
	day.Banner = []*consentv1.BannerStepCount{
		{Region: "DE", Step: consentv1.BannerStep_BANNER_STEP_SHOWN, Count: 2},
		{Region: "rest_of_world", Step: consentv1.BannerStep_BANNER_STEP_CLOSED, Count: 1},
	}
	if want := (&consentv1.GetConsentStatsResponse{Days: []*consentv1.DayStats{day}}); !proto.Equal(&got, want) {
		t.Errorf("GET /v1/stats:\n got %v\nwant %v", &got, want)
	}

	// The default range: the 30 days up to today, oldest first.
	code, resp, _ := srv.rest(t, "GET", "/v1/stats", "")
	if days, _ := resp["days"].([]any); code != 200 || len(days) != 30 || jsonPath(resp, "days.29.day") != today {
		t.Errorf("GET /v1/stats without a range: %d, %d days ending %s", code, len(days), jsonPath(resp, "days.29.day"))
	}

	// The metrics count the same.
	body := scrapeMetrics(t, srv)
	for _, series := range []string{
		`consentd_consent_decisions_total{outcome="withdrawn",purpose="ads",region="DE"} 1`,
		`consentd_consent_decisions_total{outcome="granted",purpose="ads",region="DE"} 1`,
		`consentd_consent_decisions_total{outcome="denied",purpose="ads",region="rest_of_world"} 1`,
		`consentd_consent_decisions_total{outcome="granted",purpose="analytics",region="US"} 1`,
		`consentd_consent_writes_total{method="banner_accept_all",region="DE"} 1`,
		`consentd_consent_writes_total{method="preference_center",region="DE"} 1`,
		`consentd_consent_writes_total{method="banner_reject_all",region="rest_of_world"} 1`,
		`consentd_consent_writes_total{method="api",region="US"} 1`,
		`consentd_banner_events_total{region="DE",step="shown"} 2`,
		`consentd_banner_events_total{region="rest_of_world",step="closed"} 1`,
	} {
		if !strings.Contains(body, series+"\n") {
			t.Errorf("/metrics lacks %s", series)
		}
	}
	if n := strings.Count(body, "\nconsentd_consent_writes_total{"); n != 4 {
		t.Errorf("%d series of consentd_consent_writes_total, want 4", n)
	}
}

func scrapeMetrics(t *testing.T, srv *consentd) string {
	t.Helper()
	resp, err := http.Get(srv.baseURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestConsentStatsBadInputNamesItsField(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	for _, tc := range []struct {
		name, method, path, body, field string
	}{
		{"a start that is no day", "GET", "/v1/stats?start_day=2026-02-30", "", "start_day"},
		{"an end that is no day", "GET", "/v1/stats?end_day=today", "", "end_day"},
		{"an end before the start", "GET", "/v1/stats?start_day=2026-02-03&end_day=2026-02-01", "", "end_day"},
		{"a range over 400 days", "GET", "/v1/stats?start_day=2025-01-01&end_day=2026-02-05", "", "start_day"},
		{"a banner event without a step", "POST", "/v1/banner-events", `{"region": "DE"}`, "step"},
		{"a banner event with a bad region", "POST", "/v1/banner-events", `{"step": "BANNER_STEP_SHOWN", "region": "germany"}`, "region"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, _ := srv.rest(t, tc.method, tc.path, tc.body)
			if code != http.StatusBadRequest || !strings.HasPrefix(jsonPath(body, "message"), tc.field+":") {
				t.Errorf("%d %v, want 400 naming %s", code, body, tc.field)
			}
		})
	}
	if body := scrapeMetrics(t, srv); strings.Contains(body, "\nconsentd_banner_events_total{") {
		t.Error("a refused banner event was counted")
	}
}

// RecordBannerEvent is public: the per-client limit of public calls applies.
func TestBannerEventsAreRateLimitedPerClient(t *testing.T) {
	srv := start(t, redistest.Start(t).URL(), func(c *config.Config) { c.RateLimitIP, _ = ratelimit.ParseLimit("3/m") })
	for i := range 3 {
		if code, body, _ := srv.rest(t, "POST", "/v1/banner-events", `{"step": "BANNER_STEP_SHOWN"}`, "Authorization", ""); code != 200 {
			t.Fatalf("event %d: %d %v", i, code, body)
		}
	}
	code, body, h := srv.rest(t, "POST", "/v1/banner-events", `{"step": "BANNER_STEP_SHOWN"}`, "Authorization", "")
	if code != http.StatusTooManyRequests || h.Get("Retry-After") == "" {
		t.Fatalf("4th event in a minute: %d %v, want 429 with Retry-After", code, body)
	}
	_, err := srv.grpc.RecordBannerEvent(as(ctx(t), ""), &consentv1.RecordBannerEventRequest{Step: consentv1.BannerStep_BANNER_STEP_SHOWN})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("over gRPC: %v, want ResourceExhausted", err)
	}
	if body := scrapeMetrics(t, srv); !strings.Contains(body, `consentd_banner_events_total{region="rest_of_world",step="shown"} 3`+"\n") {
		t.Error("the metrics do not count the 3 events let through, and only them")
	}
}
