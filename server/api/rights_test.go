package api

import (
	"reflect"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/auth"
	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/store"
)

// Erasing a user erases the visitors linked to it, except one linked to
// someone else since; erasing a visitor leaves its user alone.
func TestEraseSubjectCascadesToLinkedVisitors(t *testing.T) {
	fs := newFakeStore()
	stillLinked, relinked := auth.NewVisitorID(), auth.NewVisitorID()
	fs.put("alice", domain.Record{Revision: 4})
	fs.put(stillLinked, domain.Record{Revision: 2, LinkedTo: "alice"})
	fs.put(relinked, domain.Record{Revision: 3, LinkedTo: "bob"})
	fs.visitors["alice"] = []string{stillLinked, relinked}
	s := newTestServer(t, fs)

	resp, err := s.EraseSubject(asService(), &consentv1.EraseSubjectRequest{SubjectId: "alice", Reason: "ticket 7"})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.GetErased() || resp.GetLinkedSubjectsErased() != 1 || !slices.Equal(resp.GetLinkedSubjectIds(), []string{stillLinked}) {
		t.Errorf("EraseSubject = %v, want erased with 1 linked subject, %s", resp, stillLinked)
	}
	if want := []string{"alice", stillLinked}; !slices.Equal(fs.erased, want) {
		t.Errorf("erased %v, want %v", fs.erased, want)
	}
	if _, ok := fs.records[relinked]; !ok {
		t.Error("the visitor linked to someone else was erased")
	}
}

func TestEraseVisitorLeavesItsUser(t *testing.T) {
	fs := newFakeStore()
	visitor := auth.NewVisitorID()
	fs.put("alice", domain.Record{Revision: 4})
	fs.put(visitor, domain.Record{Revision: 2, LinkedTo: "alice"})
	// Even if the store named a linked visitor for it, a visitor's erasure
	// does not follow links.
	fs.visitors[visitor] = []string{auth.NewVisitorID()}
	s := newTestServer(t, fs)

	resp, err := s.EraseSubject(asVisitor(visitor), &consentv1.EraseSubjectRequest{SubjectId: visitor})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetLinkedSubjectsErased() != 0 || !slices.Equal(fs.erased, []string{visitor}) {
		t.Errorf("erased %v (%d linked), want only the visitor", fs.erased, resp.GetLinkedSubjectsErased())
	}
}

func TestEraseSubjectStopsAtAStoreError(t *testing.T) {
	fs := newFakeStore()
	fs.err = errUnavailable
	s := newTestServer(t, fs)
	_, err := s.EraseSubject(asService(), &consentv1.EraseSubjectRequest{SubjectId: "alice", Reason: "ticket 7"})
	wantStatus(t, err, codes.Unavailable, "the consent store is unavailable; retry later")
}

func TestRestrictAndLiftWrite(t *testing.T) {
	fs := newFakeStore()
	s := newTestServer(t, fs)
	event := func(typ domain.EventType, reason string) store.EventInfo {
		return store.EventInfo{Type: typ, Actor: "key:backend", Source: domain.SourceAPI, PolicyVersion: "test-1", Channel: "grpc", Reason: reason}
	}

	restricted, err := s.RestrictProcessing(asService(), &consentv1.RestrictProcessingRequest{SubjectId: "alice", Reason: "dispute"})
	if err != nil {
		t.Fatal(err)
	}
	if got := restricted.GetConsent(); got.GetRestrictTime() == nil || got.GetPurposes()[1].GetReason() != consentv1.Reason_REASON_RESTRICTED {
		t.Errorf("consent after restricting: %v", got)
	}
	lifted, err := s.LiftRestriction(asService(), &consentv1.LiftRestrictionRequest{SubjectId: "alice", Reason: "resolved"})
	if err != nil {
		t.Fatal(err)
	}
	if got := lifted.GetConsent(); got.GetRestrictTime() != nil {
		t.Errorf("consent after lifting: %v", got)
	}
	want := []store.Write{
		{SubjectID: "alice", Restrict: ptr(true), FollowLink: true, Event: event(domain.EventRestrict, "dispute"), Now: testNow},
		{SubjectID: "alice", Restrict: ptr(false), FollowLink: true, Event: event(domain.EventLift, "resolved"), Now: testNow},
	}
	if !reflect.DeepEqual(fs.writes, want) {
		t.Errorf("writes\n%+v\nwant\n%+v", fs.writes, want)
	}
}

func TestRightsRequestsNameTheBadField(t *testing.T) {
	s := newTestServer(t, newFakeStore())
	_, err := s.RestrictProcessing(asService(), &consentv1.RestrictProcessingRequest{SubjectId: "alice"})
	wantField(t, err, "reason")
	_, err = s.LiftRestriction(asService(), &consentv1.LiftRestrictionRequest{SubjectId: "", Reason: "x"})
	wantField(t, err, "subject_id")
	// An operator must say why it erases; the person erasing itself need not.
	_, err = s.EraseSubject(asService(), &consentv1.EraseSubjectRequest{SubjectId: "alice"})
	wantField(t, err, "reason")
	if _, err := s.EraseSubject(asVisitor("alice"), &consentv1.EraseSubjectRequest{SubjectId: "alice"}); err != nil {
		t.Errorf("a person erasing itself without a reason: %v", err)
	}
}
