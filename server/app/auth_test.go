package app

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/auth"
	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/internal/redistest"
	"github.com/consentd/consentd/server/keys"
)

// endpoint is one RPC, callable over gRPC and REST, about subject "alice".
type endpoint struct {
	name       string
	call       func(ctx context.Context, c consentv1.ConsentServiceClient) error
	method     string // REST
	path       string
	body       string
	public     bool   // needs no credentials
	wrongScope string // an API key that lacks what it needs; "" if every key may call
	visitor    bool   // a subject token for alice may call it
	// When set, what a call let through answers instead of OK: a call whose
	// success needs set-up the matrix does not make (the test server's
	// policy has no iab section for RecordAdSignals).
	allowed     codes.Code
	allowedHTTP int
}

var endpoints = []endpoint{
	{name: "GetPolicy", call: func(ctx context.Context, c consentv1.ConsentServiceClient) error {
		_, err := c.GetPolicy(ctx, &consentv1.GetPolicyRequest{})
		return err
	}, method: "GET", path: "/v1/policy", public: true, visitor: true},
	{name: "GetConsent", call: func(ctx context.Context, c consentv1.ConsentServiceClient) error {
		_, err := c.GetConsent(ctx, &consentv1.GetConsentRequest{SubjectId: "alice"})
		return err
	}, method: "GET", path: "/v1/subjects/alice/consent", wrongScope: "check", visitor: true},
	{name: "UpdateConsent", call: func(ctx context.Context, c consentv1.ConsentServiceClient) error {
		_, err := c.UpdateConsent(ctx, &consentv1.UpdateConsentRequest{SubjectId: "alice", Decisions: map[string]bool{"ads": false}})
		return err
	}, method: "PATCH", path: "/v1/subjects/alice/consent", body: `{"decisions": {"ads": false}}`, wrongScope: "read", visitor: true},
	{name: "WithdrawConsent", call: func(ctx context.Context, c consentv1.ConsentServiceClient) error {
		_, err := c.WithdrawConsent(ctx, &consentv1.WithdrawConsentRequest{SubjectId: "alice"})
		return err
	}, method: "POST", path: "/v1/subjects/alice/consent:withdraw", body: `{}`, wrongScope: "read", visitor: true},
	{name: "CheckConsent", call: func(ctx context.Context, c consentv1.ConsentServiceClient) error {
		_, err := c.CheckConsent(ctx, &consentv1.CheckConsentRequest{SubjectId: "alice", Purpose: "ads"})
		return err
	}, method: "GET", path: "/v1/subjects/alice/purposes/ads:check", wrongScope: "read"},
	{name: "BatchCheckConsent", call: func(ctx context.Context, c consentv1.ConsentServiceClient) error {
		_, err := c.BatchCheckConsent(ctx, &consentv1.BatchCheckConsentRequest{Checks: []*consentv1.ConsentCheck{{SubjectId: "alice", Purpose: "ads"}}})
		return err
	}, method: "POST", path: "/v1/consent:batchCheck", body: `{"checks": [{"subject_id": "alice", "purpose": "ads"}]}`, wrongScope: "write"},
	{name: "ListConsentEvents", call: func(ctx context.Context, c consentv1.ConsentServiceClient) error {
		_, err := c.ListConsentEvents(ctx, &consentv1.ListConsentEventsRequest{SubjectId: "alice", Reason: "audit"})
		return err
	}, method: "GET", path: "/v1/subjects/alice/events?reason=audit", wrongScope: "read", visitor: true},
	{name: "FilterSubjects", call: func(ctx context.Context, c consentv1.ConsentServiceClient) error {
		_, err := c.FilterSubjects(ctx, &consentv1.FilterSubjectsRequest{Purpose: "ads", SubjectIds: []string{"alice"}})
		return err
	}, method: "POST", path: "/v1/purposes/ads:filterSubjects", body: `{"subject_ids": ["alice"]}`, wrongScope: "read"},
	{name: "CreateVisitor", call: func(ctx context.Context, c consentv1.ConsentServiceClient) error {
		_, err := c.CreateVisitor(ctx, &consentv1.CreateVisitorRequest{})
		return err
	}, method: "POST", path: "/v1/visitors", body: `{}`, public: true},
	{name: "IssueSubjectToken", call: func(ctx context.Context, c consentv1.ConsentServiceClient) error {
		_, err := c.IssueSubjectToken(ctx, &consentv1.IssueSubjectTokenRequest{SubjectId: "alice"})
		return err
	}, method: "POST", path: "/v1/subjects/alice:issueToken", body: `{}`, wrongScope: "write"},
	{name: "RefreshSubjectToken", call: func(ctx context.Context, c consentv1.ConsentServiceClient) error {
		_, err := c.RefreshSubjectToken(ctx, &consentv1.RefreshSubjectTokenRequest{})
		return err
	}, method: "POST", path: "/v1/tokens:refresh", body: `{}`, wrongScope: "admin", visitor: true},
	{name: "ExportSubject", call: func(ctx context.Context, c consentv1.ConsentServiceClient) error {
		_, err := c.ExportSubject(ctx, &consentv1.ExportSubjectRequest{SubjectId: "alice", Reason: "audit"})
		return err
	}, method: "GET", path: "/v1/subjects/alice:export?reason=audit", wrongScope: "read", visitor: true},
	{name: "EraseSubject", call: func(ctx context.Context, c consentv1.ConsentServiceClient) error {
		_, err := c.EraseSubject(ctx, &consentv1.EraseSubjectRequest{SubjectId: "alice", Reason: "ticket 1"})
		return err
	}, method: "POST", path: "/v1/subjects/alice:erase", body: `{"reason": "ticket 1"}`, wrongScope: "write", visitor: true},
	{name: "RestrictProcessing", call: func(ctx context.Context, c consentv1.ConsentServiceClient) error {
		_, err := c.RestrictProcessing(ctx, &consentv1.RestrictProcessingRequest{SubjectId: "alice", Reason: "ticket 2"})
		return err
	}, method: "POST", path: "/v1/subjects/alice:restrict", body: `{"reason": "ticket 2"}`, wrongScope: "write"},
	{name: "LiftRestriction", call: func(ctx context.Context, c consentv1.ConsentServiceClient) error {
		_, err := c.LiftRestriction(ctx, &consentv1.LiftRestrictionRequest{SubjectId: "alice", Reason: "ticket 3"})
		return err
	}, method: "POST", path: "/v1/subjects/alice:liftRestriction", body: `{"reason": "ticket 3"}`, wrongScope: "write"},
	{name: "LinkSubjects", call: func(ctx context.Context, c consentv1.ConsentServiceClient) error {
		_, err := c.LinkSubjects(ctx, &consentv1.LinkSubjectsRequest{SubjectId: "alice", VisitorId: "v_AAAAAAAAAAAAAAAAAAAAAA"})
		return err
	}, method: "POST", path: "/v1/subjects/alice:link", body: `{"visitor_id": "v_AAAAAAAAAAAAAAAAAAAAAA"}`, wrongScope: "read"},
	{name: "MarkMinor", call: func(ctx context.Context, c consentv1.ConsentServiceClient) error {
		_, err := c.MarkMinor(ctx, &consentv1.MarkMinorRequest{SubjectId: "alice", Minor: false})
		return err
	}, method: "POST", path: "/v1/subjects/alice:markMinor", body: `{"minor": false}`, wrongScope: "rights"},
	{name: "ConfirmGuardianConsent", call: func(ctx context.Context, c consentv1.ConsentServiceClient) error {
		_, err := c.ConfirmGuardianConsent(ctx, &consentv1.ConfirmGuardianConsentRequest{SubjectId: "alice", Guardian: "parent-1"})
		return err
	}, method: "POST", path: "/v1/subjects/alice:confirmGuardian", body: `{"guardian": "parent-1"}`, wrongScope: "rights"},
	// No case lets the stream open, so the REST calls end.
	{name: "WatchConsentChanges", call: func(ctx context.Context, c consentv1.ConsentServiceClient) error {
		stream, err := c.WatchConsentChanges(ctx, &consentv1.WatchConsentChangesRequest{})
		if err != nil {
			return err
		}
		_, err = stream.Recv()
		return err
	}, method: "GET", path: "/v1/changes:watch", wrongScope: "rights"},
	{name: "AcknowledgeConsentChanges", call: func(ctx context.Context, c consentv1.ConsentServiceClient) error {
		_, err := c.AcknowledgeConsentChanges(ctx, &consentv1.AcknowledgeConsentChangesRequest{Consumer: "mailer", ChangeIds: []string{"0-1-0"}})
		return err
	}, method: "POST", path: "/v1/consumers/mailer:ack", body: `{"change_ids": ["0-1-0"]}`, wrongScope: "rights"},
	{name: "CreateFeedConsumer", call: func(ctx context.Context, c consentv1.ConsentServiceClient) error {
		_, err := c.CreateFeedConsumer(ctx, &consentv1.CreateFeedConsumerRequest{Consumer: "mailer"})
		return err
	}, method: "POST", path: "/v1/consumers", body: `{"consumer": "mailer"}`, wrongScope: "rights"},
	{name: "ListFeedConsumers", call: func(ctx context.Context, c consentv1.ConsentServiceClient) error {
		_, err := c.ListFeedConsumers(ctx, &consentv1.ListFeedConsumersRequest{})
		return err
	}, method: "GET", path: "/v1/consumers", wrongScope: "rights"},
	{name: "DeleteFeedConsumer", call: func(ctx context.Context, c consentv1.ConsentServiceClient) error {
		_, err := c.DeleteFeedConsumer(ctx, &consentv1.DeleteFeedConsumerRequest{Consumer: "mailer"})
		return err
	}, method: "DELETE", path: "/v1/consumers/mailer", wrongScope: "watch"},
	{name: "GetCaller", call: func(ctx context.Context, c consentv1.ConsentServiceClient) error {
		_, err := c.GetCaller(ctx, &consentv1.GetCallerRequest{})
		return err
	}, method: "GET", path: "/v1/caller", visitor: true},
	{name: "GetConsentStats", call: func(ctx context.Context, c consentv1.ConsentServiceClient) error {
		_, err := c.GetConsentStats(ctx, &consentv1.GetConsentStatsRequest{})
		return err
	}, method: "GET", path: "/v1/stats", wrongScope: "write"},
	{name: "RecordAdSignals", call: func(ctx context.Context, c consentv1.ConsentServiceClient) error {
		_, err := c.RecordAdSignals(ctx, &consentv1.RecordAdSignalsRequest{SubjectId: "alice", Region: "DE", Revision: 1, TcString: "CQ"})
		return err
	}, method: "POST", path: "/v1/subjects/alice/consent:signals", body: `{"region": "DE", "revision": 1, "tc_string": "CQ"}`, wrongScope: "read", visitor: true,
		allowed: codes.FailedPrecondition, allowedHTTP: 412},
	{name: "RecordBannerEvent", call: func(ctx context.Context, c consentv1.ConsentServiceClient) error {
		_, err := c.RecordBannerEvent(ctx, &consentv1.RecordBannerEventRequest{Step: consentv1.BannerStep_BANNER_STEP_SHOWN})
		return err
	}, method: "POST", path: "/v1/banner-events", body: `{"step": "BANNER_STEP_SHOWN"}`, public: true},
}

