package domain

import (
	"strings"
	"time"
)

// VisitorIDPrefix starts every anonymous visitor id the service mints.
const VisitorIDPrefix = "v_"

// IsVisitorID reports whether id has the form of a minted visitor id: "v_"
// and 22 base64url characters (128 random bits). Anonymous visitors' records
// expire after a time without activity; users' do not.
func IsVisitorID(id string) bool {
	rest, ok := strings.CutPrefix(id, VisitorIDPrefix)
	if !ok || len(rest) != 22 {
		return false
	}
	for _, r := range rest {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// LinkMerge is what linking a visitor to a user changes in the user's record.
type LinkMerge struct {
	// Decisions to write to the user, by purpose: the visitor's decision
	// where it wins (with Source SourceLink; its time, version, region and
	// expiry kept, so it ages as it would have). The store gives each the
	// revision of the user's write that merges it, so a guardian's earlier
	// confirmation of a minor user does not cover it.
	Decisions map[string]Decision
	GPCAt     time.Time // the visitor's GPC time, if earlier than the user's
	Restrict  bool      // the visitor was restricted and the user is not
	Minor     bool      // the visitor was marked a minor and the user is not
}

// Empty reports whether the merge changes nothing.
func (m LinkMerge) Empty() bool {
	return len(m.Decisions) == 0 && m.GPCAt.IsZero() && !m.Restrict && !m.Minor
}

// MergeLink merges a visitor's record into a user's: for each purpose the
// more restrictive decision wins.
//
//   - Only the visitor decided: the visitor's decision is taken (the person
//     chose before logging in; "undecided" is no decision to prefer).
//   - Only the user decided: the user's stands.
//   - One granted, the other denied: the denial wins, whichever is newer.
//   - Both granted: the newer grant is kept (it is the person's latest word
//     and may be under a newer purpose version); both denied: the user's
//     stands.
//   - The necessary purpose is never merged.
//
// Statuses merge the restrictive way too: the earlier GPC signal, a
// restriction, a minor mark. A guardian's confirmation is not carried over:
// it confirmed the decisions it saw.
func MergeLink(p *Policy, visitor, user Record) LinkMerge {
	m := LinkMerge{Decisions: map[string]Decision{}}
	for id, v := range visitor.Decisions {
		if pu, ok := p.Purpose(id); ok && pu.Necessary {
			continue
		}
		u, userDecided := user.Decisions[id]
		take := !userDecided ||
			(!v.Granted && u.Granted) ||
			(v.Granted && u.Granted && v.DecidedAt.After(u.DecidedAt))
		if take {
			v.Source = SourceLink
			m.Decisions[id] = v
		}
	}
	if !visitor.GPCSeenAt.IsZero() && (user.GPCSeenAt.IsZero() || visitor.GPCSeenAt.Before(user.GPCSeenAt)) {
		m.GPCAt = visitor.GPCSeenAt
	}
	m.Restrict = visitor.Restricted() && !user.Restricted()
	m.Minor = visitor.Minor() && !user.Minor()
	return m
}
