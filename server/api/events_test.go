package api

import (
	"reflect"
	"testing"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/store"
)

// An operator reading a history, or exporting a subject, leaves an event
// on the subject's own record (never its user's), with the reason given.
func TestOperatorReadsAreRecorded(t *testing.T) {
	fs := newFakeStore()
	fs.put("alice", domain.Record{Revision: 1})
	fs.events["alice"] = []store.Event{{Revision: 1, Type: domain.EventUpdate, At: testNow}}
	s := newTestServer(t, fs)

	if _, err := s.ListConsentEvents(asService(), &consentv1.ListConsentEventsRequest{SubjectId: "alice", Reason: "audit"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ExportSubject(asService(), &consentv1.ExportSubjectRequest{SubjectId: "alice", Reason: "request 12"}); err != nil {
		t.Fatal(err)
	}
	event := func(typ domain.EventType, reason string) store.EventInfo {
		return store.EventInfo{Type: typ, Actor: "key:backend", Source: domain.SourceAPI, PolicyVersion: "test-1", Channel: "grpc", Reason: reason}
	}
	want := []store.Write{
		{SubjectID: "alice", Event: event(domain.EventAccess, "audit"), Now: testNow},
		{SubjectID: "alice", Event: event(domain.EventExport, "request 12"), Now: testNow},
	}
	if !reflect.DeepEqual(fs.writes, want) {
		t.Errorf("writes\n%+v\nwant\n%+v", fs.writes, want)
	}
}

// A subject with nothing stored gets no event: a mistyped id must not
// create a record about nobody.
func TestOperatorReadsOfNobodyAreNotRecorded(t *testing.T) {
	fs := newFakeStore()
	s := newTestServer(t, fs)
	if _, err := s.ListConsentEvents(asService(), &consentv1.ListConsentEventsRequest{SubjectId: "nobody", Reason: "audit"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ExportSubject(asService(), &consentv1.ExportSubjectRequest{SubjectId: "nobody", Reason: "request 12"}); err != nil {
		t.Fatal(err)
	}
	if len(fs.writes) != 0 {
		t.Errorf("writes %+v, want none", fs.writes)
	}
}

func TestListConsentEventsNamesTheBadField(t *testing.T) {
	s := newTestServer(t, newFakeStore())
	_, err := s.ListConsentEvents(asService(), &consentv1.ListConsentEventsRequest{SubjectId: "alice"})
	wantField(t, err, "reason")
	_, err = s.ListConsentEvents(asVisitor("alice"), &consentv1.ListConsentEventsRequest{SubjectId: "alice", PageSize: MaxEventsPageSize + 1})
	wantField(t, err, "page_size")
	_, err = s.ListConsentEvents(asVisitor("alice"), &consentv1.ListConsentEventsRequest{SubjectId: "alice", PageToken: "nope"})
	wantField(t, err, "page_token")
}
