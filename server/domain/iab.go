package domain

import (
	"slices"
	"strings"
	"time"
)

// IAB is the policy's optional `iab` section: how the person's choices are
// also expressed as the IAB's ad-tech signals, the TCF v2.2 TC string in the
// regions listed under TCF and the GPP string (US sections) in those listed
// under GPP. Nil when the policy has no such section.
type IAB struct {
	CMPID      int  // the CMP id the operator registered with IAB Europe (1..4095)
	CMPVersion int  // the operator's CMP version (1..4095)
	TCF        *TCF // nil: no TCF
	GPP        *GPP // nil: no GPP
}

// TCF is the TCF v2.2 part of the iab section.
type TCF struct {
	Regions             []string // region ids of the policy whose codes get a TC string
	PublisherCountry    string   // ISO 3166-1 alpha-2, the TC string's publisherCC
	PurposeOneTreatment bool
	Vendors             []int        // GVL vendor ids the site works with; nil: every vendor of the vendor list
	Purposes            []TCFMapping // in policy order
}

// TCFMapping says what a grant or denial of one consentd purpose means in TCF.
type TCFMapping struct {
	Purpose            string // consentd purpose id (never "necessary")
	Consent            []int  // TCF purposes (1..11) whose consent bit is set only when Purpose is granted
	LegitimateInterest []int  // TCF purposes (2, 7..11) whose LI transparency bit holds until Purpose is denied
	SpecialFeatures    []int  // TCF special features (1..2) opted in only when Purpose is granted
}

// GPP is the GPP (US sections) part of the iab section.
type GPP struct {
	Regions       []string // region ids whose codes get a GPP string
	Purpose       string   // the consentd purpose whose denial is the opt-out of sale, sharing and targeted advertising
	StateSections []string // GPP state section names (e.g. "usca") used instead of usnat for their state's code
	Notices       GPPNotices
	MSPA          GPPMSPA
}

// GPPNotices are the notice fields of the US sections: true = the notice was
// given (GPP value 1), false = not given (2).
type GPPNotices struct {
	Sharing                   bool
	SaleOptOut                bool
	SharingOptOut             bool
	TargetedAdvertisingOptOut bool
}

// GPPMSPA are the MSPA fields of the US sections.
type GPPMSPA struct {
	CoveredTransaction bool
	Mode               string // "" (not covered), "opt_out_option" or "service_provider"
}

// MSPA modes of the gpp.mspa.mode field.
const (
	MSPAOptOutOption    = "opt_out_option"
	MSPAServiceProvider = "service_provider"
)

// GPP section ids of the GPP section table (GPP specification, "Section
// Information"): the id the GPP header lists for each section. The state
// sections are those of the table as @iabgpp/cmpapi numbers them.
const (
	GPPSectionTCFEUv2 = 2
	GPPSectionUSNat   = 7
)

// gppSections are the GPP sections consentd knows, by API prefix. Only the US
// national section and the state sections listed here may be named in a
// policy's gpp.state_sections.
var gppSections = map[string]int{
	"tcfeuv2": GPPSectionTCFEUv2,
	"usnat":   GPPSectionUSNat,
	"usca":    8,
	"usva":    9,
	"usco":    10,
	"usut":    11,
	"usct":    12,
	"usfl":    13,
	"usmt":    14,
	"usor":    15,
	"ustx":    16,
	"usde":    17,
	"usia":    18,
	"usne":    19,
	"usnh":    20,
	"usnj":    21,
	"ustn":    22,
	"usmn":    23,
	"usmd":    24,
	"usin":    25,
	"usky":    26,
	"usri":    27,
}

// gppStateSections are the names state_sections may hold, in table order.
var gppStateSections = []string{"usca", "usva", "usco", "usut", "usct", "usfl", "usmt", "usor", "ustx", "usde",
	"usia", "usne", "usnh", "usnj", "ustn", "usmn", "usmd", "usin", "usky", "usri"}

// GPPSectionID returns the section id of a GPP section name ("usnat" -> 7).
func GPPSectionID(name string) (int, bool) {
	id, ok := gppSections[name]
	return id, ok
}

// TCF purposes, special features, and the purposes TCF v2.2 allows to rest
// on legitimate interest.
const (
	TCFPurposes        = 11
	TCFSpecialFeatures = 2
)

var tcfLIPurposes = []int{2, 7, 8, 9, 10, 11}

// IAB scopes: the kind of IAB signal a region code gets. Two region codes
// with the same scope share one set of stored signals.
const (
	IABScopeNone = ""
	IABScopeTCF  = "tcf"
)

// IABScope names the IAB signals a region code gets: "tcf" for a code of a
// TCF region, "gpp:<section>" for a code of a GPP region ("gpp:usca" for
// US-CA when usca is one of the state sections, "gpp:usnat" otherwise), and
// "" when the code's region has neither (or the policy no iab section).
func (p *Policy) IABScope(code string) string {
	if p.IAB == nil {
		return IABScopeNone
	}
	region := p.RegionFor(code).ID
	if t := p.IAB.TCF; t != nil && slices.Contains(t.Regions, region) {
		return IABScopeTCF
	}
	if g := p.IAB.GPP; g != nil && slices.Contains(g.Regions, region) {
		return "gpp:" + g.Section(code)
	}
	return IABScopeNone
}

// Section is the GPP section a code of a GPP region gets: its state's
// section when the policy lists it ("US-CA" -> "usca"), else "usnat".
func (g *GPP) Section(code string) string {
	if country, state, ok := strings.Cut(code, "-"); ok && country == "US" {
		name := "us" + strings.ToLower(state)
		if slices.Contains(g.StateSections, name) {
			return name
		}
	}
	return "usnat"
}

// ConsentPurpose returns the consentd purpose whose grant a TCF purpose's
// consent bit stands for; false when no purpose maps to it.
func (t *TCF) ConsentPurpose(tcfPurpose int) (string, bool) {
	for _, m := range t.Purposes {
		if slices.Contains(m.Consent, tcfPurpose) {
			return m.Purpose, true
		}
	}
	return "", false
}

// SpecialFeaturePurpose returns the consentd purpose whose grant opts a
// special feature in; false when no purpose maps to it.
func (t *TCF) SpecialFeaturePurpose(feature int) (string, bool) {
	for _, m := range t.Purposes {
		if slices.Contains(m.SpecialFeatures, feature) {
			return m.Purpose, true
		}
	}
	return "", false
}

// AdSignals are the IAB strings a browser built from a subject's decisions
// at one revision (RecordAdSignals), as stored with the signals event.
type AdSignals struct {
	Region    string    // the region code they were made for
	Revision  int64     // the revision whose decisions they encode
	TCString  string    // TCF v2.2 TC string; "" outside TCF regions
	GPPString string    // GPP string; "" if none
	At        time.Time // when they were recorded
	// EventRevision is the revision the signals event got (Revision+1):
	// they describe the subject only while it is still the current one.
	EventRevision int64
}

// CurrentAdSignals returns the stored signals that still describe the
// subject as answered for region code: no write came after them, and they
// were made for a code of the same IAB scope. nil otherwise.
func (p *Policy) CurrentAdSignals(rec Record, code string) *AdSignals {
	sig := rec.Signals
	if sig == nil || sig.EventRevision != rec.Revision {
		return nil
	}
	scope := p.IABScope(code)
	if scope == IABScopeNone || p.IABScope(sig.Region) != scope {
		return nil
	}
	return sig
}
