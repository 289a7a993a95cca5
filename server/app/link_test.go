package app

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/internal/redistest"
)

func TestLinkingAVisitorMergesIntoTheUserAndTheVisitorFollows(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	const user = "gina@example.com"
	visitor := createVisitor(t, srv)
	visitorCtx := as(ctx(t), visitor.GetToken().GetToken())
	// Before logging in, on the banner: analytics and ads yes, functional no.
	must(srv.grpc.UpdateConsent(visitorCtx, &consentv1.UpdateConsentRequest{SubjectId: visitor.GetSubjectId(),
		Decisions: map[string]bool{"analytics": true, "ads": true, "functional": false}, Source: consentv1.Source_SOURCE_BANNER})).ok(t)
	// The account said earlier: ads no, functional yes, marketing.email yes.
	update(t, srv, user, map[string]bool{"ads": false, "functional": true, "marketing.email": true})

	linked := must(srv.grpc.LinkSubjects(as(ctx(t), apiKeys["write"]), &consentv1.LinkSubjectsRequest{SubjectId: user, VisitorId: visitor.GetSubjectId()})).ok(t).GetConsent()
	for purpose, want := range map[string]bool{
		"ads":             false, // the user's denial beats the visitor's grant
		"analytics":       true,  // only the visitor decided
		"functional":      false, // the visitor's denial beats the user's grant
		"marketing.email": true,  // only the user decided
	} {
		p := purposeOf(t, linked, purpose)
		if p.GetDecision().GetGranted() != want {
			t.Errorf("%s after the link: %v, want granted=%v", purpose, p, want)
		}
	}
	if src := purposeOf(t, linked, "analytics").GetDecision().GetSource(); src != consentv1.Source_SOURCE_LINK {
		t.Errorf("a merged decision's source = %v, want LINK", src)
	}

	// The link is the newest event on both. The user's names the visitor;
	// the visitor's token reads that it is linked, not to whom
	// (TestLinkNeverShowsTheUserToTheVisitorsToken).
	for subject, other := range map[string]string{user: visitor.GetSubjectId(), visitor.GetSubjectId(): ""} {
		own := as(ctx(t), tokenFor(t, subject, time.Now(), time.Hour))
		events := must(srv.grpc.ListConsentEvents(own, &consentv1.ListConsentEventsRequest{SubjectId: subject})).ok(t).GetEvents()
		if events[0].GetType() != consentv1.EventType_EVENT_TYPE_LINK || events[0].GetLinkedSubjectId() != other {
			t.Errorf("%s's link event: %v", subject, events[0])
		}
	}

	// The visitor's reads and writes now follow the user's record.
	got := must(srv.grpc.GetConsent(visitorCtx, &consentv1.GetConsentRequest{SubjectId: visitor.GetSubjectId()})).ok(t).GetConsent()
	if !got.GetLinked() || got.GetRevision() != linked.GetRevision() || purposeOf(t, got, "marketing.email").GetDecision() == nil {
		t.Fatalf("the visitor reads %v, want the user's record", got)
	}
	must(srv.grpc.UpdateConsent(visitorCtx, &consentv1.UpdateConsentRequest{SubjectId: visitor.GetSubjectId(), Decisions: map[string]bool{"ads": true}})).ok(t)
	check := must(srv.grpc.CheckConsent(ctx(t), &consentv1.CheckConsentRequest{SubjectId: user, Purpose: "ads", Region: "DE"})).ok(t)
	if !check.GetAllowed() || check.GetRevision() != linked.GetRevision()+1 {
		t.Fatalf("the visitor's later choice did not reach the user: %v", check)
	}
	batch := must(srv.grpc.BatchCheckConsent(ctx(t), &consentv1.BatchCheckConsentRequest{Checks: []*consentv1.ConsentCheck{
		{SubjectId: visitor.GetSubjectId(), Purpose: "marketing.email", Region: "DE"}}})).ok(t)
	if r := batch.GetResults()[0]; !r.GetAllowed() || r.GetRevision() != check.GetRevision() {
		t.Fatalf("a batch check of the visitor: %v, want the user's answer", r)
	}

	// Linking again merges nothing twice: the user's later choice stands.
	again := must(srv.grpc.LinkSubjects(ctx(t), &consentv1.LinkSubjectsRequest{SubjectId: user, VisitorId: visitor.GetSubjectId()})).ok(t).GetConsent()
	if again.GetRevision() != check.GetRevision() || !purposeOf(t, again, "ads").GetAllowed() {
		t.Fatalf("linking again changed the user: %v", again)
	}
}

