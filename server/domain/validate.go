package domain

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"unicode/utf8"
)

// FieldError is a bad input naming the field it is in. Field uses the
// proto/JSON field names, so a caller can map it straight to the request.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

const (
	maxSubjectIDLength = 128
	subjectIDRule      = "must be 1-128 characters of A-Z a-z 0-9 . _ : @ + -"
	// Bad input is echoed back shortened: enough to spot the typo, never a
	// whole pasted token or e-mail address.
	maxEcho = 16
)

// ValidateSubjectID checks a subject id: 1-128 characters of
// [A-Za-z0-9._:@+-]. The alphabet keeps ids safe in URL paths, Redis key
// material and logs, and still fits user ids, UUIDs and e-mail-like ids.
func ValidateSubjectID(field, id string) error {
	if id == "" {
		return &FieldError{Field: field, Reason: subjectIDRule + ", got an empty string"}
	}
	if n := utf8.RuneCountInString(id); n > maxSubjectIDLength {
		return &FieldError{Field: field, Reason: fmt.Sprintf("%s, got %d characters", subjectIDRule, n)}
	}
	pos := 0
	for _, r := range id {
		pos++
		if !subjectIDChar(r) {
			// Name only the offending character, not the id around it.
			return &FieldError{Field: field, Reason: fmt.Sprintf("%s, got %s at position %d", subjectIDRule, strconv.QuoteRune(r), pos)}
		}
	}
	return nil
}

func subjectIDChar(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return true
	case r == '.', r == '_', r == ':', r == '@', r == '+', r == '-':
		return true
	}
	return false
}

// ValidateRegionCode checks an ISO 3166-1 alpha-2 ("DE") or ISO 3166-2
// ("US-CA") code, upper case as ISO writes them. "" is allowed: it means
// "use the subject's last known region, or the policy's default".
func ValidateRegionCode(field, code string) error {
	if code == "" || regionCodePattern.MatchString(code) {
		return nil
	}
	return &FieldError{Field: field, Reason: "must be an ISO 3166 code like \"DE\" or \"US-CA\" (upper case), got " + Quote(code, maxEcho)}
}

// ValidateDecisions checks an update: at least one entry, at most
// maxPurposes entries (maxPurposes <= 0: no limit), each purpose known to
// the policy, and the necessary purpose never denied (granting it is
// allowed, as a no-op, so a UI can send every checkbox it shows). When
// several entries are bad, the one with the smallest purpose id is reported,
// so the same request always gets the same error.
func ValidateDecisions(p *Policy, field string, decisions map[string]bool, maxPurposes int) error {
	if len(decisions) == 0 {
		return &FieldError{Field: field, Reason: "at least one purpose is required"}
	}
	if maxPurposes > 0 && len(decisions) > maxPurposes {
		return &FieldError{Field: field, Reason: fmt.Sprintf("at most %d purposes, got %d", maxPurposes, len(decisions))}
	}
	for _, id := range slices.Sorted(maps.Keys(decisions)) {
		entry := field + "[" + Quote(id, maxEcho) + "]"
		pu, ok := p.Purpose(id)
		if !ok {
			return &FieldError{Field: entry, Reason: "unknown purpose"}
		}
		if pu.Necessary && !decisions[id] {
			return &FieldError{Field: entry, Reason: "the necessary purpose cannot be denied"}
		}
	}
	return nil
}

// ValidatePurpose checks one purpose id against the policy.
func ValidatePurpose(p *Policy, field, id string) error {
	if id == "" {
		return &FieldError{Field: field, Reason: "required"}
	}
	if _, ok := p.Purpose(id); !ok {
		return &FieldError{Field: field, Reason: "unknown purpose " + Quote(id, maxEcho)}
	}
	return nil
}

// Quote shows input in an error message: quoted, and cut to limit
// characters (runes) with "..." after the closing quote when longer, so that
// the message stays readable and never carries a whole pasted text.
func Quote(s string, limit int) string {
	if utf8.RuneCountInString(s) <= limit {
		return strconv.Quote(s)
	}
	return strconv.Quote(string([]rune(s)[:limit])) + "..."
}
