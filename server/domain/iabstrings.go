package domain

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Decoding of the IAB strings a browser sends (RecordAdSignals): only what
// the server checks, with a small bit reader (no IAB library for Go is at
// hand). The layouts are the IAB's: the TC string's core segment ("TCF v2.2
// consent string and vendor list formats") and the GPP header ("GPP
// Consent String Specification", header section).

// MaxAdSignalLength bounds each string.
const MaxAdSignalLength = 8192

// TCCore is what the server reads of a TC string's core segment.
type TCCore struct {
	Version           int
	CMPID             int
	CMPVersion        int
	VendorListVersion int
	PolicyVersion     int
	SpecialFeatures   []int // opted in (1-12)
	PurposeConsents   []int // consented (1-24)
	PurposeLI         []int // legitimate interest established (1-24)
	PublisherCountry  string
}

// bitReader reads big-endian bit fields from bytes.
type bitReader struct {
	b   []byte
	pos int // in bits
}

var errShort = errors.New("ends before its fields do")

func (r *bitReader) bits(n int) (int, error) {
	if r.pos+n > len(r.b)*8 {
		return 0, errShort
	}
	v := 0
	for range n {
		bit := (r.b[r.pos/8] >> (7 - r.pos%8)) & 1
		v = v<<1 | int(bit)
		r.pos++
	}
	return v, nil
}

func (r *bitReader) flags(n int) ([]int, error) {
	var set []int
	for i := 1; i <= n; i++ {
		v, err := r.bits(1)
		if err != nil {
			return nil, err
		}
		if v == 1 {
			set = append(set, i)
		}
	}
	return set, nil
}

// base64URLSegment decodes one segment: base64url without padding, six
// bits a character. The IAB strings are bit fields, not bytes: the last
// character's bits are all data, so it is decoded by hand (a strict base64
// decoder would refuse the bits past the last whole byte).
func base64URLSegment(seg string) ([]byte, error) {
	if seg == "" {
		return nil, errors.New("has an empty segment")
	}
	out := make([]byte, 0, len(seg)*6/8+1)
	acc, n := 0, 0
	for i := range len(seg) {
		v := strings.IndexByte(base64URLAlphabet, seg[i])
		if v < 0 {
			return nil, fmt.Errorf("holds %s: its segments are base64url (A-Z a-z 0-9 - _)", Quote(seg[i:i+1], 4))
		}
		acc, n = acc<<6|v, n+6
		if n >= 8 {
			out = append(out, byte(acc>>(n-8)))
			n -= 8
			acc &= 1<<n - 1
		}
	}
	if n > 0 {
		out = append(out, byte(acc<<(8-n)))
	}
	return out, nil
}

const base64URLAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// checkAdSignalString checks length and alphabet: segments of base64url
// separated by sep.
func checkAdSignalString(s, sep string) ([]string, error) {
	if len(s) > MaxAdSignalLength {
		return nil, fmt.Errorf("at most %d characters, got %d", MaxAdSignalLength, len(s))
	}
	segs := strings.Split(s, sep)
	for _, seg := range segs {
		if _, err := base64URLSegment(seg); err != nil {
			return nil, err
		}
	}
	return segs, nil
}

// DecodeTCCore reads a TC string's core segment (the first of its
// "."-separated segments).
func DecodeTCCore(s string) (TCCore, error) {
	segs, err := checkAdSignalString(s, ".")
	if err != nil {
		return TCCore{}, err
	}
	b, _ := base64URLSegment(segs[0])
	r := &bitReader{b: b}
	var c TCCore
	read := func(dst *int, n int) {
		if err == nil {
			*dst, err = r.bits(n)
		}
	}
	read(&c.Version, 6)
	if err == nil && c.Version != 2 {
		return TCCore{}, fmt.Errorf("version %d: only TCF v2 TC strings (version 2) are accepted", c.Version)
	}
	var skip int
	read(&skip, 36) // created
	read(&skip, 36) // last updated
	read(&c.CMPID, 12)
	read(&c.CMPVersion, 12)
	read(&skip, 6)  // consent screen
	read(&skip, 12) // consent language
	read(&c.VendorListVersion, 12)
	read(&c.PolicyVersion, 6)
	read(&skip, 1) // is service specific
	read(&skip, 1) // use non-standard texts
	if err == nil {
		c.SpecialFeatures, err = r.flags(12)
	}
	if err == nil {
		c.PurposeConsents, err = r.flags(24)
	}
	if err == nil {
		c.PurposeLI, err = r.flags(24)
	}
	read(&skip, 1) // purpose one treatment
	var cc1, cc2 int
	read(&cc1, 6)
	read(&cc2, 6)
	// The vendor sections and the publisher restrictions are not checked,
	// only read to the end: a core segment cut short is not a TC string
	// (the IAB's own decoder refuses it too).
	for _, section := range []string{"vendor consents", "vendor legitimate interests"} {
		if err == nil {
			if err = r.vendorSection(); err != nil {
				err = fmt.Errorf("%s section %w", section, err)
			}
		}
	}
	var restrictions int
	read(&restrictions, 12)
	for range restrictions {
		read(&skip, 8) // purpose id and restriction type
		if err == nil {
			err = r.rangeEntries()
		}
	}
	if err != nil {
		return TCCore{}, fmt.Errorf("core segment %w", err)
	}
	c.PublisherCountry = string(rune('A'+cc1)) + string(rune('A'+cc2))
	return c, nil
}

