package domain

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzValidateSubjectID: an accepted id is 1-128 characters of the allowed
// alphabet; a refused one gets a FieldError naming subject_id that never
// echoes more than a character of the input.
func FuzzValidateSubjectID(f *testing.F) {
	for _, seed := range []string{"user-1", "visitor:abc@example.com", "", "a b", strings.Repeat("x", 129), "é", "\x00", "v_AbC-123+x.y"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, id string) {
		err := ValidateSubjectID("subject_id", id)
		if err == nil {
			if n := utf8.RuneCountInString(id); n < 1 || n > 128 {
				t.Fatalf("accepted %d characters", n)
			}
			for _, r := range id {
				if !subjectIDChar(r) {
					t.Fatalf("accepted %q", r)
				}
			}
			return
		}
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "subject_id" {
			t.Fatalf("error %v does not name subject_id", err)
		}
		if len(id) > 24 && strings.Contains(err.Error(), id) {
			t.Fatalf("error echoes the whole input")
		}
	})
}

// FuzzParsePolicy: any input either loads into a policy that keeps the
// promises the rules rely on, or is refused with an error; never a panic.
func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(rulesPolicy))
	f.Add([]byte("version: x\n"))
	f.Add([]byte("purposes: [1, 2]\nregions: {a: b}\n"))
	f.Add([]byte("&a [*a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePolicy(data)
		if err != nil {
			if p != nil {
				t.Fatal("a policy returned with an error")
			}
			return
		}
		necessary := 0
		for _, pu := range p.Purposes {
			if pu.Necessary {
				necessary++
			}
			if got, ok := p.Purpose(pu.ID); !ok || got.ID != pu.ID {
				t.Fatalf("purpose %q not found by id", pu.ID)
			}
			if pu.Titles["en"] == "" || pu.Version < 1 {
				t.Fatalf("purpose %q loaded without an English title or a version", pu.ID)
			}
		}
		if necessary != 1 {
			t.Fatalf("%d necessary purposes", necessary)
		}
		if p.RegionFor("").ID != p.DefaultRegion {
			t.Fatal("the default region does not resolve")
		}
	})
}

// FuzzValidateDecisions: whatever a client sends, an accepted update names
// only known purposes and never denies necessary.
func FuzzValidateDecisions(f *testing.F) {
	f.Add("analytics", true, "ads", false)
	f.Add("necessary", false, "", true)
	f.Add("telepathy", true, "marketing.email", true)
	f.Fuzz(func(t *testing.T, p1 string, g1 bool, p2 string, g2 bool) {
		policy, err := ParsePolicy([]byte(rulesPolicy))
		if err != nil {
			t.Fatal(err)
		}
		decisions := map[string]bool{p1: g1, p2: g2}
		if err := ValidateDecisions(policy, "decisions", decisions, 64); err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || !strings.HasPrefix(fe.Field, "decisions") {
				t.Fatalf("error %v does not name decisions", err)
			}
			return
		}
		for id, granted := range decisions {
			pu, ok := policy.Purpose(id)
			if !ok {
				t.Fatalf("accepted unknown purpose %q", id)
			}
			if pu.Necessary && !granted {
				t.Fatal("accepted denying necessary")
			}
		}
	})
}
