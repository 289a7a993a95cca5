package api

import (
	"reflect"
	"testing"

	"google.golang.org/grpc/codes"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/store"
)

func TestMarkMinorWrites(t *testing.T) {
	for _, minor := range []bool{true, false} {
		fs := newFakeStore()
		s := newTestServer(t, fs)
		if _, err := s.MarkMinor(asService(), &consentv1.MarkMinorRequest{SubjectId: "alice", Minor: minor}); err != nil {
			t.Fatal(err)
		}
		want := []store.Write{{
			SubjectID: "alice", Minor: ptr(minor), FollowLink: true, Now: testNow,
			Event: store.EventInfo{Type: domain.EventMinor, Actor: "key:backend", Source: domain.SourceAPI,
				PolicyVersion: "test-1", Channel: "grpc", Minor: ptr(minor)},
		}}
		if !reflect.DeepEqual(fs.writes, want) {
			t.Errorf("minor %v: writes\n%+v\nwant\n%+v", minor, fs.writes, want)
		}
	}
}

// A guardian's confirmation is written against the revision just read, so
// it covers exactly the decisions the guardian was shown.
func TestConfirmGuardianConsentWrites(t *testing.T) {
	fs := newFakeStore()
	fs.put("kid", domain.Record{Revision: 5, MinorSince: testNow.AddDate(0, -1, 0)})
	s := newTestServer(t, fs)
	resp, err := s.ConfirmGuardianConsent(asService(), &consentv1.ConfirmGuardianConsentRequest{SubjectId: "kid", Guardian: "parent-42"})
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Write{{
		SubjectID: "kid", GuardianConfirmed: true, ExpectedRevision: ptr(int64(5)), FollowLink: true, Now: testNow,
		Event: store.EventInfo{Type: domain.EventGuardian, Actor: "key:backend", Source: domain.SourceAPI,
			PolicyVersion: "test-1", Channel: "grpc", Guardian: "parent-42"},
	}}
	if !reflect.DeepEqual(fs.writes, want) {
		t.Errorf("writes\n%+v\nwant\n%+v", fs.writes, want)
	}
	if resp.GetConsent().GetGuardianConfirmTime() == nil {
		t.Errorf("no guardian confirmation in %v", resp.GetConsent())
	}
}

func TestConfirmGuardianConsentNeedsAMinor(t *testing.T) {
	fs := newFakeStore()
	fs.put("alice", domain.Record{Revision: 5})
	s := newTestServer(t, fs)
	_, err := s.ConfirmGuardianConsent(asService(), &consentv1.ConfirmGuardianConsentRequest{SubjectId: "alice", Guardian: "parent-42"})
	st := wantStatus(t, err, codes.FailedPrecondition, "subject_id: the subject is not marked as a minor (MarkMinor first)")
	if v := violations(st); len(v) != 1 || v[0].GetField() != "subject_id" {
		t.Errorf("field violations %v", v)
	}
	if len(fs.writes) != 0 {
		t.Errorf("writes %+v, want none", fs.writes)
	}
}

func TestConfirmGuardianConsentNamesTheBadField(t *testing.T) {
	s := newTestServer(t, newFakeStore())
	for _, guardian := range []string{"", "tab\there"} {
		_, err := s.ConfirmGuardianConsent(asService(), &consentv1.ConfirmGuardianConsentRequest{SubjectId: "kid", Guardian: guardian})
		wantField(t, err, "guardian")
	}
}