// vendorSection skips a vendor consent or legitimate-interest section:
// MaxVendorId, then a bit field of that many bits or range entries.
func (r *bitReader) vendorSection() error {
	maxID, err := r.bits(16)
	if err != nil {
		return err
	}
	isRange, err := r.bits(1)
	if err != nil {
		return err
	}
	if isRange == 1 {
		return r.rangeEntries()
	}
	if r.pos+maxID > len(r.b)*8 {
		return errShort
	}
	r.pos += maxID
	return nil
}

// rangeEntries skips NumEntries (12 bits) entries of a vendor id or range.
func (r *bitReader) rangeEntries() error {
	n, err := r.bits(12)
	for range n {
		var isRange int
		if err == nil {
			isRange, err = r.bits(1)
		}
		if err == nil {
			_, err = r.bits(16 + 16*isRange)
		}
	}
	return err
}

// DecodeGPPSections reads a GPP string's header and returns the section ids
// it lists, checking that one section follows the header for each.
func DecodeGPPSections(s string) ([]int, error) {
	segs, err := checkAdSignalString(strings.ReplaceAll(s, "~", "."), ".")
	if err != nil {
		return nil, err
	}
	b, _ := base64URLSegment(segs[0])
	r := &bitReader{b: b}
	typ, err := r.bits(6)
	if err != nil {
		return nil, fmt.Errorf("header %w", err)
	}
	if typ != 3 {
		return nil, fmt.Errorf("header type %d: a GPP header has type 3", typ)
	}
	version, err := r.bits(6)
	if err != nil {
		return nil, fmt.Errorf("header %w", err)
	}
	if version != 1 {
		return nil, fmt.Errorf("header version %d: only GPP version 1 is accepted", version)
	}
	ids, err := fibonacciRange(r)
	if err != nil {
		return nil, fmt.Errorf("header section ids %w", err)
	}
	if sections := len(strings.Split(s, "~")) - 1; sections != len(ids) {
		return nil, fmt.Errorf("the header lists %d sections, the string holds %d", len(ids), sections)
	}
	return ids, nil
}

