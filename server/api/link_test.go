package api

import (
	"reflect"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/auth"
	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/store"
)

// conflictOn makes the first n writes to subject fail as if it had changed
// since it was read (n < 0: every write).
func conflictOn(subject string, n int) func(store.Write) error {
	return func(w store.Write) error {
		if w.SubjectID != subject || n == 0 {
			return nil
		}
		n--
		return &store.ConflictError{Expected: *w.ExpectedRevision, Current: *w.ExpectedRevision + 1}
	}
}

func TestLinkSubjectsLinksThenMerges(t *testing.T) {
	fs := newFakeStore()
	visitor := auth.NewVisitorID()
	ads := domain.Decision{Granted: true, DecidedAt: testNow.Add(-time.Minute), Source: domain.SourceBanner, PolicyVersion: 1, Region: "DE"}
	fs.put(visitor, domain.Record{Revision: 2, Decisions: map[string]domain.Decision{"ads": ads}})
	fs.put("alice", domain.Record{Revision: 7})
	s := newTestServer(t, fs)

	resp, err := s.LinkSubjects(asService(), &consentv1.LinkSubjectsRequest{SubjectId: "alice", VisitorId: visitor})
	if err != nil {
		t.Fatal(err)
	}
	event := func(counterpart string) store.EventInfo {
		return store.EventInfo{Type: domain.EventLink, Actor: "key:backend", Source: domain.SourceLink,
			PolicyVersion: "test-1", Channel: "grpc", Counterpart: counterpart}
	}
	linked := ads
	linked.Source = domain.SourceLink
	want := []store.Write{
		{SubjectID: visitor, ExpectedRevision: ptr(int64(2)), LinkTo: "alice", Event: event("alice"), Now: testNow},
		{SubjectID: "alice", ExpectedRevision: ptr(int64(7)), Decisions: map[string]domain.Decision{"ads": linked},
			LinkedVisitor: visitor, IdempotencyKey: "link:" + visitor + ":3", Event: event(visitor), Now: testNow},
	}
	if !reflect.DeepEqual(fs.writes, want) {
		t.Errorf("writes\n%+v\nwant\n%+v", fs.writes, want)
	}
	if got := resp.GetConsent(); got.GetRevision() != 8 || !got.GetPurposes()[1].GetAllowed() {
		t.Errorf("consent after the link: %v, want revision 8 with ads allowed", got)
	}
}

// Either write retries when its subject changed since it was read: it
// reads again and writes again, up to linkAttempts retries.
func TestLinkSubjectsRetriesOnConflict(t *testing.T) {
	for _, side := range []string{"visitor", "user"} {
		t.Run(side, func(t *testing.T) {
			fs := newFakeStore()
			visitor := auth.NewVisitorID()
			subject := map[string]string{"visitor": visitor, "user": "alice"}[side]
			fs.writeErr = conflictOn(subject, linkAttempts)
			s := newTestServer(t, fs)
			if _, err := s.LinkSubjects(asService(), &consentv1.LinkSubjectsRequest{SubjectId: "alice", VisitorId: visitor}); err != nil {
				t.Fatalf("after %d conflicts: %v", linkAttempts, err)
			}
			if got := len(fs.writesTo(subject)); got != linkAttempts+1 {
				t.Errorf("%d writes to the %s, want %d", got, side, linkAttempts+1)
			}
			if got := fs.own(visitor).LinkedTo; got != "alice" {
				t.Errorf("visitor linked to %q", got)
			}
		})
	}
}

func TestLinkSubjectsGivesUpAfterRetries(t *testing.T) {
	for _, side := range []string{"visitor", "user"} {
		t.Run(side, func(t *testing.T) {
			fs := newFakeStore()
			visitor := auth.NewVisitorID()
			subject := map[string]string{"visitor": visitor, "user": "alice"}[side]
			fs.writeErr = conflictOn(subject, -1)
			s := newTestServer(t, fs)
			_, err := s.LinkSubjects(asService(), &consentv1.LinkSubjectsRequest{SubjectId: "alice", VisitorId: visitor})
			wantStatus(t, err, codes.Aborted, "expected_revision: 0 does not match the subject's revision 1")
			if got := len(fs.writesTo(subject)); got != linkAttempts+1 {
				t.Errorf("%d writes to the %s, want %d (the first and %d retries)", got, side, linkAttempts+1, linkAttempts)
			}
		})
	}
}

// Only a conflict is retried: any other failure answers at once.
func TestLinkSubjectsDoesNotRetryOtherErrors(t *testing.T) {
	fs := newFakeStore()
	fs.writeErr = func(store.Write) error { return errUnavailable }
	s := newTestServer(t, fs)
	_, err := s.LinkSubjects(asService(), &consentv1.LinkSubjectsRequest{SubjectId: "alice", VisitorId: auth.NewVisitorID()})
	wantStatus(t, err, codes.Unavailable, "the consent store is unavailable; retry later")
	if len(fs.writes) != 1 {
		t.Errorf("%d writes, want 1", len(fs.writes))
	}
}

// A visitor already linked is not written again, and a merge whose
// idempotency key was used for another merge (the user changed since) is
// done: the answer is the user's record as read.
func TestLinkSubjectsAgainIsDone(t *testing.T) {
	fs := newFakeStore()
	visitor := auth.NewVisitorID()
	fs.put(visitor, domain.Record{Revision: 3, LinkedTo: "alice"})
	fs.put("alice", domain.Record{Revision: 9})
	fs.writeErr = func(store.Write) error { return store.ErrIdempotencyMismatch }
	s := newTestServer(t, fs)
	resp, err := s.LinkSubjects(asService(), &consentv1.LinkSubjectsRequest{SubjectId: "alice", VisitorId: visitor})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetConsent().GetRevision(); got != 9 {
		t.Errorf("revision %d, want the user's 9", got)
	}
	if len(fs.writesTo(visitor)) != 0 || len(fs.writesTo("alice")) != 1 {
		t.Errorf("writes %+v, want one merge to the user", fs.writes)
	}
	if key := fs.writes[0].IdempotencyKey; key != "link:"+visitor+":3" {
		t.Errorf("idempotency key %q", key)
	}
}

func TestLinkSubjectsNamesTheBadField(t *testing.T) {
	s := newTestServer(t, newFakeStore())
	visitor := auth.NewVisitorID()
	_, err := s.LinkSubjects(asService(), &consentv1.LinkSubjectsRequest{SubjectId: visitor, VisitorId: visitor})
	wantField(t, err, "subject_id")
	_, err = s.LinkSubjects(asService(), &consentv1.LinkSubjectsRequest{SubjectId: "alice", VisitorId: "bob"})
	wantField(t, err, "visitor_id")
}