func TestEveryRPCHasAnEndpointCaseAndAnAccessRule(t *testing.T) {
	covered := map[string]bool{}
	for _, e := range endpoints {
		covered[e.name] = true
	}
	methods := consentv1.File_consent_v1_consent_proto.Services().ByName("ConsentService").Methods()
	for i := range methods.Len() {
		name := string(methods.Get(i).Name())
		if !covered[name] {
			t.Errorf("%s has no case in the access tests", name)
		}
		if _, ok := auth.Rules["/consent.v1.ConsentService/"+name]; !ok {
			t.Errorf("%s has no access rule: it is refused to everyone", name)
		}
	}
}

// tokenFor mints a subject token with the test's token key, valid from now
// for ttl (a negative ttl makes an expired one).
func tokenFor(t *testing.T, subject string, issuedAt time.Time, ttl time.Duration) string {
	t.Helper()
	set, err := keys.Parse([]byte(testKeys))
	if err != nil {
		t.Fatal(err)
	}
	if ttl < 0 {
		issuedAt, ttl = issuedAt.Add(2*ttl), -ttl
	}
	return mint(t, set.Token, issuedAt, ttl, subject)
}

// foreignToken is well formed and signed, but by a key consentd does not
// know.
func foreignToken(t *testing.T, subject string) string {
	t.Helper()
	return mint(t, []keys.Key{{ID: "elsewhere", Secret: []byte("a-key-from-another-installation!")}}, time.Now(), time.Hour, subject)
}

