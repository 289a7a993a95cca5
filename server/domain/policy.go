package domain

import (
	"slices"
	"strings"
	"time"
)

// Mechanism is how a region treats a purpose nobody has decided on yet.
type Mechanism string

const (
	MechanismOptIn      Mechanism = "opt_in"      // denied until the subject grants it
	MechanismOptOut     Mechanism = "opt_out"     // granted until the subject (or GPC) denies it
	MechanismNoticeOnly Mechanism = "notice_only" // granted; the subject is only informed
)

// Purpose is one thing data is used for, as the policy file defines it.
type Purpose struct {
	ID           string            // e.g. "analytics", "marketing.email"; [a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)? , max 64 chars
	Version      int               // >= 1; bumping it makes earlier decisions for this purpose stale
	Lifetime     time.Duration     // how long a decision lasts before re-asking; 0 = never expires
	GPC          bool              // a Global Privacy Control signal opts the subject out of it in opt-out regions
	AlwaysOptIn  bool              // undecided means denied in every region, whatever its mechanism (e.g. SMS under the US TCPA)
	Necessary    bool              // strictly necessary: always granted, cannot be denied (the "necessary" purpose)
	LegalBasis   string            // "consent", "legitimate_interest", "contract", "legal_obligation"
	Titles       map[string]string // by language ("en", "de", "fr"); "en" required
	Descriptions map[string]string // by language; "en" required
}

// Region is a set of places that share one consent mechanism.
type Region struct {
	ID        string
	Mechanism Mechanism
	Codes     []string // ISO 3166-1 alpha-2 ("DE") or ISO 3166-2 ("US-CA") codes that belong to it
}

// Policy is a parsed, validated policy file. Build it with ParsePolicy or
// LoadPolicy; treat it as read-only afterwards, since it is shared by every
// request while it is in force. A Policy written as a literal has no
// indexes: it knows no purposes and only the zero Region.
type Policy struct {
	Version       string    // the policy file's own version label, recorded on every event, e.g. "2026-11-01"
	DefaultRegion string    // region ID used when a code is unknown or absent
	Purposes      []Purpose // in file order (the order UIs show them)
	Regions       []Region
	IAB           *IAB // the optional iab section; nil: no IAB signals
	// VendorList is the IAB Global Vendor List in force with this policy
	// (--gvl), narrowed to IAB.TCF.Vendors when given; nil: none. Loaded,
	// checked and reloaded together with the policy.
	VendorList *GVL

	purposeIndex map[string]int // purpose ID -> index in Purposes
	regionIndex  map[string]int // region ID -> index in Regions
	codeIndex    map[string]int // region code -> index in Regions
	purposeIDs   []string
	nonNecessary []string
}

// newPolicy is the one place a Policy gets its indexes, so that every lookup
// is a map access. It does not validate: the parser calls it only once ids
// and codes are known to be unique and the default region to exist.
func newPolicy(version, defaultRegion string, purposes []Purpose, regions []Region) *Policy {
	p := &Policy{
		Version:       version,
		DefaultRegion: defaultRegion,
		Purposes:      purposes,
		Regions:       regions,
		purposeIndex:  make(map[string]int, len(purposes)),
		regionIndex:   make(map[string]int, len(regions)),
		codeIndex:     make(map[string]int),
		purposeIDs:    make([]string, 0, len(purposes)),
		nonNecessary:  make([]string, 0, len(purposes)),
	}
	for i, pu := range purposes {
		p.purposeIndex[pu.ID] = i
		p.purposeIDs = append(p.purposeIDs, pu.ID)
		if !pu.Necessary {
			p.nonNecessary = append(p.nonNecessary, pu.ID)
		}
	}
	for i, r := range regions {
		p.regionIndex[r.ID] = i
		for _, c := range r.Codes {
			p.codeIndex[c] = i
		}
	}
	return p
}

// Purpose returns the purpose with this id.
func (p *Policy) Purpose(id string) (Purpose, bool) {
	i, ok := p.purposeIndex[id]
	if !ok {
		return Purpose{}, false
	}
	return p.Purposes[i], true
}

// PurposeIDs returns every purpose id in file order. The slice is the
// caller's to keep or change.
func (p *Policy) PurposeIDs() []string {
	return slices.Clone(p.purposeIDs)
}

// NonNecessaryPurposeIDs returns the ids of the purposes a subject can deny,
// in file order: what "withdraw everything" and "restrict" act on.
func (p *Policy) NonNecessaryPurposeIDs() []string {
	return slices.Clone(p.nonNecessary)
}

// StatsRegion is the region label statistics count a region code under:
// the code itself when the policy lists it, else its country ("US" for
// "US-XX") when the policy lists that, else the default region's id (for ""
// and every code the policy does not list). The labels are thus bounded by
// the policy: its codes and one region id, whatever codes callers send.
func (p *Policy) StatsRegion(code string) string {
	if code != "" {
		if _, ok := p.codeIndex[code]; ok {
			return code
		}
		if country, _, found := strings.Cut(code, "-"); found {
			if _, ok := p.codeIndex[country]; ok {
				return country
			}
		}
	}
	return p.DefaultRegion
}

// RegionFor resolves a region code: exact code match, else the country part
// of "US-CA" ("US"), else the default region. "" -> default region.
//
// The country fallback lets a file list "US-CA" for a state-level law and
// "US" for the rest of the country, and lets a GeoIP lookup that returns a
// subdivision the file does not list still land in its country's region.
func (p *Policy) RegionFor(code string) Region {
	if code != "" {
		if i, ok := p.codeIndex[code]; ok {
			return p.Regions[i]
		}
		if country, _, found := strings.Cut(code, "-"); found {
			if i, ok := p.codeIndex[country]; ok {
				return p.Regions[i]
			}
		}
	}
	if i, ok := p.regionIndex[p.DefaultRegion]; ok {
		return p.Regions[i]
	}
	// No default region: the zero Region has no mechanism, which Effective
	// treats as opt-in (the conservative answer).
	return Region{}
}
