package domain

import "time"

// Effective is the answer for one purpose of one subject. regionCode is the
// request's region code, or "" to use rec.Region, or the policy's default
// when that is empty too.
//
// The rules, in the order they apply:
//
//  1. An unknown purpose is denied with ReasonDefault. Callers validate the
//     purpose first; this only keeps a mistake from ever reading as consent.
//  2. The necessary purpose is allowed with ReasonNecessary, whatever is
//     stored: it cannot be denied, so a stored denial is meaningless.
//  3. Without a stored decision the region's mechanism decides (a purpose
//     marked always_opt_in is treated as in an opt_in region everywhere)
//     (ReasonDefault): opt_in denies; notice_only allows; opt_out allows,
//     except a GPC purpose of a subject who has sent a GPC signal, which is
//     denied with ReasonGPC. A region without a known mechanism denies, the
//     conservative answer.
//  4. A stale decision (made under an older purpose version) answers with
//     ReasonPolicyChanged, and an expired one (now at or past ExpiresAt)
//     with ReasonExpired; staleness is checked first. Either way a grant no
//     longer counts as consent and falls back to the region default, while a
//     denial stays honoured: re-asking must never turn a "no" into a "yes".
//     The reason tells the UI to ask again. A decision recorded under a
//     newer version than the policy's (a rolled-back policy) is not stale.
//  5. In an opt_out region, for a GPC purpose, a decision made before the
//     subject's first GPC signal is overridden: denied with ReasonGPC. A
//     choice made at or after the signal is the person's later word and wins.
//  6. Otherwise the decision stands (ReasonExplicit).
//
// Two statuses of the subject come before all of that, right after rule 2:
//
//   - Restricted (a rights request): every non-necessary purpose is denied
//     with ReasonRestricted, whatever was decided, until lifted.
//   - Minor: every region is opt_in for a minor (nothing is allowed without a
//     grant), and a grant counts only once a guardian has confirmed it: a
//     grant the last guardian confirmation did not cover (stored at a later
//     revision than it saw, see guardianCovers), or with none, is denied
//     with ReasonGuardian. Denials count at once.
func Effective(p *Policy, purposeID string, rec Record, regionCode string, now time.Time) Answer {
	pu, ok := p.Purpose(purposeID)
	if !ok {
		return Answer{Allowed: false, Reason: ReasonDefault}
	}
	if pu.Necessary {
		return Answer{Allowed: true, Reason: ReasonNecessary}
	}
	if rec.Restricted() {
		return Answer{Allowed: false, Reason: ReasonRestricted}
	}
	answer := effectiveDecision(p, pu, rec, regionCode, now)
	if rec.Minor() && answer.Allowed && answer.Reason == ReasonExplicit && !guardianCovers(rec, rec.Decisions[purposeID]) {
		return Answer{Allowed: false, Reason: ReasonGuardian}
	}
	return answer
}

// guardianCovers reports whether the guardian's last confirmation covers the
// decision d: d was stored at or before the revision the confirmation saw.
// Revisions order them, never clocks (a grant in the confirmation's second
// may have come after it; a visitor's grant merged by a link keeps the time
// it was made). A decision or confirmation stored before revisions were
// recorded falls back to time, conservatively: only a decision of an earlier
// second than the confirmation is covered.
func guardianCovers(rec Record, d Decision) bool {
	switch {
	case rec.GuardianAt.IsZero():
		return false
	case d.Revision > 0 && rec.GuardianRevision > 0:
		return d.Revision <= rec.GuardianRevision
	}
	return d.DecidedAt.Before(rec.GuardianAt.Truncate(time.Second))
}

// effectiveDecision is rules 3 to 6.
func effectiveDecision(p *Policy, pu Purpose, rec Record, regionCode string, now time.Time) Answer {
	if regionCode == "" {
		regionCode = rec.Region
	}
	mechanism := p.RegionFor(regionCode).Mechanism
	if pu.AlwaysOptIn || rec.Minor() {
		mechanism = MechanismOptIn
	}
	gpcApplies := mechanism == MechanismOptOut && pu.GPC && !rec.GPCSeenAt.IsZero()
	fallback := regionDefault(mechanism, gpcApplies)

	d, decided := rec.Decisions[pu.ID]
	switch {
	case !decided:
		return fallback
	case d.PolicyVersion < pu.Version:
		return Answer{Allowed: d.Granted && fallback.Allowed, Reason: ReasonPolicyChanged}
	case !d.ExpiresAt.IsZero() && !now.Before(d.ExpiresAt):
		return Answer{Allowed: d.Granted && fallback.Allowed, Reason: ReasonExpired}
	case gpcApplies && d.DecidedAt.Before(rec.GPCSeenAt):
		return Answer{Allowed: false, Reason: ReasonGPC}
	}
	return Answer{Allowed: d.Granted, Reason: ReasonExplicit}
}

// regionDefault is the answer for a purpose nobody has decided on.
func regionDefault(m Mechanism, gpcApplies bool) Answer {
	switch m {
	case MechanismOptOut:
		if gpcApplies {
			return Answer{Allowed: false, Reason: ReasonGPC}
		}
		return Answer{Allowed: true, Reason: ReasonDefault}
	case MechanismNoticeOnly:
		return Answer{Allowed: true, Reason: ReasonDefault}
	}
	return Answer{Allowed: false, Reason: ReasonDefault}
}

// FailClosed is the answer when the subject's record cannot be read (the
// store is down or too slow): the necessary purpose is allowed, every other
// purpose denied with ReasonStoreUnavailable. Denying is always lawful;
// allowing on a guess is not, and a caller that must not wait can act on a
// denial at once.
func FailClosed(p *Policy, purposeID string) Answer {
	if pu, ok := p.Purpose(purposeID); ok && pu.Necessary {
		return Answer{Allowed: true, Reason: ReasonNecessary}
	}
	return Answer{Allowed: false, Reason: ReasonStoreUnavailable}
}
