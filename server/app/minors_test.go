package app

import (
	"fmt"
	"testing"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/internal/redistest"
)

// minorsAPI is what these tests do to a minor, over one transport.
type minorsAPI struct {
	markMinor, confirmGuardian func(t *testing.T, subject string)
	grant                      func(t *testing.T, subject, purpose string)
	link                       func(t *testing.T, user, visitor string)
	// check answers "allowed reason", e.g. "true REASON_EXPLICIT".
	check func(t *testing.T, subject, purpose string) string
}

func minorsOverGRPC(srv *consentd) minorsAPI {
	return minorsAPI{
		markMinor: func(t *testing.T, subject string) {
			must(srv.grpc.MarkMinor(as(ctx(t), apiKeys["write"]), &consentv1.MarkMinorRequest{SubjectId: subject, Minor: true})).ok(t)
		},
		confirmGuardian: func(t *testing.T, subject string) {
			must(srv.grpc.ConfirmGuardianConsent(as(ctx(t), apiKeys["write"]), &consentv1.ConfirmGuardianConsentRequest{SubjectId: subject, Guardian: "parent-77"})).ok(t)
		},
		grant: func(t *testing.T, subject, purpose string) {
			must(srv.grpc.UpdateConsent(as(ctx(t), apiKeys["write"]), &consentv1.UpdateConsentRequest{SubjectId: subject, Decisions: map[string]bool{purpose: true}})).ok(t)
		},
		link: func(t *testing.T, user, visitor string) {
			must(srv.grpc.LinkSubjects(as(ctx(t), apiKeys["write"]), &consentv1.LinkSubjectsRequest{SubjectId: user, VisitorId: visitor})).ok(t)
		},
		check: func(t *testing.T, subject, purpose string) string {
			c := must(srv.grpc.CheckConsent(as(ctx(t), apiKeys["check"]), &consentv1.CheckConsentRequest{SubjectId: subject, Purpose: purpose, Region: "DE"})).ok(t)
			return fmt.Sprint(c.GetAllowed(), " ", c.GetReason())
		},
	}
}

func minorsOverREST(srv *consentd) minorsAPI {
	call := func(t *testing.T, key, method, path, body string) map[string]any {
		t.Helper()
		code, resp, _ := srv.rest(t, method, path, body, "Authorization", "Bearer "+apiKeys[key])
		if code != 200 {
			t.Fatalf("%s %s: %d %v", method, path, code, resp)
		}
		return resp
	}
	return minorsAPI{
		markMinor: func(t *testing.T, subject string) {
			call(t, "write", "POST", "/v1/subjects/"+subject+":markMinor", `{"minor": true}`)
		},
		confirmGuardian: func(t *testing.T, subject string) {
			call(t, "write", "POST", "/v1/subjects/"+subject+":confirmGuardian", `{"guardian": "parent-77"}`)
		},
		grant: func(t *testing.T, subject, purpose string) {
			call(t, "write", "PATCH", "/v1/subjects/"+subject+"/consent", `{"decisions": {"`+purpose+`": true}}`)
		},
		link: func(t *testing.T, user, visitor string) {
			call(t, "write", "POST", "/v1/subjects/"+user+":link", `{"visitor_id": "`+visitor+`"}`)
		},
		check: func(t *testing.T, subject, purpose string) string {
			resp := call(t, "check", "GET", "/v1/subjects/"+subject+"/purposes/"+purpose+":check?region=DE", "")
			return jsonPath(resp, "allowed") + " " + jsonPath(resp, "reason")
		},
	}
}

// A guardian's confirmation covers exactly the decisions it saw. A grant
// written after it, even within the same second (as here, most of the
// time), awaits a new confirmation; the grants it saw count. Repeated, so
// that some rounds fall within one second whatever the machine's speed.
func TestMinorsGrantAfterTheConfirmationAwaitsAGuardianEvenInTheSameSecond(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	const (
		counts = "true REASON_EXPLICIT"
		awaits = "false REASON_AWAITING_GUARDIAN"
	)
	for name, api := range map[string]minorsAPI{"grpc": minorsOverGRPC(srv), "rest": minorsOverREST(srv)} {
		t.Run(name, func(t *testing.T) {
			for round := range 5 {
				subject := fmt.Sprintf("teen-%s-%d", name, round)
				api.markMinor(t, subject)
				api.grant(t, subject, "ads")
				api.confirmGuardian(t, subject)
				api.grant(t, subject, "analytics")
				for purpose, want := range map[string]string{"ads": counts, "analytics": awaits} {
					if got := api.check(t, subject, purpose); got != want {
						t.Errorf("round %d: %s is %q, want %q", round, purpose, got, want)
					}
				}
				// A new confirmation covers the later grant.
				api.confirmGuardian(t, subject)
				if got := api.check(t, subject, "analytics"); got != counts {
					t.Errorf("round %d: analytics after a second confirmation is %q, want %q", round, got, counts)
				}
			}
		})
	}
}

// Linking a visitor into a minor whose guardian has confirmed: the visitor's
// grants, merged after the confirmation, await a new one, however long ago
// the visitor made them.
func TestMinorsGrantsMergedByALinkAwaitAGuardian(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	for name, api := range map[string]minorsAPI{"grpc": minorsOverGRPC(srv), "rest": minorsOverREST(srv)} {
		t.Run(name, func(t *testing.T) {
			visitor := createVisitor(t, srv).GetSubjectId()
			api.grant(t, visitor, "ads") // before the confirmation, in time
			user := "teen-linked-" + name
			api.markMinor(t, user)
			api.grant(t, user, "analytics")
			api.confirmGuardian(t, user)
			api.link(t, user, visitor)
			if got, want := api.check(t, user, "ads"), "false REASON_AWAITING_GUARDIAN"; got != want {
				t.Errorf("the visitor's grant merged into the minor: %q, want %q", got, want)
			}
			if got, want := api.check(t, user, "analytics"), "true REASON_EXPLICIT"; got != want {
				t.Errorf("the user's confirmed grant: %q, want %q", got, want)
			}
		})
	}
}
