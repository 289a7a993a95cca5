package domain

import (
	"slices"
	"testing"
	"time"
)

// rulesPolicy has one region per mechanism, a GPC purpose and a non-GPC
// purpose, so every rule of Effective has something to bite on. Its
// purposes are at version 2, so a decision at version 1 is stale.
const rulesPolicy = `
version: test
default_region: rest_of_world
purposes:
  - {id: necessary, version: 1, necessary: true, legal_basis: legitimate_interest, titles: {en: N}, descriptions: {en: N}}
  - {id: ads, version: 2, gpc: true, legal_basis: consent, lifetime: 30d, titles: {en: A}, descriptions: {en: A}}
  - {id: analytics, version: 2, legal_basis: consent, lifetime: 30d, titles: {en: S}, descriptions: {en: S}}
  - {id: marketing.email, version: 2, legal_basis: consent, lifetime: 0, titles: {en: E}, descriptions: {en: E}}
  - {id: marketing.sms, version: 2, always_opt_in: true, legal_basis: consent, titles: {en: T}, descriptions: {en: T}}
regions:
  - {id: eea, mechanism: opt_in, codes: [DE, FR]}
  - {id: us_opt_out, mechanism: opt_out, codes: [US-CA, US-CO]}
  - {id: us_other, mechanism: notice_only, codes: [US]}
  - {id: japan, mechanism: notice_only, codes: [JP]}
  - {id: rest_of_world, mechanism: opt_in}
`

func mustParse(t *testing.T, src string) *Policy {
	t.Helper()
	p, err := ParsePolicy([]byte(src))
	if err != nil {
		t.Fatalf("ParsePolicy: %v", err)
	}
	return p
}

var (
	now       = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	gpcSeenAt = now.Add(-10 * 24 * time.Hour)
	beforeGPC = gpcSeenAt.Add(-time.Second)
	afterGPC  = gpcSeenAt.Add(time.Second)
	inFuture  = now.Add(20 * 24 * time.Hour)
)

// decided is a current (version 2), unexpired decision made at decidedAt.
func decided(granted bool, decidedAt time.Time) Decision {
	return Decision{Granted: granted, DecidedAt: decidedAt, ExpiresAt: inFuture, Source: SourceBanner, PolicyVersion: 2}
}

func stale(d Decision) Decision   { d.PolicyVersion = 1; return d }
func expired(d Decision) Decision { d.ExpiresAt = now.Add(-time.Second); return d }

func record(purpose string, d Decision) Record {
	return Record{Revision: 1, Decisions: map[string]Decision{purpose: d}}
}

func withGPC(r Record) Record { r.GPCSeenAt = gpcSeenAt; return r }