// fibonacciRange reads the GPP header's section id list: a 12-bit count,
// then per entry a range flag and one (single) or two (range) Fibonacci
// coded integers, each an offset from the previous id.
func fibonacciRange(r *bitReader) ([]int, error) {
	n, err := r.bits(12)
	if err != nil {
		return nil, err
	}
	var ids []int
	last := 0
	for range n {
		isRange, err := r.bits(1)
		if err != nil {
			return nil, err
		}
		first, err := fibonacci(r)
		if err != nil {
			return nil, err
		}
		first += last
		last = first
		end := first
		if isRange == 1 {
			d, err := fibonacci(r)
			if err != nil {
				return nil, err
			}
			end = last + d
			last = end
		}
		if end-first > 64 {
			return nil, errors.New("lists an implausibly long range")
		}
		for id := first; id <= end; id++ {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// fibonacci reads a Fibonacci-coded integer: bit i (from 0) stands for the
// i-th Fibonacci number 1, 2, 3, 5, ...; two 1 bits in a row end it.
func fibonacci(r *bitReader) (int, error) {
	v, a, b, prev := 0, 1, 2, 0
	for i := 0; i < 40; i++ {
		bit, err := r.bits(1)
		if err != nil {
			return 0, err
		}
		if bit == 1 && prev == 1 {
			return v, nil
		}
		if bit == 1 {
			v += a
		}
		prev = bit
		a, b = b, a+b
	}
	return 0, errors.New("holds a Fibonacci integer that does not end")
}

// CheckAdSignals checks the IAB strings a browser sends for region code,
// built from rec (the subject's record at the revision they were made for):
// the strings the code's IAB scope needs and no other, each well formed, the
// TC string with the policy's CMP id, claiming no purpose consent or special
// feature opt-in whose mapped purpose is not allowed in rec, and the GPP
// string with exactly the sections the code gets. Errors are FieldErrors
// naming region, tc_string or gpp_string.
func (p *Policy) CheckAdSignals(rec Record, code, tc, gpp string, now time.Time) error {
	scope := p.IABScope(code)
	if scope == IABScopeNone {
		return &FieldError{Field: "region", Reason: fmt.Sprintf("%s is in region %q, which gets no IAB signals (the policy's iab.tcf.regions and iab.gpp.regions)", Quote(code, maxEcho), p.RegionFor(code).ID)}
	}
	var wantSections []int
	if scope == IABScopeTCF {
		if tc == "" {
			return &FieldError{Field: "tc_string", Reason: "required: " + Quote(code, maxEcho) + " is in a TCF region"}
		}
		if err := p.checkTCString(rec, code, tc, now); err != nil {
			return err
		}
		if gpp == "" {
			return nil
		}
		wantSections = []int{GPPSectionTCFEUv2}
	} else {
		if tc != "" {
			return &FieldError{Field: "tc_string", Reason: "must be empty: " + Quote(code, maxEcho) + " is in a GPP region, not a TCF one"}
		}
		if gpp == "" {
			return &FieldError{Field: "gpp_string", Reason: "required: " + Quote(code, maxEcho) + " is in a GPP region"}
		}
		id, _ := GPPSectionID(strings.TrimPrefix(scope, "gpp:"))
		wantSections = []int{id}
	}
	ids, err := DecodeGPPSections(gpp)
	if err != nil {
		return &FieldError{Field: "gpp_string", Reason: "not a GPP string: " + err.Error()}
	}
	if !slices.Equal(ids, wantSections) {
		return &FieldError{Field: "gpp_string", Reason: fmt.Sprintf("has sections %v, %s needs exactly %v (%s)", ids, Quote(code, maxEcho), wantSections, sectionNames(wantSections))}
	}
	return nil
}

func sectionNames(ids []int) string {
	var names []string
	for _, id := range ids {
		for name, v := range gppSections {
			if v == id {
				names = append(names, name)
			}
		}
	}
	return strings.Join(names, ", ")
}

func (p *Policy) checkTCString(rec Record, code, tc string, now time.Time) error {
	core, err := DecodeTCCore(tc)
	if err != nil {
		return &FieldError{Field: "tc_string", Reason: "not a TC string: " + err.Error()}
	}
	if core.CMPID != p.IAB.CMPID {
		return &FieldError{Field: "tc_string", Reason: fmt.Sprintf("has CMP id %d, this service's is %d (iab.cmp_id)", core.CMPID, p.IAB.CMPID)}
	}
	t := p.IAB.TCF
	switch {
	case core.CMPVersion < 1:
		return &FieldError{Field: "tc_string", Reason: "has CMP version 0; a TC string carries the CMP's version (iab.cmp_version)"}
	case core.VendorListVersion < 1:
		return &FieldError{Field: "tc_string", Reason: "has vendor list version 0; a TC string names the vendor list it was made with"}
	case core.PublisherCountry != t.PublisherCountry:
		return &FieldError{Field: "tc_string", Reason: fmt.Sprintf("has publisher country %s, the policy's is %s (iab.tcf.publisher_country)", Quote(core.PublisherCountry, 8), t.PublisherCountry)}
	}
	allowed := func(purpose string) bool { return Effective(p, purpose, rec, code, now).Allowed }
	for _, tp := range core.PurposeConsents {
		purpose, ok := t.ConsentPurpose(tp)
		switch {
		case !ok:
			return &FieldError{Field: "tc_string", Reason: fmt.Sprintf("consents to TCF purpose %d, which no purpose of the policy maps to", tp)}
		case !allowed(purpose):
			return &FieldError{Field: "tc_string", Reason: fmt.Sprintf("consents to TCF purpose %d, but %q is not granted at revision %d", tp, purpose, rec.Revision)}
		}
	}
	for _, f := range core.SpecialFeatures {
		purpose, ok := t.SpecialFeaturePurpose(f)
		switch {
		case !ok:
			return &FieldError{Field: "tc_string", Reason: fmt.Sprintf("opts in to special feature %d, which no purpose of the policy maps to", f)}
		case !allowed(purpose):
			return &FieldError{Field: "tc_string", Reason: fmt.Sprintf("opts in to special feature %d, but %q is not granted at revision %d", f, purpose, rec.Revision)}
		}
	}
	return nil
}
