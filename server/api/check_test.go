package api

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/domain"
)

func TestCheckConsentFailsClosedWhenStoreUnavailable(t *testing.T) {
	fs := newFakeStore()
	fs.err = errUnavailable
	s := newTestServer(t, fs)
	cases := []struct {
		purpose string
		want    *consentv1.CheckConsentResponse
	}{
		{"necessary", &consentv1.CheckConsentResponse{Allowed: true, Reason: consentv1.Reason_REASON_NECESSARY}},
		{"ads", &consentv1.CheckConsentResponse{Allowed: false, Reason: consentv1.Reason_REASON_STORE_UNAVAILABLE}},
	}
	for _, tc := range cases {
		got, err := s.CheckConsent(asService(), &consentv1.CheckConsentRequest{SubjectId: "alice", Purpose: tc.purpose})
		if err != nil {
			t.Fatalf("%s: %v, want a fail-closed answer", tc.purpose, err)
		}
		if got.GetAllowed() != tc.want.GetAllowed() || got.GetReason() != tc.want.GetReason() || got.GetRevision() != 0 {
			t.Errorf("%s: %v, want %v at revision 0", tc.purpose, got, tc.want)
		}
	}
}

func TestBatchCheckConsentFailsClosedWhenStoreUnavailable(t *testing.T) {
	fs := newFakeStore()
	fs.err = errUnavailable
	s := newTestServer(t, fs)
	resp, err := s.BatchCheckConsent(asService(), &consentv1.BatchCheckConsentRequest{Checks: []*consentv1.ConsentCheck{
		{SubjectId: "alice", Purpose: "ads"},
		{SubjectId: "bob", Purpose: "necessary"},
		{SubjectId: "carol", Purpose: "analytics", Region: "US-CA"},
	}})
	if err != nil {
		t.Fatalf("BatchCheckConsent: %v, want fail-closed answers", err)
	}
	want := []*consentv1.ConsentCheckResult{
		{SubjectId: "alice", Purpose: "ads", Allowed: false, Reason: consentv1.Reason_REASON_STORE_UNAVAILABLE},
		{SubjectId: "bob", Purpose: "necessary", Allowed: true, Reason: consentv1.Reason_REASON_NECESSARY},
		{SubjectId: "carol", Purpose: "analytics", Allowed: false, Reason: consentv1.Reason_REASON_STORE_UNAVAILABLE},
	}
	if len(resp.GetResults()) != len(want) {
		t.Fatalf("%d results, want %d", len(resp.GetResults()), len(want))
	}
	for i, got := range resp.GetResults() {
		w := want[i]
		if got.GetSubjectId() != w.GetSubjectId() || got.GetPurpose() != w.GetPurpose() ||
			got.GetAllowed() != w.GetAllowed() || got.GetReason() != w.GetReason() || got.GetRevision() != 0 {
			t.Errorf("result %d = %v, want %v", i, got, w)
		}
	}
}

// Only an unavailable store fails closed: any other store failure is an
// error, not an answer that looks like a denial.
func TestCheckConsentOtherStoreErrorsAreErrors(t *testing.T) {
	fs := newFakeStore()
	fs.err = errors.New("store: corrupt record")
	s := newTestServer(t, fs)
	_, err := s.CheckConsent(asService(), &consentv1.CheckConsentRequest{SubjectId: "alice", Purpose: "ads"})
	wantStatus(t, err, codes.Internal, "internal error")
	_, err = s.BatchCheckConsent(asService(), &consentv1.BatchCheckConsentRequest{Checks: []*consentv1.ConsentCheck{{SubjectId: "alice", Purpose: "ads"}}})
	wantStatus(t, err, codes.Internal, "internal error")
}

// FilterSubjects is not a check: a fail-closed (empty) list would read as
// opt-outs, so it answers UNAVAILABLE like reads and writes.
func TestFilterSubjectsAnswersUnavailable(t *testing.T) {
	fs := newFakeStore()
	fs.err = errUnavailable
	s := newTestServer(t, fs)
	_, err := s.FilterSubjects(asService(), &consentv1.FilterSubjectsRequest{Purpose: "ads", SubjectIds: []string{"alice"}})
	wantStatus(t, err, codes.Unavailable, "the consent store is unavailable; retry later")
}

func TestCheckConsentAnswersFromTheRecord(t *testing.T) {
	fs := newFakeStore()
	fs.put("alice", domain.Record{Revision: 4, Decisions: map[string]domain.Decision{
		"ads": {Granted: true, DecidedAt: testNow.Add(-1), PolicyVersion: 1},
	}})
	s := newTestServer(t, fs)
	got, err := s.CheckConsent(asService(), &consentv1.CheckConsentRequest{SubjectId: "alice", Purpose: "ads", Region: "DE"})
	if err != nil {
		t.Fatal(err)
	}
	if !got.GetAllowed() || got.GetReason() != consentv1.Reason_REASON_EXPLICIT || got.GetRevision() != 4 {
		t.Errorf("CheckConsent = %v, want allowed, explicit, revision 4", got)
	}
	_, err = s.CheckConsent(asService(), &consentv1.CheckConsentRequest{SubjectId: "alice", Purpose: "ads", MinRevision: 5})
	wantStatus(t, err, codes.FailedPrecondition, "min_revision: 5 is newer than the subject's stored revision 4")
}

func TestChecksNameTheBadField(t *testing.T) {
	s := newTestServer(t, newFakeStore())
	cases := []struct {
		name  string
		call  func() error
		field string
	}{
		{"a subject id with a space", func() error {
			_, err := s.CheckConsent(asService(), &consentv1.CheckConsentRequest{SubjectId: "al ice", Purpose: "ads"})
			return err
		}, "subject_id"},
		{"an unknown purpose", func() error {
			_, err := s.CheckConsent(asService(), &consentv1.CheckConsentRequest{SubjectId: "alice", Purpose: "nope"})
			return err
		}, "purpose"},
		{"a lower-case region", func() error {
			_, err := s.CheckConsent(asService(), &consentv1.CheckConsentRequest{SubjectId: "alice", Purpose: "ads", Region: "de"})
			return err
		}, "region"},
		{"the second check of a batch", func() error {
			_, err := s.BatchCheckConsent(asService(), &consentv1.BatchCheckConsentRequest{Checks: []*consentv1.ConsentCheck{
				{SubjectId: "alice", Purpose: "ads"}, {SubjectId: "bob", Purpose: "nope"},
			}})
			return err
		}, "checks[1].purpose"},
		{"an empty batch", func() error {
			_, err := s.BatchCheckConsent(asService(), &consentv1.BatchCheckConsentRequest{})
			return err
		}, "checks"},
		{"a bad id in a send list", func() error {
			_, err := s.FilterSubjects(asService(), &consentv1.FilterSubjectsRequest{Purpose: "ads", SubjectIds: []string{"alice", strings.Repeat("x", 129)}})
			return err
		}, "subject_ids[1]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantField(t, tc.call(), tc.field) })
	}
}