func TestLinkingCarriesTheVisitorsStatuses(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	visitor := createVisitor(t, srv)
	// The browser sent a GPC signal before the login.
	code, body, _ := srv.rest(t, "PATCH", "/v1/subjects/"+visitor.GetSubjectId()+"/consent", `{"region": "US-CA"}`,
		"Authorization", "Bearer "+visitor.GetToken().GetToken(), "Sec-GPC", "1")
	if code != 200 {
		t.Fatalf("GPC report: %d %v", code, body)
	}
	linked := must(srv.grpc.LinkSubjects(ctx(t), &consentv1.LinkSubjectsRequest{SubjectId: "hank", VisitorId: visitor.GetSubjectId()})).ok(t).GetConsent()
	if linked.GetGpcTime() == nil {
		t.Fatalf("the visitor's GPC signal was not carried to the user: %v", linked)
	}
	check := must(srv.grpc.CheckConsent(ctx(t), &consentv1.CheckConsentRequest{SubjectId: "hank", Purpose: "ads", Region: "US-CA"})).ok(t)
	if check.GetAllowed() || check.GetReason() != consentv1.Reason_REASON_GPC {
		t.Fatalf("ads for the user in California after the link: %v, want denied by GPC", check)
	}
}

func TestLinkBadInputWritesNothing(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	visitor := createVisitor(t, srv)
	update(t, srv, visitor.GetSubjectId(), map[string]bool{"ads": true})
	for field, req := range map[string]*consentv1.LinkSubjectsRequest{
		"subject_id": {SubjectId: visitor.GetSubjectId(), VisitorId: visitor.GetSubjectId()},
		"visitor_id": {SubjectId: "ivan", VisitorId: "ivan-the-visitor"},
	} {
		_, err := srv.grpc.LinkSubjects(ctx(t), req)
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), field+":") {
			t.Errorf("%s: %v, want InvalidArgument naming it", field, err)
		}
	}
	if _, err := srv.grpc.LinkSubjects(ctx(t), &consentv1.LinkSubjectsRequest{SubjectId: "bad id", VisitorId: visitor.GetSubjectId()}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("bad user id: %v", err)
	}
	for _, subject := range []string{visitor.GetSubjectId(), "ivan"} {
		got := must(srv.grpc.GetConsent(ctx(t), &consentv1.GetConsentRequest{SubjectId: subject})).ok(t).GetConsent()
		if got.GetLinked() || (subject == "ivan") != (got.GetRevision() == 0) {
			t.Errorf("%s after refused links: %v", subject, got)
		}
	}
}

