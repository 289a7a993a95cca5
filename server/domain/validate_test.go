package domain

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// checkFieldError asserts err is a *FieldError with the given message, or
// nil when want is "".
func checkFieldError(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("got %v, want no error", err)
		}
		return
	}
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("got %T %v, want a *FieldError", err, err)
	}
	if got := err.Error(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got := fe.Field + ": " + fe.Reason; got != err.Error() {
		t.Errorf("Error() = %q, not Field: Reason %q", err.Error(), got)
	}
}

func TestValidateSubjectID(t *testing.T) {
	const rule = "subject_id: must be 1-128 characters of A-Z a-z 0-9 . _ : @ + -, got "
	cases := []struct {
		name string
		id   string
		want string
	}{
		{"a user id", "user_42", ""},
		{"a UUID", "0f8fad5b-d9cb-469f-a165-70867728950e", ""},
		{"an email-like id", "jane.doe+news@example.com", ""},
		{"a namespaced id", "crm:Account:00123", ""},
		{"one character", "a", ""},
		{"exactly 128 characters", strings.Repeat("a", 128), ""},
		{"empty", "", rule + "an empty string"},
		{"129 characters", strings.Repeat("a", 129), rule + "129 characters"},
		{"130 characters, with bad ones too, reports the length", strings.Repeat("a b", 43) + "a", rule + "130 characters"},
		{"a space", "jane doe", rule + "' ' at position 5"},
		{"a slash", "users/42", rule + "'/' at position 6"},
		{"a backslash", `a\b`, rule + `'\\' at position 2`},
		{"a percent-encoded slash", "a%2Fb", rule + "'%' at position 2"},
		{"unicode letters", "jürgen", rule + "'ü' at position 2"},
		{"an emoji", "🙂", rule + "'🙂' at position 1"},
		{"a newline", "a\nb", rule + `'\n' at position 2`},
		{"a NUL byte", "a\x00", rule + `'\x00' at position 2`},
		{"a quote", `a"b`, rule + `'"' at position 2`},
		{"invalid UTF-8", "a\xff", rule + "'�' at position 2"},
		{"long unicode counts characters, not bytes", strings.Repeat("é", 129), rule + "129 characters"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkFieldError(t, ValidateSubjectID("subject_id", tc.id), tc.want)
		})
	}
}

// An error must not hand a long secret-looking input back to the caller.
func TestValidateSubjectIDDoesNotEchoInput(t *testing.T) {
	id := "secret-token-" + strings.Repeat("x", 200)
	err := ValidateSubjectID("subject_id", id)
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("error %v echoes the input", err)
	}
}

func TestValidateRegionCode(t *testing.T) {
	const rule = `region: must be an ISO 3166 code like "DE" or "US-CA" (upper case), got `
	cases := []struct {
		name string
		code string
		want string
	}{
		{"empty means the subject's own region", "", ""},
		{"a country", "DE", ""},
		{"a state", "US-CA", ""},
		{"a numeric subdivision", "PT-20", ""},
		{"a one-character subdivision", "FR-A", ""},
		{"lower case", "de", rule + `"de"`},
		{"mixed case", "Us-ca", rule + `"Us-ca"`},
		{"three letters", "DEU", rule + `"DEU"`},
		{"one letter", "D", rule + `"D"`},
		{"a four-character subdivision", "US-CALI", rule + `"US-CALI"`},
		{"an underscore", "US_CA", rule + `"US_CA"`},
		{"an empty subdivision", "US-", rule + `"US-"`},
		{"a space", "US CA", rule + `"US CA"`},
		{"a slash", "US/CA", rule + `"US/CA"`},
		{"surrounding spaces", " DE ", rule + `" DE "`},
		{"unicode", "DÉ", rule + `"DÉ"`},
		{"a newline", "DE\n", rule + `"DE\n"`},
		{"long input is cut to 16 characters", strings.Repeat("X", 100), rule + `"XXXXXXXXXXXXXXXX"...`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkFieldError(t, ValidateRegionCode("region", tc.code), tc.want)
		})
	}
}

