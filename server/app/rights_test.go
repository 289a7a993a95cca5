package app

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/internal/redistest"
	"github.com/consentd/consentd/server/keys"
)

// The privacy rights, end to end over gRPC and REST against a real Redis.

func TestExportHoldsEveryChangeAndEveryOperatorAccess(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	own := tokenFor(t, "dana", time.Now(), time.Hour)
	// Changes through the banner (REST, with a browser's facts), a
	// rectification, an objection, an operator's read and a restriction.
	for _, body := range []string{`{"decisions": {"ads": true, "analytics": true}, "source": "SOURCE_BANNER"}`, `{"decisions": {"ads": false}}`} {
		if code, resp, _ := srv.rest(t, "PATCH", "/v1/subjects/dana/consent", body, "Authorization", "Bearer "+own, "User-Agent", "TestBrowser/1.0"); code != 200 {
			t.Fatalf("update: %d %v", code, resp)
		}
	}
	rights := as(ctx(t), apiKeys["rights"])
	must(srv.grpc.WithdrawConsent(ctx(t), &consentv1.WithdrawConsentRequest{SubjectId: "dana"})).ok(t)
	must(srv.grpc.ListConsentEvents(rights, &consentv1.ListConsentEventsRequest{SubjectId: "dana", Reason: "ticket 11"})).ok(t)
	must(srv.grpc.RestrictProcessing(rights, &consentv1.RestrictProcessingRequest{SubjectId: "dana", Reason: "ticket 12"})).ok(t)

	export, err := srv.grpc.ExportSubject(rights, &consentv1.ExportSubjectRequest{SubjectId: "dana", Reason: "access request, ticket 13"})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range export.GetEvents() {
		types = append(types, strings.TrimPrefix(e.GetType().String(), "EVENT_TYPE_"))
	}
	if want := "UPDATE UPDATE WITHDRAW ACCESS RESTRICT EXPORT"; strings.Join(types, " ") != want {
		t.Fatalf("exported events %v, want %s (oldest first, the export itself last)", types, want)
	}
	events := export.GetEvents()
	if events[0].GetClient() != "ua=TestBrowser/1.0" || events[0].GetSource() != consentv1.Source_SOURCE_BANNER {
		t.Errorf("the banner event's client facts are not opened: %v", events[0])
	}
	// The rectification keeps the old value.
	if c := events[1].GetChanges(); len(c) != 1 || c[0].GetPurpose() != "ads" || !c[0].GetOldGranted() || c[0].GetNewGranted() {
		t.Errorf("the rectification's change: %v, want ads granted -> denied", c)
	}
	for i, want := range map[int]string{3: "ticket 11", 4: "ticket 12", 5: "access request, ticket 13"} {
		if events[i].GetReason() != want || events[i].GetActor() != "key:rights" {
			t.Errorf("event %d: actor %q reason %q, want key:rights %q", i, events[i].GetActor(), events[i].GetReason(), want)
		}
	}
	if c := export.GetChain(); !c.GetValid() || c.GetEventsChecked() != 6 {
		t.Errorf("chain = %v, want valid over 6 events", c)
	}
	if v := export.GetPolicyVersions(); len(v) != 1 || v[0] != export.GetPolicy().GetVersion() {
		t.Errorf("policy versions = %v", v)
	}
	if c := export.GetConsent(); c.GetRevision() != 6 || c.GetRestrictTime() == nil || purposeOf(t, c, "ads").GetDecision().GetGranted() {
		t.Errorf("exported consent = %v", c)
	}

	// The person exports their own data over REST, without a reason; it is
	// recorded with them as the actor.
	code, body, _ := srv.rest(t, "GET", "/v1/subjects/dana:export", "", "Authorization", "Bearer "+own)
	if code != 200 || jsonPath(body, "events.6.type") != "EVENT_TYPE_EXPORT" || jsonPath(body, "events.6.actor") != "visitor" || jsonPath(body, "chain.valid") != "true" {
		t.Fatalf("own export over REST: %d %v", code, body)
	}
}