func TestEffective(t *testing.T) {
	p := mustParse(t, rulesPolicy)
	var (
		none        = Record{}
		gpcOnly     = Record{Revision: 1, GPCSeenAt: gpcSeenAt}
		allowed     = func(r Reason) Answer { return Answer{Allowed: true, Reason: r} }
		denied      = func(r Reason) Answer { return Answer{Allowed: false, Reason: r} }
		grant, deny = true, false
	)
	cases := []struct {
		name    string
		purpose string
		region  string // request region code
		rec     Record
		want    Answer
	}{
		// Unknown purpose.
		{"unknown purpose is denied by default", "nope", "US-CA", none, denied(ReasonDefault)},
		{"unknown purpose is denied even if something is stored under its id", "nope", "US-CA", record("nope", decided(grant, now)), denied(ReasonDefault)},

		// Necessary.
		{"necessary undecided in opt-in region is allowed", "necessary", "DE", none, allowed(ReasonNecessary)},
		{"necessary undecided in opt-out region is allowed", "necessary", "US-CA", none, allowed(ReasonNecessary)},
		{"necessary undecided in notice-only region is allowed", "necessary", "JP", none, allowed(ReasonNecessary)},
		{"necessary with a stored denial is still allowed", "necessary", "DE", record("necessary", decided(deny, now)), allowed(ReasonNecessary)},
		{"necessary with a stale stored denial is still allowed", "necessary", "DE", record("necessary", stale(decided(deny, now))), allowed(ReasonNecessary)},
		{"necessary with an expired stored denial is still allowed", "necessary", "DE", record("necessary", expired(decided(deny, now))), allowed(ReasonNecessary)},
		{"necessary with GPC in opt-out region is allowed", "necessary", "US-CA", gpcOnly, allowed(ReasonNecessary)},

		// Opt-in region.
		{"opt-in undecided is denied by default", "ads", "DE", none, denied(ReasonDefault)},
		{"opt-in undecided with GPC is denied by default, not by GPC", "ads", "DE", gpcOnly, denied(ReasonDefault)},
		{"opt-in granted is allowed", "ads", "DE", record("ads", decided(grant, now)), allowed(ReasonExplicit)},
		{"opt-in denied is denied", "ads", "DE", record("ads", decided(deny, now)), denied(ReasonExplicit)},
		{"opt-in granted before GPC is allowed: GPC only acts in opt-out regions", "ads", "DE", withGPC(record("ads", decided(grant, beforeGPC))), allowed(ReasonExplicit)},
		{"opt-in stale grant is denied: the region default", "ads", "DE", record("ads", stale(decided(grant, now))), denied(ReasonPolicyChanged)},
		{"opt-in stale denial stays denied", "ads", "DE", record("ads", stale(decided(deny, now))), denied(ReasonPolicyChanged)},
		{"opt-in expired grant is denied: the region default", "ads", "DE", record("ads", expired(decided(grant, now))), denied(ReasonExpired)},
		{"opt-in expired denial stays denied", "ads", "DE", record("ads", expired(decided(deny, now))), denied(ReasonExpired)},

		// Opt-out region, GPC purpose.
		{"opt-out undecided is allowed by default", "ads", "US-CA", none, allowed(ReasonDefault)},
		{"opt-out undecided with GPC is denied by GPC", "ads", "US-CA", gpcOnly, denied(ReasonGPC)},
		{"opt-out granted is allowed", "ads", "US-CA", record("ads", decided(grant, now)), allowed(ReasonExplicit)},
		{"opt-out denied is denied", "ads", "US-CA", record("ads", decided(deny, now)), denied(ReasonExplicit)},
		{"opt-out granted before GPC is denied by GPC", "ads", "US-CA", withGPC(record("ads", decided(grant, beforeGPC))), denied(ReasonGPC)},
		{"opt-out granted exactly at the GPC signal is allowed: the explicit choice wins", "ads", "US-CA", withGPC(record("ads", decided(grant, gpcSeenAt))), allowed(ReasonExplicit)},
		{"opt-out granted after GPC is allowed: the explicit choice wins", "ads", "US-CA", withGPC(record("ads", decided(grant, afterGPC))), allowed(ReasonExplicit)},
		{"opt-out denied before GPC is denied by GPC", "ads", "US-CA", withGPC(record("ads", decided(deny, beforeGPC))), denied(ReasonGPC)},
		{"opt-out denied after GPC is denied explicitly", "ads", "US-CA", withGPC(record("ads", decided(deny, afterGPC))), denied(ReasonExplicit)},
		{"opt-out stale grant is allowed: the region default", "ads", "US-CA", record("ads", stale(decided(grant, now))), allowed(ReasonPolicyChanged)},
		{"opt-out stale denial stays denied", "ads", "US-CA", record("ads", stale(decided(deny, now))), denied(ReasonPolicyChanged)},
		{"opt-out stale grant with GPC is denied: the region default under GPC", "ads", "US-CA", withGPC(record("ads", stale(decided(grant, afterGPC)))), denied(ReasonPolicyChanged)},
		{"opt-out expired grant is allowed: the region default", "ads", "US-CA", record("ads", expired(decided(grant, now))), allowed(ReasonExpired)},
		{"opt-out expired denial stays denied", "ads", "US-CA", record("ads", expired(decided(deny, now))), denied(ReasonExpired)},
		{"opt-out expired grant with GPC is denied: the region default under GPC", "ads", "US-CA", withGPC(record("ads", expired(decided(grant, afterGPC)))), denied(ReasonExpired)},

		// Opt-out region, purpose without GPC.
		{"opt-out non-GPC purpose undecided with GPC is allowed by default", "analytics", "US-CA", gpcOnly, allowed(ReasonDefault)},
		{"opt-out non-GPC purpose granted before GPC stays allowed", "analytics", "US-CA", withGPC(record("analytics", decided(grant, beforeGPC))), allowed(ReasonExplicit)},
		{"opt-out non-GPC purpose stale grant with GPC is allowed: the region default", "analytics", "US-CA", withGPC(record("analytics", stale(decided(grant, now)))), allowed(ReasonPolicyChanged)},

		// A purpose that is opt-in everywhere.
		{"always-opt-in undecided in an opt-out region is denied by default", "marketing.sms", "US-CA", none, denied(ReasonDefault)},
		{"always-opt-in undecided in a notice-only region is denied by default", "marketing.sms", "JP", none, denied(ReasonDefault)},
		{"always-opt-in granted in an opt-out region is allowed", "marketing.sms", "US-CA", record("marketing.sms", decided(grant, now)), allowed(ReasonExplicit)},
		{"always-opt-in expired grant in a notice-only region is denied", "marketing.sms", "JP", record("marketing.sms", expired(decided(grant, now))), denied(ReasonExpired)},

		// Notice-only region.
		{"notice-only undecided is allowed by default", "ads", "JP", none, allowed(ReasonDefault)},
		{"notice-only undecided with GPC is allowed by default: GPC only acts in opt-out regions", "ads", "JP", gpcOnly, allowed(ReasonDefault)},
		{"notice-only granted is allowed", "ads", "JP", record("ads", decided(grant, now)), allowed(ReasonExplicit)},
		{"notice-only denied is denied", "ads", "JP", record("ads", decided(deny, now)), denied(ReasonExplicit)},
		{"notice-only granted before GPC is allowed", "ads", "JP", withGPC(record("ads", decided(grant, beforeGPC))), allowed(ReasonExplicit)},
		{"notice-only stale grant is allowed: the region default", "ads", "JP", record("ads", stale(decided(grant, now))), allowed(ReasonPolicyChanged)},
		{"notice-only stale denial stays denied", "ads", "JP", record("ads", stale(decided(deny, now))), denied(ReasonPolicyChanged)},
		{"notice-only expired grant is allowed: the region default", "ads", "JP", record("ads", expired(decided(grant, now))), allowed(ReasonExpired)},
		{"notice-only expired denial stays denied", "ads", "JP", record("ads", expired(decided(deny, now))), denied(ReasonExpired)},

		// Order of the checks.
		{"stale and expired reads as policy changed: staleness is checked first", "ads", "US-CA", record("ads", expired(stale(decided(grant, now)))), allowed(ReasonPolicyChanged)},
		{"expired beats GPC: an expired grant before GPC reads as expired", "ads", "US-CA", withGPC(record("ads", expired(decided(grant, beforeGPC)))), denied(ReasonExpired)},
		{"a decision under a newer version than the policy's is current", "ads", "DE", record("ads", Decision{Granted: true, DecidedAt: now, PolicyVersion: 3}), allowed(ReasonExplicit)},
		{"a decision without an expiry never expires", "marketing.email", "DE", record("marketing.email", Decision{Granted: true, DecidedAt: now.AddDate(-50, 0, 0), PolicyVersion: 2}), allowed(ReasonExplicit)},

		// Expiry boundary.
		{"a grant is expired exactly at ExpiresAt", "ads", "DE", record("ads", Decision{Granted: true, DecidedAt: now.Add(-time.Hour), ExpiresAt: now, PolicyVersion: 2}), denied(ReasonExpired)},
		{"a grant is still valid one nanosecond before ExpiresAt", "ads", "DE", record("ads", Decision{Granted: true, DecidedAt: now.Add(-time.Hour), ExpiresAt: now.Add(time.Nanosecond), PolicyVersion: 2}), allowed(ReasonExplicit)},

		// Which region applies.
		{"no request region uses the record's region", "ads", "", Record{Region: "US-CA"}, allowed(ReasonDefault)},
		{"the request region beats the record's region", "ads", "DE", Record{Region: "US-CA"}, denied(ReasonDefault)},
		{"no region anywhere uses the default region (opt-in)", "ads", "", none, denied(ReasonDefault)},
		{"an unknown region code uses the default region", "ads", "BR", none, denied(ReasonDefault)},
		{"an unlisted subdivision falls back to its country", "ads", "US-NY", none, allowed(ReasonDefault)},
		{"a listed subdivision beats its country", "ads", "US-CO", gpcOnly, denied(ReasonGPC)},
		{"the record's region falls back to its country too", "ads", "", Record{Region: "FR-75"}, denied(ReasonDefault)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Effective(p, tc.purpose, tc.rec, tc.region, now)
			if got != tc.want {
				t.Errorf("Effective(%q, region %q) = %+v, want %+v", tc.purpose, tc.region, got, tc.want)
			}
		})
	}
}