func mint(t *testing.T, tokenKeys []keys.Key, issuedAt time.Time, ttl time.Duration, subject string) string {
	t.Helper()
	tokens, err := auth.NewTokens(tokenKeys, ttl, func() time.Time { return issuedAt })
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := tokens.Issue(subject)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// tamper changes the subject inside a token's payload, keeping its
// signature: the forgery a visitor would try.
func tamper(t *testing.T, token string) string {
	parts := strings.Split(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), `"sub":"alice"`, `"sub":"bobby"`, 1)))
	return strings.Join(parts, ".")
}

func TestWhoMayCallWhat(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	now := time.Now()
	aliceToken := tokenFor(t, "alice", now, time.Hour)
	bobToken := tokenFor(t, "bob", now, time.Hour)
	credentials := map[string]string{
		"no credentials":           "",
		"unknown API key":          "key-nobody-0123456789abcdefghijklmnopqrs",
		"expired token":            tokenFor(t, "alice", now, -time.Hour),
		"tampered token":           tamper(t, aliceToken),
		"token of an unknown key":  foreignToken(t, "alice"),
		"unsigned token":           "eyJhbGciOiJub25lIn0." + strings.Split(aliceToken, ".")[1] + ".",
		"token of another subject": bobToken,
		"the subject's own token":  aliceToken,
	}

	type want struct {
		code codes.Code
		http int
	}
	unauthenticated, forbidden := want{codes.Unauthenticated, 401}, want{codes.PermissionDenied, 403}
	for _, e := range endpoints {
		ok := want{codes.OK, 200}
		if e.allowed != codes.OK {
			ok = want{e.allowed, e.allowedHTTP}
		}
		cases := map[string]want{
			"no credentials":           unauthenticated,
			"unknown API key":          unauthenticated,
			"expired token":            unauthenticated,
			"tampered token":           unauthenticated,
			"token of an unknown key":  unauthenticated,
			"unsigned token":           unauthenticated,
			"token of another subject": forbidden,
			"the subject's own token":  forbidden,
		}
		if e.public {
			// Anyone may call it; credentials, if sent, must still be valid.
			cases["no credentials"] = ok
			cases["token of another subject"] = ok
			cases["the subject's own token"] = ok
		}
		if e.visitor {
			cases["the subject's own token"] = ok
			if e.name == "GetPolicy" || e.name == "RefreshSubjectToken" || e.name == "GetCaller" {
				cases["token of another subject"] = ok // names no subject: any valid token will do
			}
		}
		if e.wrongScope != "" {
			credentials["API key without the scope"] = apiKeys[e.wrongScope]
			cases["API key without the scope"] = forbidden
		}
		for name, w := range cases {
			credential := credentials[name]
			t.Run(e.name+"/"+name, func(t *testing.T) {
				err := e.call(as(ctx(t), credential), srv.grpc)
				if code := status.Code(err); code != w.code {
					t.Errorf("gRPC: %v, want %v", err, w.code)
				}
				header := "Bearer " + credential
				if credential == "" {
					header = ""
				}
				status, body, _ := srv.rest(t, e.method, e.path, e.body, "Authorization", header)
				if status != w.http {
					t.Errorf("REST: %d %.200v, want %d", status, body, w.http)
				}
			})
		}
		delete(credentials, "API key without the scope")
	}

	logs := srv.logs.String()
	if !strings.Contains(logs, "subject token used for another subject") {
		t.Error("a token used on another subject is not logged")
	}
	for _, secret := range []string{aliceToken, bobToken, apiKeys["admin"], "alice", "bob"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs contain %q", secret)
		}
	}
}

