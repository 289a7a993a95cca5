package storetest

import (
	"reflect"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/store"
)

func testNewSubjectReadsNothing(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, _ := NewStore(t, client)
	rec := get(t, s, "nobody")
	if rec.Revision != 0 || len(rec.Decisions) != 0 || rec.Region != "" || !rec.GPCSeenAt.IsZero() {
		t.Fatalf("Get = %+v, want the zero record", rec)
	}
	rec, err := s.GetPurposes(ctx(t), "nobody", []string{"analytics"})
	if err != nil || rec.Revision != 0 || len(rec.Decisions) != 0 {
		t.Fatalf("GetPurposes = %+v, %v", rec, err)
	}
	if events, err := s.Events(ctx(t), "nobody", 0, 10); err != nil || len(events) != 0 {
		t.Fatalf("Events = %v, %v; want none", events, err)
	}
	if err := s.VerifyChain(ctx(t), "nobody"); err != nil {
		t.Fatalf("VerifyChain of an empty history: %v", err)
	}
}

func testGetPurposesAndGetMany(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, _ := NewStore(t, client)
	write(t, s, store.Write{SubjectID: "alice", Region: "DE", GPC: true,
		Decisions: decisions(t0, "analytics", true, "ads", false, "marketing.email", true)})
	write(t, s, store.Write{SubjectID: "bob", Decisions: decisions(t0, "ads", true)})
	subset := func(rec domain.Record, purposes ...string) domain.Record {
		out := rec
		out.Decisions = map[string]domain.Decision{}
		for _, p := range purposes {
			if d, ok := rec.Decisions[p]; ok {
				out.Decisions[p] = d
			}
		}
		return out
	}
	alice, bob := get(t, s, "alice"), get(t, s, "bob")
	lookups := []store.Lookup{
		{SubjectID: "alice", Purposes: []string{"analytics", "functional"}},
		{SubjectID: "nobody", Purposes: []string{"ads"}},
		{SubjectID: "bob", Purposes: []string{"ads"}},
		{SubjectID: "alice", Purposes: []string{"ads", "marketing.email"}},
		{SubjectID: "alice"}, // only the revision, region and GPC time
	}
	want := []domain.Record{
		subset(alice, "analytics"), subset(domain.Record{}), subset(bob, "ads"),
		subset(alice, "ads", "marketing.email"), subset(alice),
	}
	for i, l := range lookups {
		got, err := s.GetPurposes(ctx(t), l.SubjectID, l.Purposes)
		if err != nil || !reflect.DeepEqual(got, want[i]) {
			t.Errorf("GetPurposes(%v) = %+v, %v; want %+v", l, got, err, want[i])
		}
	}
	many, err := s.GetMany(ctx(t), lookups)
	if err != nil || !reflect.DeepEqual(many, want) {
		t.Fatalf("GetMany = %+v, %v; want %+v", many, err, want)
	}
}
