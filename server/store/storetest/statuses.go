package storetest

import (
	"reflect"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/store"
)

func testGuardianConfirmationRevision(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, _ := NewStore(t, client)
	write(t, s, store.Write{SubjectID: "alice", Minor: boolPtr(true)})
	write(t, s, store.Write{SubjectID: "alice", Decisions: decisions(t0, "ads", true)})
	res := write(t, s, store.Write{SubjectID: "alice", GuardianConfirmed: true, ExpectedRevision: ptr(2), Now: t0.Add(time.Second)})
	if rec := get(t, s, "alice"); rec.GuardianRevision != 2 || !rec.GuardianAt.Equal(t0.Add(time.Second)) || !reflect.DeepEqual(rec, res.Record) {
		t.Fatalf("after the confirmation: %+v (write result %+v), want it to have seen revision 2", rec, res.Record)
	}
	// Without an expected revision it covers what the write found.
	write(t, s, store.Write{SubjectID: "alice", Decisions: decisions(t0, "analytics", true)})
	write(t, s, store.Write{SubjectID: "alice", GuardianConfirmed: true})
	purposes, _ := s.GetPurposes(ctx(t), "alice", []string{"ads"})
	if rec := get(t, s, "alice"); rec.GuardianRevision != 4 || purposes.GuardianRevision != 4 {
		t.Fatalf("a confirmation at revision 5: Get %+v, GetPurposes %+v; want revision 4 seen", rec, purposes)
	}
	write(t, s, store.Write{SubjectID: "alice", Minor: boolPtr(false)})
	if rec := get(t, s, "alice"); rec.GuardianRevision != 0 || !rec.GuardianAt.IsZero() || rec.Minor() {
		t.Fatalf("after clearing the mark: %+v", rec)
	}
}

func testStatuses(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, _ := NewStore(t, client)
	yes, no := true, false
	at := func(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }
	steps := []struct {
		name  string
		w     store.Write
		check func(domain.Record) bool
	}{
		{"restrict", store.Write{Restrict: &yes, Now: at(1)}, func(r domain.Record) bool { return r.RestrictedAt.Equal(at(1)) }},
		{"lift", store.Write{Restrict: &no, Now: at(2)}, func(r domain.Record) bool { return !r.Restricted() }},
		{"mark minor", store.Write{Minor: &yes, Now: at(3)}, func(r domain.Record) bool { return r.MinorSince.Equal(at(3)) && r.GuardianAt.IsZero() }},
		{"guardian", store.Write{GuardianConfirmed: true, Now: at(4)}, func(r domain.Record) bool {
			return r.Minor() && r.GuardianAt.Equal(at(4)) && r.GuardianRevision == 3
		}},
		{"clear minor", store.Write{Minor: &no, Now: at(5)}, func(r domain.Record) bool { return !r.Minor() && r.GuardianAt.IsZero() && r.GuardianRevision == 0 }},
	}
	for _, step := range steps {
		step.w.SubjectID = "alice"
		res := write(t, s, step.w)
		purposes, err := s.GetPurposes(ctx(t), "alice", []string{"ads"})
		if err != nil {
			t.Fatal(err)
		}
		many, err := s.GetMany(ctx(t), []store.Lookup{{SubjectID: "alice", Purposes: []string{"ads"}}})
		if err != nil {
			t.Fatal(err)
		}
		for name, rec := range map[string]domain.Record{"write result": res.Record, "Get": get(t, s, "alice"), "GetPurposes": purposes, "GetMany": many[0]} {
			if !step.check(rec) {
				t.Errorf("%s: %s reads %+v", step.name, name, rec)
			}
		}
	}
	if evs := events(t, s, "alice"); len(evs) != len(steps) {
		t.Fatalf("%d events, want one per step", len(evs))
	}
}
