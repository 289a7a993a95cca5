// Package domain holds consentd's rules in plain Go: the policy (purposes and
// regions), the decisions a subject has made, and the effective answer a check
// returns. It knows nothing of protobuf, HTTP or Redis, so a table test can pin
// every rule down.
package domain

import "time"

// Source says through which channel a decision was made.
type Source string

const (
	SourceBanner           Source = "banner"
	SourcePreferenceCenter Source = "preference_center"
	SourceAPI              Source = "api"
	SourceGPC              Source = "gpc"
	SourceImport           Source = "import"
	SourceLink             Source = "link"
)

// Decision is what a subject said about one purpose.
type Decision struct {
	Granted       bool
	DecidedAt     time.Time // second precision
	ExpiresAt     time.Time // zero: never expires
	Source        Source
	PolicyVersion int    // the purpose's version the subject answered
	Region        string // region code in force when decided, e.g. "DE", "US-CA"
	// Revision is the subject's revision of the write that stored the
	// decision: the store sets it, and ignores it in what it is given to
	// write (a decision copied from another record gets the new write's).
	// 0: stored before decisions recorded their revision, or not stored.
	Revision int64
}

// Record is the stored state of one subject: what Check and GetConsent read.
// A subject nobody has written yet is a Record with Revision 0 and no decisions.
type Record struct {
	Revision  int64
	Region    string              // last region code seen on a write; "" if none
	GPCSeenAt time.Time           // first write that carried a GPC signal; zero if none
	Decisions map[string]Decision // by purpose id; only purposes ever decided

	RestrictedAt time.Time // processing restricted since; zero if not restricted
	MinorSince   time.Time // marked as a minor since; zero if not a minor
	GuardianAt   time.Time // a guardian last confirmed the decisions; zero if never
	// GuardianRevision is the revision the guardian's last confirmation saw:
	// it covers the decisions stored at or before it. 0: no confirmation, or
	// one stored before confirmations recorded their revision.
	GuardianRevision int64
	// LinkedTo is the user a visitor was linked to; "" if none. Reads and
	// writes of the visitor follow it.
	LinkedTo string
	// Linked: this record was read through a visitor's link (it is the
	// user's record, LinkedTo of the visitor).
	Linked bool
	// Signals are the IAB strings last recorded for the subject; nil if
	// none (or not read: a check reads them only when asked).
	Signals *AdSignals
}

// Restricted reports whether processing is restricted.
func (r Record) Restricted() bool { return !r.RestrictedAt.IsZero() }

// Minor reports whether the subject is marked as a minor.
func (r Record) Minor() bool { return !r.MinorSince.IsZero() }

// Reason explains an effective answer, so the caller can log why.
type Reason string

const (
	ReasonExplicit      Reason = "explicit"       // the subject's own decision
	ReasonDefault       Reason = "default"        // no decision: the region's mechanism decides
	ReasonGPC           Reason = "gpc"            // Global Privacy Control opted the subject out
	ReasonExpired       Reason = "expired"        // the decision outlived the purpose's lifetime
	ReasonPolicyChanged Reason = "policy_changed" // the purpose's version was bumped since
	ReasonNecessary     Reason = "necessary"      // strictly necessary: always allowed
	ReasonRestricted    Reason = "restricted"     // processing restricted by a rights request
	ReasonGuardian      Reason = "awaiting_guardian"
	// ReasonStoreUnavailable: the store could not be read, so the answer
	// fails closed (see FailClosed).
	ReasonStoreUnavailable Reason = "store_unavailable"
)

// Answer is the effective answer for one purpose.
type Answer struct {
	Allowed bool
	Reason  Reason
}

// NewDecision builds the stored decision for a choice made now:
// PolicyVersion = purpose version, ExpiresAt = now + purpose lifetime (zero
// when lifetime is 0), DecidedAt truncated to the second.
//
// Both times are UTC and counted from the truncated DecidedAt, so that
// ExpiresAt-DecidedAt is exactly the lifetime and both survive a round trip
// through a store that keeps whole seconds.
func NewDecision(pu Purpose, granted bool, source Source, regionCode string, now time.Time) Decision {
	at := now.UTC().Truncate(time.Second)
	d := Decision{
		Granted:       granted,
		DecidedAt:     at,
		Source:        source,
		PolicyVersion: pu.Version,
		Region:        regionCode,
	}
	if pu.Lifetime > 0 {
		d.ExpiresAt = at.Add(pu.Lifetime)
	}
	return d
}