func TestExportReportsABrokenChain(t *testing.T) {
	redisSrv := redistest.Start(t)
	srv := start(t, redisSrv.URL())
	for _, ads := range []bool{true, false, true} {
		must(srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: "eve", Decisions: map[string]bool{"ads": ads}})).ok(t)
	}
	// Someone edits the second event in Redis.
	client := redisSrv.Client(t)
	history := client.Keys(ctx(t), "*:h:"+keyID(t, "eve")).Val()
	if len(history) != 1 {
		t.Fatalf("history keys: %v", history)
	}
	event := client.LIndex(ctx(t), history[0], 1).Val()
	client.LSet(ctx(t), history[0], 1, strings.Replace(event, `"n":{"ads":"d"}`, `"n":{"ads":"g"}`, 1))

	export, err := srv.grpc.ExportSubject(ctx(t), &consentv1.ExportSubjectRequest{SubjectId: "eve", Reason: "audit"})
	if err != nil {
		t.Fatal(err)
	}
	if c := export.GetChain(); c.GetValid() || c.GetFirstInvalidRevision() != 2 || !strings.Contains(c.GetProblem(), "hash") {
		t.Fatalf("chain = %v, want invalid at revision 2", c)
	}
}

func TestExportBadInputAndUnknownSubjects(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	rights := as(ctx(t), apiKeys["rights"])
	for name, req := range map[string]*consentv1.ExportSubjectRequest{
		"reason":     {SubjectId: "dana"},
		"subject_id": {SubjectId: "bad id", Reason: "audit"},
	} {
		_, err := srv.grpc.ExportSubject(rights, req)
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), name+":") {
			t.Errorf("%s: %v, want InvalidArgument naming it", name, err)
		}
	}
	// Nothing is recorded about a subject never stored.
	export, err := srv.grpc.ExportSubject(rights, &consentv1.ExportSubjectRequest{SubjectId: "nobody", Reason: "typo"})
	if err != nil || len(export.GetEvents()) != 0 || export.GetConsent().GetRevision() != 0 || !export.GetChain().GetValid() {
		t.Fatalf("export of nobody = %v, %v", export, err)
	}
	if got := must(srv.grpc.GetConsent(ctx(t), &consentv1.GetConsentRequest{SubjectId: "nobody"})).ok(t); got.GetConsent().GetRevision() != 0 {
		t.Fatalf("the export created a record: %v", got)
	}
}

func TestEraseLeavesNothingReadableAboutTheSubjectOrItsVisitors(t *testing.T) {
	redisSrv := redistest.Start(t)
	srv := start(t, redisSrv.URL())
	const user = "erin@example.com"
	visitor := createVisitor(t, srv)
	// The visitor chooses on the banner, logs in, and the user keeps
	// changing things, with idempotency keys too.
	update(t, srv, visitor.GetSubjectId(), map[string]bool{"analytics": true})
	must(srv.grpc.LinkSubjects(ctx(t), &consentv1.LinkSubjectsRequest{SubjectId: user, VisitorId: visitor.GetSubjectId()})).ok(t)
	must(srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: user, Decisions: map[string]bool{"ads": true}, IdempotencyKey: "req-" + user})).ok(t)
	must(srv.grpc.ListConsentEvents(as(ctx(t), apiKeys["rights"]), &consentv1.ListConsentEventsRequest{SubjectId: user, Reason: "ticket 20"})).ok(t)
	must(srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: "bystander", Decisions: map[string]bool{"ads": true}})).ok(t)

	client := redisSrv.Client(t)
	// The scan below sees the subjects' key names while they exist.
	if before := dumpRedis(t, client); !strings.Contains(before, keyID(t, user)) || !strings.Contains(before, keyID(t, visitor.GetSubjectId())) {
		t.Fatal("the subjects' hashed keys are not in the dump before the erasure")
	}

	code, body, _ := srv.rest(t, "POST", "/v1/subjects/"+user+":erase", `{"reason": "erasure request, ticket 21"}`, "Authorization", "Bearer "+apiKeys["rights"])
	if code != 200 || jsonPath(body, "erased") != "true" || jsonPath(body, "linked_subjects_erased") != "1" {
		t.Fatalf("erase: %d %v", code, body)
	}

	dump := dumpRedis(t, client)
	for _, subject := range []string{user, visitor.GetSubjectId()} {
		for what, needle := range map[string]string{"raw id": subject, "hashed key": keyID(t, subject)} {
			if strings.Contains(dump, needle) {
				t.Errorf("Redis still holds the %s of %s", what, subject)
			}
		}
	}
	for _, subject := range []string{user, visitor.GetSubjectId()} {
		got := must(srv.grpc.GetConsent(ctx(t), &consentv1.GetConsentRequest{SubjectId: subject})).ok(t)
		events := must(srv.grpc.ListConsentEvents(ctx(t), &consentv1.ListConsentEventsRequest{SubjectId: subject, Reason: "check"})).ok(t)
		if got.GetConsent().GetRevision() != 0 || got.GetConsent().GetLinked() || len(events.GetEvents()) != 0 {
			t.Errorf("%s after erasure: %v, %d events", subject, got, len(events.GetEvents()))
		}
	}
	if got := must(srv.grpc.GetConsent(ctx(t), &consentv1.GetConsentRequest{SubjectId: "bystander"})).ok(t); got.GetConsent().GetRevision() != 1 {
		t.Errorf("the bystander was touched: %v", got)
	}
	// Two anonymous tombstones remain, with the time, actor and reason.
	stones := ""
	for _, key := range client.Keys(ctx(t), "*:tomb").Val() {
		stones += strings.Join(client.LRange(ctx(t), key, 0, -1).Val(), "\n") + "\n"
	}
	if strings.Count(stones, `"why":"erasure request, ticket 21"`) != 2 || strings.Count(stones, `"a":"key:rights"`) != 2 {
		t.Errorf("tombstones: %s", stones)
	}

	// Erasing again is fine and changes nothing.
	again := must(srv.grpc.EraseSubject(as(ctx(t), apiKeys["rights"]), &consentv1.EraseSubjectRequest{SubjectId: user, Reason: "ticket 21, again"})).ok(t)
	if again.GetErased() || again.GetLinkedSubjectsErased() != 0 {
		t.Errorf("second erasure = %v", again)
	}
}