func TestMinorsGrantsAwaitAGuardian(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	backend := as(ctx(t), apiKeys["write"])
	check := func(purpose string) *consentv1.CheckConsentResponse {
		return must(srv.grpc.CheckConsent(ctx(t), &consentv1.CheckConsentRequest{SubjectId: "jo", Purpose: purpose, Region: "DE"})).ok(t)
	}
	marked := must(srv.grpc.MarkMinor(backend, &consentv1.MarkMinorRequest{SubjectId: "jo", Minor: true})).ok(t).GetConsent()
	if !marked.GetMinor() {
		t.Fatalf("after marking: %v", marked)
	}
	update(t, srv, "jo", map[string]bool{"ads": true, "analytics": false})
	if c := check("ads"); c.GetAllowed() || c.GetReason() != consentv1.Reason_REASON_AWAITING_GUARDIAN {
		t.Fatalf("a minor's grant before confirmation: %v", c)
	}
	if c := check("analytics"); c.GetAllowed() || c.GetReason() != consentv1.Reason_REASON_EXPLICIT {
		t.Fatalf("a minor's denial: %v", c)
	}

	code, body, _ := srv.rest(t, "POST", "/v1/subjects/jo:confirmGuardian", `{"guardian": "parent account 77"}`, "Authorization", "Bearer "+apiKeys["write"])
	if code != 200 || jsonPath(body, "consent.guardian_confirm_time") == "null" {
		t.Fatalf("confirm over REST: %d %v", code, body)
	}
	if c := check("ads"); !c.GetAllowed() || c.GetReason() != consentv1.Reason_REASON_EXPLICIT {
		t.Fatalf("the confirmed grant: %v", c)
	}
	// Who confirmed and when is in the history (opened for operators).
	events := must(srv.grpc.ListConsentEvents(as(ctx(t), apiKeys["rights"]), &consentv1.ListConsentEventsRequest{SubjectId: "jo", Reason: "audit"})).ok(t).GetEvents()
	if g := events[0]; g.GetType() != consentv1.EventType_EVENT_TYPE_GUARDIAN_CONFIRM || g.GetGuardian() != "parent account 77" || g.GetTime() == nil || g.GetActor() != "key:write" {
		t.Fatalf("guardian event: %v", g)
	}

	// A grant made after the confirmation needs a new one (in the same
	// second too: TestMinorsGrantAfterTheConfirmationAwaitsAGuardianEvenInTheSameSecond).
	update(t, srv, "jo", map[string]bool{"functional": true})
	if c := check("functional"); c.GetAllowed() || c.GetReason() != consentv1.Reason_REASON_AWAITING_GUARDIAN {
		t.Fatalf("a grant after the confirmation: %v", c)
	}
	// Clearing the mark (the person came of age) lets every grant count.
	must(srv.grpc.MarkMinor(backend, &consentv1.MarkMinorRequest{SubjectId: "jo", Minor: false})).ok(t)
	if c := check("functional"); !c.GetAllowed() {
		t.Fatalf("a grant after the mark was cleared: %v", c)
	}
}

func TestGuardianConfirmationBadInput(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	update(t, srv, "kim", map[string]bool{"ads": true})
	_, err := srv.grpc.ConfirmGuardianConsent(ctx(t), &consentv1.ConfirmGuardianConsentRequest{SubjectId: "kim", Guardian: "parent"})
	if st := status.Convert(err); st.Code() != codes.FailedPrecondition || !strings.HasPrefix(st.Message(), "subject_id:") {
		t.Errorf("confirming a subject who is not a minor: %v, want FailedPrecondition naming subject_id", err)
	}
	code, body, _ := srv.rest(t, "POST", "/v1/subjects/kim:confirmGuardian", `{"guardian": "parent"}`)
	if code != 412 {
		t.Errorf("over REST: %d %v, want 412", code, body)
	}
	must(srv.grpc.MarkMinor(ctx(t), &consentv1.MarkMinorRequest{SubjectId: "kim", Minor: true})).ok(t)
	for name, guardian := range map[string]string{"empty": "", "too long": strings.Repeat("g", 201), "control characters": "mum\n"} {
		_, err := srv.grpc.ConfirmGuardianConsent(ctx(t), &consentv1.ConfirmGuardianConsentRequest{SubjectId: "kim", Guardian: guardian})
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), "guardian:") {
			t.Errorf("%s guardian: %v", name, err)
		}
	}
	got := must(srv.grpc.GetConsent(ctx(t), &consentv1.GetConsentRequest{SubjectId: "kim"})).ok(t).GetConsent()
	if got.GetGuardianConfirmTime() != nil || got.GetRevision() != 2 {
		t.Errorf("refused confirmations wrote something: %v", got)
	}
}
