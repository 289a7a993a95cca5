package app

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/internal/redistest"
)

// After a link, the visitor's own token (the browser's) reads that it is
// linked, never whom to: the user id (an email address here) is in no
// answer it can get, over either transport. Operators with an API key still
// see both sides of the link.
func TestLinkNeverShowsTheUserToTheVisitorsToken(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())

	t.Run("grpc", func(t *testing.T) {
		const user = "olga.grpc@example.com"
		created := must(srv.grpc.CreateVisitor(as(ctx(t), ""), &consentv1.CreateVisitorRequest{})).ok(t)
		visitor := created.GetSubjectId()
		own := as(ctx(t), created.GetToken().GetToken())
		must(srv.grpc.UpdateConsent(own, &consentv1.UpdateConsentRequest{SubjectId: visitor, Decisions: map[string]bool{"ads": true}})).ok(t)
		must(srv.grpc.LinkSubjects(as(ctx(t), apiKeys["write"]), &consentv1.LinkSubjectsRequest{SubjectId: user, VisitorId: visitor})).ok(t)

		// Everything the visitor's token may call, answers and errors.
		seen := map[string]string{}
		answer := func(name string, m proto.Message, err error) {
			t.Helper()
			if err != nil {
				seen[name] = fmt.Sprint(status.Convert(err).Proto())
				return
			}
			seen[name] = protojson.Format(m)
		}
		consent, err := srv.grpc.GetConsent(own, &consentv1.GetConsentRequest{SubjectId: visitor})
		answer("GetConsent", consent, err)
		r1, err := srv.grpc.GetPolicy(own, &consentv1.GetPolicyRequest{})
		answer("GetPolicy", r1, err)
		r2, err := srv.grpc.UpdateConsent(own, &consentv1.UpdateConsentRequest{SubjectId: visitor, Decisions: map[string]bool{"analytics": true}, Region: "DE"})
		answer("UpdateConsent", r2, err)
		r3, err := srv.grpc.UpdateConsent(own, &consentv1.UpdateConsentRequest{SubjectId: visitor, Decisions: map[string]bool{"analytics": true}, ExpectedRevision: proto.Int64(1)})
		answer("UpdateConsent, a conflict", r3, err)
		r4, err := srv.grpc.WithdrawConsent(own, &consentv1.WithdrawConsentRequest{SubjectId: visitor, Purposes: []string{"ads"}})
		answer("WithdrawConsent", r4, err)
		events, err := srv.grpc.ListConsentEvents(own, &consentv1.ListConsentEventsRequest{SubjectId: visitor})
		answer("ListConsentEvents", events, err)
		export, err := srv.grpc.ExportSubject(own, &consentv1.ExportSubjectRequest{SubjectId: visitor})
		answer("ExportSubject", export, err)
		r5, err := srv.grpc.RefreshSubjectToken(own, &consentv1.RefreshSubjectTokenRequest{})
		answer("RefreshSubjectToken", r5, err)

		// The link is still visible.
		if !consent.GetConsent().GetLinked() || !export.GetConsent().GetLinked() {
			t.Errorf("the visitor does not read that it is linked: consent %v, export %v", consent.GetConsent(), export.GetConsent())
		}
		for name, evs := range map[string][]*consentv1.ConsentEvent{"events": events.GetEvents(), "export": export.GetEvents()} {
			if link := linkEvent(evs); link == nil || link.GetLinkedSubjectId() != "" {
				t.Errorf("%s: the link event is %v, want one without the counterpart", name, link)
			}
		}
		// Operators see whom to.
		rights := as(ctx(t), apiKeys["rights"])
		opEvents := must(srv.grpc.ListConsentEvents(rights, &consentv1.ListConsentEventsRequest{SubjectId: visitor, Reason: "ticket 21"})).ok(t)
		opExport := must(srv.grpc.ExportSubject(rights, &consentv1.ExportSubjectRequest{SubjectId: visitor, Reason: "ticket 22"})).ok(t)
		for name, evs := range map[string][]*consentv1.ConsentEvent{"operator's events": opEvents.GetEvents(), "operator's export": opExport.GetEvents()} {
			if link := linkEvent(evs); link.GetLinkedSubjectId() != user {
				t.Errorf("%s: the link event is %v, want it to name %s", name, link, user)
			}
		}

		erased, err := srv.grpc.EraseSubject(own, &consentv1.EraseSubjectRequest{SubjectId: visitor})
		answer("EraseSubject", erased, err)
		for name, text := range seen {
			if strings.Contains(text, user) || strings.Contains(text, "olga.grpc") {
				t.Errorf("%s shows the visitor's token the user id: %s", name, text)
			}
		}
	})

	t.Run("rest", func(t *testing.T) {
		const user = "olga.rest@example.com"
		code, body, _ := srv.rest(t, "POST", "/v1/visitors", `{}`, "Authorization", "")
		if code != 200 {
			t.Fatalf("POST /v1/visitors: %d %v", code, body)
		}
		visitor, token := jsonPath(body, "subject_id"), jsonPath(body, "token.token")
		bearer := []string{"Authorization", "Bearer " + token}
		subject := "/v1/subjects/" + visitor
		if code, body, _ := srv.rest(t, "PATCH", subject+"/consent", `{"decisions": {"ads": true}}`, bearer...); code != 200 {
			t.Fatalf("the visitor's choice: %d %v", code, body)
		}
		if code, body, _ := srv.rest(t, "POST", "/v1/subjects/"+user+":link", `{"visitor_id": "`+visitor+`"}`, "Authorization", "Bearer "+apiKeys["write"]); code != 200 {
			t.Fatalf("link: %d %v", code, body)
		}

		seen := map[string][]byte{}
		call := func(method, path, body string) []byte {
			t.Helper()
			code, raw, h := srv.restRaw(t, method, path, body, bearer...)
			seen[method+" "+path+" -> "+fmt.Sprint(code)] = append(raw, []byte(fmt.Sprint(h))...)
			return raw
		}
		consent := call("GET", subject+"/consent", "")
		call("GET", "/v1/policy", "")
		call("PATCH", subject+"/consent", `{"decisions": {"analytics": true}, "region": "DE"}`)
		call("PATCH", subject+"/consent", `{"decisions": {"analytics": true}, "expected_revision": "1"}`)
		call("POST", subject+"/consent:withdraw", `{"purposes": ["ads"]}`)
		events := call("GET", subject+"/events", "")
		export := call("GET", subject+":export", "")
		call("POST", "/v1/tokens:refresh", `{}`)

		for name, raw := range map[string][]byte{"consent": consent, "export": export} {
			if !strings.Contains(string(raw), `"linked":true`) {
				t.Errorf("%s does not say the visitor is linked: %s", name, raw)
			}
		}
		for name, raw := range map[string][]byte{"events": events, "export": export} {
			if !strings.Contains(string(raw), `"type":"EVENT_TYPE_LINK"`) || !strings.Contains(string(raw), `"linked_subject_id":""`) {
				t.Errorf("%s: want a link event without the counterpart: %s", name, raw)
			}
		}
		for _, path := range []string{subject + "/events?reason=ticket%2031", subject + ":export?reason=ticket%2032"} {
			if code, raw, _ := srv.restRaw(t, "GET", path, "", "Authorization", "Bearer "+apiKeys["rights"]); code != 200 || !strings.Contains(string(raw), `"linked_subject_id":"`+user+`"`) {
				t.Errorf("an operator's GET %s: %d %s, want the link event to name %s", path, code, raw, user)
			}
		}

		call("POST", subject+":erase", `{}`)
		for name, raw := range seen {
			if strings.Contains(string(raw), user) || strings.Contains(string(raw), "olga.rest") {
				t.Errorf("%s shows the visitor's token the user id: %s", name, raw)
			}
			if strings.HasSuffix(name, "-> 500") || strings.HasSuffix(name, "-> 401") || strings.HasSuffix(name, "-> 403") {
				t.Errorf("%s: the visitor's token was refused or failed", name)
			}
		}
	})
}

func linkEvent(events []*consentv1.ConsentEvent) *consentv1.ConsentEvent {
	for _, e := range events {
		if e.GetType() == consentv1.EventType_EVENT_TYPE_LINK {
			return e
		}
	}
	return nil
}