func TestAVisitorErasesItselfWithItsToken(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	visitor := createVisitor(t, srv)
	update(t, srv, visitor.GetSubjectId(), map[string]bool{"ads": true})
	code, body, _ := srv.rest(t, "POST", "/v1/subjects/"+visitor.GetSubjectId()+":erase", `{}`, "Authorization", "Bearer "+visitor.GetToken().GetToken())
	if code != 200 || jsonPath(body, "erased") != "true" {
		t.Fatalf("erase with the visitor's token: %d %v", code, body)
	}
	// An operator must say why.
	code, body, _ = srv.rest(t, "POST", "/v1/subjects/someone:erase", `{}`, "Authorization", "Bearer "+apiKeys["rights"])
	if code != 400 || !strings.HasPrefix(jsonPath(body, "message"), "reason:") {
		t.Fatalf("erase by an operator without a reason: %d %v", code, body)
	}
}

func TestRestrictionDeniesEverythingNonNecessaryUntilLifted(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	rights := as(ctx(t), apiKeys["rights"])
	update(t, srv, "frank", map[string]bool{"ads": true})
	check := func() *consentv1.CheckConsentResponse {
		return must(srv.grpc.CheckConsent(ctx(t), &consentv1.CheckConsentRequest{SubjectId: "frank", Purpose: "ads", Region: "DE"})).ok(t)
	}

	restricted := must(srv.grpc.RestrictProcessing(rights, &consentv1.RestrictProcessingRequest{SubjectId: "frank", Reason: "disputed accuracy, ticket 30"})).ok(t)
	if restricted.GetConsent().GetRestrictTime() == nil || purposeOf(t, restricted.GetConsent(), "necessary").GetReason() != consentv1.Reason_REASON_NECESSARY {
		t.Fatalf("after restricting: %v", restricted)
	}
	if c := check(); c.GetAllowed() || c.GetReason() != consentv1.Reason_REASON_RESTRICTED {
		t.Fatalf("check while restricted: %v", c)
	}
	// The person may still change their choices; they count once lifted.
	update(t, srv, "frank", map[string]bool{"analytics": true})
	code, body, _ := srv.rest(t, "POST", "/v1/subjects/frank:liftRestriction", `{"reason": "resolved, ticket 30"}`, "Authorization", "Bearer "+apiKeys["rights"])
	if code != 200 || jsonPath(body, "consent.restrict_time") != "null" {
		t.Fatalf("lift over REST: %d %v", code, body)
	}
	if c := check(); !c.GetAllowed() || c.GetReason() != consentv1.Reason_REASON_EXPLICIT {
		t.Fatalf("check after lifting: %v", c)
	}

	for name, call := range map[string]func() error{
		"restrict without a reason": func() error {
			_, err := srv.grpc.RestrictProcessing(rights, &consentv1.RestrictProcessingRequest{SubjectId: "frank"})
			return err
		},
		"lift without a reason": func() error {
			_, err := srv.grpc.LiftRestriction(rights, &consentv1.LiftRestrictionRequest{SubjectId: "frank"})
			return err
		},
	} {
		if st := status.Convert(call()); st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), "reason:") {
			t.Errorf("%s: %v", name, st)
		}
	}
	if _, err := srv.grpc.RestrictProcessing(rights, &consentv1.RestrictProcessingRequest{SubjectId: "bad id", Reason: "x"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("bad subject id: %v", err)
	}
}