func TestAnOperatorReadingHistoryMustSayWhyAndIsRecorded(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	if _, err := srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: "carol", Decisions: map[string]bool{"ads": true}}); err != nil {
		t.Fatal(err)
	}
	rights := as(ctx(t), apiKeys["rights"])
	for _, tc := range []struct{ name, reason string }{
		{"no reason", ""},
		{"a reason too long", strings.Repeat("x", 501)},
		{"a reason with control characters", "ticket\n4711"},
	} {
		_, err := srv.grpc.ListConsentEvents(rights, &consentv1.ListConsentEventsRequest{SubjectId: "carol", Reason: tc.reason})
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), "reason:") {
			t.Errorf("%s: %v, want InvalidArgument naming reason", tc.name, err)
		}
	}
	if code, body, _ := srv.rest(t, "GET", "/v1/subjects/carol/events", "", "Authorization", "Bearer "+apiKeys["rights"]); code != 400 || !strings.Contains(jsonPath(body, "message"), "reason") {
		t.Errorf("REST without a reason: %d %v", code, body)
	}

	if _, err := srv.grpc.ListConsentEvents(rights, &consentv1.ListConsentEventsRequest{SubjectId: "carol", Reason: "access request, ticket 4711"}); err != nil {
		t.Fatal(err)
	}
	// The person sees who looked and why; their own reading adds nothing.
	own := as(ctx(t), tokenFor(t, "carol", time.Now(), time.Hour))
	for range 2 {
		events, err := srv.grpc.ListConsentEvents(own, &consentv1.ListConsentEventsRequest{SubjectId: "carol"})
		if err != nil {
			t.Fatal(err)
		}
		if len(events.GetEvents()) != 2 {
			t.Fatalf("%d events, want the update and one access", len(events.GetEvents()))
		}
		access := events.GetEvents()[0]
		if access.GetType() != consentv1.EventType_EVENT_TYPE_ACCESS || access.GetActor() != "key:rights" ||
			access.GetReason() != "access request, ticket 4711" || access.GetPrevHash() != events.GetEvents()[1].GetHash() {
			t.Fatalf("access event = %v", access)
		}
	}
	// The access changed no decision.
	check, err := srv.grpc.CheckConsent(ctx(t), &consentv1.CheckConsentRequest{SubjectId: "carol", Purpose: "ads"})
	if err != nil || !check.GetAllowed() || check.GetRevision() != 2 {
		t.Fatalf("check after the access: %v %v", check, err)
	}

	// Looking up someone with no history records nothing about them.
	if _, err := srv.grpc.ListConsentEvents(rights, &consentv1.ListConsentEventsRequest{SubjectId: "nobody", Reason: "typo"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := srv.grpc.GetConsent(ctx(t), &consentv1.GetConsentRequest{SubjectId: "nobody"}); got.GetConsent().GetRevision() != 0 {
		t.Fatalf("a record was made for a subject with no history: %v", got)
	}
}

func TestDemoModeNeedsNoCredentialsButStillChecksThoseSent(t *testing.T) {
	srv := start(t, redistest.Start(t).URL(), func(c *config.Config) { c.Demo = true; c.APIKeysFile = "" })
	if !strings.Contains(srv.logs.String(), "DEMO MODE") {
		t.Error("consentd does not say it is in demo mode")
	}
	if _, err := srv.grpc.UpdateConsent(as(ctx(t), ""), &consentv1.UpdateConsentRequest{SubjectId: "d", Decisions: map[string]bool{"ads": true}}); err != nil {
		t.Fatalf("a write without credentials in demo mode: %v", err)
	}
	events, err := srv.grpc.ListConsentEvents(as(ctx(t), ""), &consentv1.ListConsentEventsRequest{SubjectId: "d"})
	if err != nil || events.GetEvents()[0].GetActor() != "demo" {
		t.Fatalf("the demo's write is recorded as %v, %v; want actor demo", events, err)
	}
	for name, credential := range map[string]string{"unknown API key": apiKeys["admin"], "tampered token": tamper(t, tokenFor(t, "alice", time.Now(), time.Hour))} {
		if _, err := srv.grpc.GetConsent(as(ctx(t), credential), &consentv1.GetConsentRequest{SubjectId: "d"}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s in demo mode: %v, want Unauthenticated", name, err)
		}
	}
	if _, err := srv.grpc.GetConsent(as(ctx(t), tokenFor(t, "bob", time.Now(), time.Hour)), &consentv1.GetConsentRequest{SubjectId: "d"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("another subject's token in demo mode: %v, want PermissionDenied", err)
	}
}

func TestDemoModeServesTheDemoSiteFromTheAPIOrigin(t *testing.T) {
	site := t.TempDir()
	writeFile(t, mkdir(t, site, "demo"), "index.html", []byte("<h1>shop</h1>"))
	writeFile(t, mkdir(t, site, "dist"), "consentd.iife.js", []byte("/* sdk */"))
	srv := start(t, redistest.Start(t).URL(), func(c *config.Config) { c.Demo = true; c.DemoSite = site })
	for path, want := range map[string]string{"/demo/": "<h1>shop</h1>", "/sdk/consentd.iife.js": "/* sdk */"} {
		resp, err := http.Get(srv.baseURL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != want {
			t.Errorf("GET %s = %d %q", path, resp.StatusCode, b)
		}
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(srv.baseURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/demo/" {
		t.Errorf("GET / = %d to %q, want a redirect to /demo/", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func mkdir(t *testing.T, parent, name string) string {
	t.Helper()
	dir := filepath.Join(parent, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