func TestValidateDecisions(t *testing.T) {
	p := mustParse(t, rulesPolicy)
	many := map[string]bool{}
	for i := range 9 {
		many[fmt.Sprintf("p%d", i)] = true
	}
	cases := []struct {
		name      string
		decisions map[string]bool
		max       int
		want      string
	}{
		{"one grant", map[string]bool{"ads": true}, 8, ""},
		{"one denial", map[string]bool{"ads": false}, 8, ""},
		{"several purposes", map[string]bool{"ads": true, "analytics": false, "marketing.email": true}, 8, ""},
		{"granting necessary is a no-op and allowed", map[string]bool{"necessary": true, "ads": false}, 8, ""},
		{"exactly the maximum", map[string]bool{"ads": true, "analytics": true}, 2, ""},
		{"no limit when max is 0", map[string]bool{"ads": true, "analytics": true, "marketing.email": true}, 0, ""},
		{"nil", nil, 8, "decisions: at least one purpose is required"},
		{"empty", map[string]bool{}, 8, "decisions: at least one purpose is required"},
		{"too many", many, 8, "decisions: at most 8 purposes, got 9"},
		{"an unknown purpose", map[string]bool{"xyz": true}, 8, `decisions["xyz"]: unknown purpose`},
		{"an unknown purpose among known ones", map[string]bool{"ads": true, "xyz": false}, 8, `decisions["xyz"]: unknown purpose`},
		{"case matters", map[string]bool{"Ads": true}, 8, `decisions["Ads"]: unknown purpose`},
		{"the empty purpose", map[string]bool{"": true}, 8, `decisions[""]: unknown purpose`},
		{"a unicode purpose", map[string]bool{"anälytics": true}, 8, `decisions["anälytics"]: unknown purpose`},
		{"a long purpose is cut in the field name", map[string]bool{strings.Repeat("a", 200): true}, 8, `decisions["aaaaaaaaaaaaaaaa"...]: unknown purpose`},
		{"denying necessary", map[string]bool{"necessary": false}, 8, `decisions["necessary"]: the necessary purpose cannot be denied`},
		{"denying necessary among valid entries", map[string]bool{"ads": true, "necessary": false}, 8, `decisions["necessary"]: the necessary purpose cannot be denied`},
		{"the smallest bad id is reported, every time", map[string]bool{"zzz": true, "necessary": false, "bbb": true}, 8, `decisions["bbb"]: unknown purpose`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkFieldError(t, ValidateDecisions(p, "decisions", tc.decisions, tc.max), tc.want)
		})
	}
}

func TestValidatePurpose(t *testing.T) {
	p := mustParse(t, rulesPolicy)
	cases := []struct {
		name string
		id   string
		want string
	}{
		{"a known purpose", "ads", ""},
		{"a dotted purpose", "marketing.email", ""},
		{"necessary is a purpose", "necessary", ""},
		{"unknown", "xyz", `purpose: unknown purpose "xyz"`},
		{"only the group of a dotted purpose", "marketing", `purpose: unknown purpose "marketing"`},
		{"upper case", "ADS", `purpose: unknown purpose "ADS"`},
		{"a space", "a ds", `purpose: unknown purpose "a ds"`},
		{"a slash", "ads/x", `purpose: unknown purpose "ads/x"`},
		{"unicode", "ädß", `purpose: unknown purpose "ädß"`},
		{"empty", "", "purpose: required"},
		{"too long", strings.Repeat("b", 65), `purpose: unknown purpose "bbbbbbbbbbbbbbbb"...`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkFieldError(t, ValidatePurpose(p, "purpose", tc.id), tc.want)
		})
	}
}

func TestQuote(t *testing.T) {
	cases := []struct {
		in    string
		limit int
		want  string
	}{
		{"", 16, `""`},
		{"exactly-16-chars", 16, `"exactly-16-chars"`},
		{"seventeen-chars!!", 16, `"seventeen-chars!"...`},
		{"ääääää", 4, `"ääää"...`}, // runes, not bytes
		{"a\nb", 16, `"a\nb"`},
	}
	for _, tc := range cases {
		if got := Quote(tc.in, tc.limit); got != tc.want {
			t.Errorf("Quote(%q, %d) = %s, want %s", tc.in, tc.limit, got, tc.want)
		}
	}
}
