package app

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/internal/redistest"
)

// These tests run the whole consentd, as main does, against a real
// redis-server, and talk to it over both gRPC and REST.

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