func TestEffectiveRegionWithoutMechanismIsOptIn(t *testing.T) {
	p := newPolicy("1", "", []Purpose{{ID: "ads", Version: 1}}, nil) // no regions at all
	if got, want := Effective(p, "ads", Record{}, "US-CA", now), (Answer{Allowed: false, Reason: ReasonDefault}); got != want {
		t.Errorf("Effective without regions = %+v, want %+v", got, want)
	}
}

func TestRegionFor(t *testing.T) {
	p := mustParse(t, rulesPolicy)
	cases := []struct {
		name string
		code string
		want string
	}{
		{"an exact country code", "DE", "eea"},
		{"an exact subdivision code", "US-CA", "us_opt_out"},
		{"a listed subdivision beats its listed country", "US-CO", "us_opt_out"},
		{"an unlisted subdivision falls back to its country", "US-NY", "us_other"},
		{"a subdivision of a listed country falls back to it", "FR-75", "eea"},
		{"an unknown country uses the default", "BR", "rest_of_world"},
		{"an unknown subdivision of an unknown country uses the default", "BR-SP", "rest_of_world"},
		{"the empty code uses the default", "", "rest_of_world"},
		{"codes are case-sensitive, as validated", "de", "rest_of_world"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.RegionFor(tc.code).ID; got != tc.want {
				t.Errorf("RegionFor(%q) = %q, want %q", tc.code, got, tc.want)
			}
		})
	}
}

