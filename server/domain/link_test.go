package domain

import (
	"testing"
	"time"
)

func TestIsVisitorID(t *testing.T) {
	for id, want := range map[string]bool{
		"v_AAAAAAAAAAAAAAAAAAAAAA":  true,
		"v_abc-_0123456789xyzXYZW":  true,
		"v_AAAAAAAAAAAAAAAAAAAAA":   false, // 21 characters
		"v_AAAAAAAAAAAAAAAAAAAAAAA": false, // 23
		"v_AAAAAAAAAAAAAAAAAAAA.A":  false,
		"u_AAAAAAAAAAAAAAAAAAAAAA":  false,
		"user-42":                   false,
	} {
		if got := IsVisitorID(id); got != want {
			t.Errorf("IsVisitorID(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestMergeLink(t *testing.T) {
	p := mustParse(t, rulesPolicy)
	older, newer := now.Add(-time.Hour), now
	var (
		grantOld, grantNew = decided(true, older), decided(true, newer)
		denyOld, denyNew   = decided(false, older), decided(false, newer)
	)
	fromLink := func(d Decision) *Decision { d.Source = SourceLink; return &d }
	cases := []struct {
		name          string
		visitor, user *Decision // nil: undecided
		want          *Decision // written to the user; nil: the user's stays
	}{
		{"neither decided", nil, nil, nil},
		{"only the visitor granted", &grantOld, nil, fromLink(grantOld)},
		{"only the visitor denied", &denyOld, nil, fromLink(denyOld)},
		{"only the user granted", nil, &grantOld, nil},
		{"only the user denied", nil, &denyOld, nil},
		{"visitor denied, user granted later: the denial wins", &denyOld, &grantNew, fromLink(denyOld)},
		{"visitor denied, user granted earlier: the denial wins", &denyNew, &grantOld, fromLink(denyNew)},
		{"visitor granted later, user denied: the denial stands", &grantNew, &denyOld, nil},
		{"visitor granted earlier, user denied: the denial stands", &grantOld, &denyNew, nil},
		{"both granted, visitor's newer: the newer grant", &grantNew, &grantOld, fromLink(grantNew)},
		{"both granted, user's newer: the user's", &grantOld, &grantNew, nil},
		{"both granted at the same time: the user's", &grantOld, &grantOld, nil},
		{"both denied, visitor's newer: the user's", &denyNew, &denyOld, nil},
		{"both denied, user's newer: the user's", &denyOld, &denyNew, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			visitor, user := Record{Decisions: map[string]Decision{}}, Record{Decisions: map[string]Decision{}}
			if tc.visitor != nil {
				visitor.Decisions["ads"] = *tc.visitor
			}
			if tc.user != nil {
				user.Decisions["ads"] = *tc.user
			}
			m := MergeLink(p, visitor, user)
			got, written := m.Decisions["ads"]
			switch {
			case tc.want == nil && written:
				t.Fatalf("wrote %+v, want the user's decision to stay", got)
			case tc.want != nil && (!written || got != *tc.want):
				t.Fatalf("wrote %+v (%v), want %+v", got, written, *tc.want)
			}
			if m.Empty() != (tc.want == nil) {
				t.Errorf("Empty() = %v", m.Empty())
			}
		})
	}
}

func TestMergeLinkNeverMergesNecessary(t *testing.T) {
	p := mustParse(t, rulesPolicy)
	visitor := record("necessary", decided(false, now))
	if m := MergeLink(p, visitor, Record{}); !m.Empty() {
		t.Fatalf("merged %+v", m)
	}
}

func TestMergeLinkStatuses(t *testing.T) {
	p := mustParse(t, rulesPolicy)
	early, late := now.Add(-time.Hour), now
	cases := []struct {
		name          string
		visitor, user Record
		want          LinkMerge
	}{
		{"the visitor's GPC signal when the user has none", Record{GPCSeenAt: late}, Record{}, LinkMerge{GPCAt: late}},
		{"the visitor's earlier GPC signal", Record{GPCSeenAt: early}, Record{GPCSeenAt: late}, LinkMerge{GPCAt: early}},
		{"the user's earlier GPC signal stays", Record{GPCSeenAt: late}, Record{GPCSeenAt: early}, LinkMerge{}},
		{"a restricted visitor restricts the user", Record{RestrictedAt: late}, Record{}, LinkMerge{Restrict: true}},
		{"a restricted user stays restricted", Record{}, Record{RestrictedAt: late}, LinkMerge{}},
		{"a minor visitor makes the user a minor", Record{MinorSince: late}, Record{}, LinkMerge{Minor: true}},
		{"a minor user stays a minor", Record{}, Record{MinorSince: late, GuardianAt: late}, LinkMerge{}},
		{"a guardian's confirmation is not carried over", Record{MinorSince: early, GuardianAt: late}, Record{MinorSince: early}, LinkMerge{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := MergeLink(p, tc.visitor, tc.user)
			if len(m.Decisions) != 0 || !m.GPCAt.Equal(tc.want.GPCAt) || m.Restrict != tc.want.Restrict || m.Minor != tc.want.Minor {
				t.Fatalf("got %+v, want %+v", m, tc.want)
			}
		})
	}
}

func TestEffectiveRestrictedAndMinors(t *testing.T) {
	p := mustParse(t, rulesPolicy)
	confirmed := now.Add(-time.Hour)
	grantBefore, grantAfter := decided(true, confirmed.Add(-time.Minute)), decided(true, confirmed.Add(time.Minute))
	restricted := func(r Record) Record { r.RestrictedAt = now; return r }
	minor := func(r Record) Record { r.MinorSince = now.Add(-48 * time.Hour); return r }
	withGuardian := func(r Record) Record { r.GuardianAt = confirmed; return r }
	cases := []struct {
		name    string
		purpose string
		region  string
		rec     Record
		want    Answer
	}{
		{"restricted denies a grant", "ads", "DE", restricted(record("ads", grantAfter)), Answer{false, ReasonRestricted}},
		{"restricted denies an opt-out region's default", "analytics", "US-CA", restricted(Record{}), Answer{false, ReasonRestricted}},
		{"restricted still allows necessary", "necessary", "DE", restricted(Record{}), Answer{true, ReasonNecessary}},
		{"a minor's grant awaits a guardian", "ads", "DE", minor(record("ads", grantAfter)), Answer{false, ReasonGuardian}},
		{"a minor's grant after the confirmation awaits a new one", "ads", "DE", withGuardian(minor(record("ads", grantAfter))), Answer{false, ReasonGuardian}},
		{"a minor's grant before the confirmation counts", "ads", "DE", withGuardian(minor(record("ads", grantBefore))), Answer{true, ReasonExplicit}},
		{"a minor's grant made in the confirmation's second, both stored without revisions, awaits: it may have come after", "ads", "DE", withGuardian(minor(record("ads", decided(true, confirmed)))), Answer{false, ReasonGuardian}},
		{"a minor's denial counts at once", "ads", "DE", minor(record("ads", decided(false, now))), Answer{false, ReasonExplicit}},
		{"a minor is opt-in in an opt-out region", "analytics", "US-CA", minor(Record{}), Answer{false, ReasonDefault}},
		{"a minor is opt-in in a notice-only region", "analytics", "JP", minor(Record{}), Answer{false, ReasonDefault}},
		{"a minor's stale grant does not count", "ads", "DE", withGuardian(minor(record("ads", stale(grantBefore)))), Answer{false, ReasonPolicyChanged}},
		{"a minor's necessary purpose is allowed", "necessary", "DE", minor(Record{}), Answer{true, ReasonNecessary}},
		{"restriction comes before the guardian", "ads", "DE", restricted(minor(record("ads", grantAfter))), Answer{false, ReasonRestricted}},
		{"a cleared minor's grant counts", "ads", "DE", record("ads", grantAfter), Answer{true, ReasonExplicit}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Effective(p, tc.purpose, tc.rec, tc.region, now); got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