// helpers

// must(call()).ok(t) is call's result, failing the test on an error.
func must[T any](v T, err error) result[T] { return result[T]{v, err} }

type result[T any] struct {
	v   T
	err error
}

func (r result[T]) ok(t *testing.T) T {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.v
}

func createVisitor(t *testing.T, srv *consentd) *consentv1.CreateVisitorResponse {
	t.Helper()
	return must(srv.grpc.CreateVisitor(ctx(t), &consentv1.CreateVisitorRequest{})).ok(t)
}

// update writes decisions as the subject itself, through the banner.
func update(t *testing.T, srv *consentd, subject string, decisions map[string]bool) *consentv1.Consent {
	t.Helper()
	token := tokenFor(t, subject, time.Now(), time.Hour)
	return must(srv.grpc.UpdateConsent(as(ctx(t), token), &consentv1.UpdateConsentRequest{SubjectId: subject, Decisions: decisions, Source: consentv1.Source_SOURCE_BANNER})).ok(t).GetConsent()
}

// keyID is the hashed id in the subject's Redis key names (store/keys.go).
func keyID(t *testing.T, subject string) string {
	t.Helper()
	set, err := keys.Parse([]byte(testKeys))
	if err != nil {
		t.Fatal(err)
	}
	mac := hmac.New(sha256.New, set.ActiveHMAC().Secret)
	mac.Write([]byte(subject))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:16])
}

// dumpRedis is every key and value in Redis as text.
func dumpRedis(t *testing.T, client *redis.Client) string {
	t.Helper()
	var b strings.Builder
	for _, key := range client.Keys(ctx(t), "*").Val() {
		fmt.Fprintln(&b, key)
		switch client.Type(ctx(t), key).Val() {
		case "string":
			fmt.Fprintln(&b, client.Get(ctx(t), key).Val())
		case "hash":
			fmt.Fprintln(&b, client.HGetAll(ctx(t), key).Val())
		case "list":
			fmt.Fprintln(&b, client.LRange(ctx(t), key, 0, -1).Val())
		case "set":
			fmt.Fprintln(&b, client.SMembers(ctx(t), key).Val())
		case "zset":
			fmt.Fprintln(&b, client.ZRange(ctx(t), key, 0, -1).Val())
		case "stream":
			fmt.Fprintln(&b, client.XRange(ctx(t), key, "-", "+").Val())
		}
	}
	return b.String()
}

func TestAMissingReasonIsExplainedForTheCallMade(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	for _, tc := range []struct{ path, want string }{
		{"/v1/subjects/someone/events", "reason: required with an API key: say why you read this person's history"},
		{"/v1/subjects/someone:export", "reason: required with an API key: say why you export this person's data"},
		{"/v1/subjects/someone:erase", "reason: required with an API key: say why you erase this person"},
		{"/v1/subjects/someone:restrict", "reason: required: say why you restrict the processing of this person's data"},
		{"/v1/subjects/someone:liftRestriction", "reason: required: say why you lift the restriction on this person's data"},
	} {
		method, body := "POST", `{}`
		if strings.HasSuffix(tc.path, "/events") || strings.HasSuffix(tc.path, ":export") {
			method, body = "GET", ""
		}
		code, out, _ := srv.rest(t, method, tc.path, body, "Authorization", "Bearer "+apiKeys["rights"])
		if code != 400 || !strings.HasPrefix(jsonPath(out, "message"), tc.want) {
			t.Errorf("%s %s without a reason: %d %q; want 400 %q", method, tc.path, code, jsonPath(out, "message"), tc.want)
		}
	}
}