func TestPurposeLookups(t *testing.T) {
	p := mustParse(t, rulesPolicy)
	if got, want := p.PurposeIDs(), []string{"necessary", "ads", "analytics", "marketing.email", "marketing.sms"}; !slices.Equal(got, want) {
		t.Errorf("PurposeIDs = %v, want %v", got, want)
	}
	if got, want := p.NonNecessaryPurposeIDs(), []string{"ads", "analytics", "marketing.email", "marketing.sms"}; !slices.Equal(got, want) {
		t.Errorf("NonNecessaryPurposeIDs = %v, want %v", got, want)
	}
	ids := p.PurposeIDs()
	ids[0] = "changed"
	if p.PurposeIDs()[0] != "necessary" {
		t.Error("changing the slice PurposeIDs returned changed the policy")
	}
	pu, ok := p.Purpose("ads")
	if !ok || pu.ID != "ads" || !pu.GPC || pu.Version != 2 || pu.Lifetime != 30*24*time.Hour {
		t.Errorf("Purpose(ads) = %+v, %v", pu, ok)
	}
	if _, ok := p.Purpose("nope"); ok {
		t.Error("Purpose(nope) found")
	}
}

// A guardian's confirmation covers exactly the decisions it saw: those
// stored at or before the revision it read. Revisions order the two, never
// the clock; only where either side was stored before revisions were
// recorded does time decide, and then a grant in the confirmation's second
// awaits (it may have come after).
func TestEffectiveGuardianCoversTheRevisionsItSaw(t *testing.T) {
	p := mustParse(t, rulesPolicy)
	confirmedAt := now.Add(-time.Hour)
	// grant and deny are current decisions stored at revision rev (0: before
	// revisions were recorded) at time at.
	grant := func(rev int64, at time.Time) Decision { d := decided(true, at); d.Revision = rev; return d }
	deny := func(rev int64, at time.Time) Decision { d := decided(false, at); d.Revision = rev; return d }
	// minor is a minor with a decision on ads and a guardian's confirmation
	// at confirmedAt that saw revision saw (0: stored without it; -1: no
	// confirmation at all).
	minor := func(d Decision, saw int64) Record {
		r := record("ads", d)
		r.Revision = max(d.Revision, saw+1, 1)
		r.MinorSince = now.Add(-48 * time.Hour)
		if saw >= 0 {
			r.GuardianAt, r.GuardianRevision = confirmedAt, saw
		}
		return r
	}
	var (
		sameSecond  = confirmedAt
		secondLate  = confirmedAt.Add(time.Second)
		secondEarly = confirmedAt.Add(-time.Second)
		awaits      = Answer{Allowed: false, Reason: ReasonGuardian}
		counts      = Answer{Allowed: true, Reason: ReasonExplicit}
		denied      = Answer{Allowed: false, Reason: ReasonExplicit}
	)
	cases := []struct {
		name string
		rec  Record
		want Answer
	}{
		// Both sides have revisions: revisions decide, whatever the clocks say.
		{"a grant stored at the revision the guardian saw counts", minor(grant(5, secondEarly), 5), counts},
		{"a grant stored before the revision the guardian saw counts", minor(grant(3, secondEarly), 5), counts},
		{"a grant stored after the confirmation in the same second awaits a new one", minor(grant(6, sameSecond), 5), awaits},
		{"a grant stored after the confirmation awaits even when its time reads earlier (a visitor's grant merged by a link)", minor(grant(6, secondEarly), 5), awaits},
		{"a grant the guardian saw counts even when its time reads later (another instance's clock)", minor(grant(5, secondLate), 5), counts},
		{"a denial stored after the confirmation counts at once", minor(deny(6, sameSecond), 5), denied},
		{"a grant without any confirmation awaits, whatever its revision", minor(grant(1, secondEarly), -1), awaits},
		{"a covered grant that expired does not count", minor(expired(grant(3, secondEarly)), 5), Answer{Allowed: false, Reason: ReasonExpired}},
		{"a covered grant under an older purpose version does not count", minor(stale(grant(3, secondEarly)), 5), Answer{Allowed: false, Reason: ReasonPolicyChanged}},

		// The decision was stored without a revision: time decides, conservatively.
		{"a grant stored without a revision a second before the confirmation counts", minor(grant(0, secondEarly), 5), counts},
		{"a grant stored without a revision in the confirmation's second awaits", minor(grant(0, sameSecond), 5), awaits},
		{"a grant stored without a revision after the confirmation awaits", minor(grant(0, secondLate), 5), awaits},

		// The confirmation was stored without a revision: time decides, conservatively.
		{"a grant a second before a confirmation stored without a revision counts", minor(grant(4, secondEarly), 0), counts},
		{"a grant in the second of a confirmation stored without a revision awaits", minor(grant(4, sameSecond), 0), awaits},
		{"a grant after a confirmation stored without a revision awaits", minor(grant(4, secondLate), 0), awaits},
		{"a denial in the second of a confirmation stored without a revision counts at once", minor(deny(4, sameSecond), 0), denied},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Effective(p, "ads", tc.rec, "DE", now); got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
