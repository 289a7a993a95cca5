package domain

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestShippedPolicy(t *testing.T) {
	p, err := LoadPolicy("../../deploy/policy.yaml")
	if err != nil {
		t.Fatalf("deploy/policy.yaml does not load:\n%v", err)
	}
	if p.Version == "" {
		t.Error("no version label")
	}
	wantIDs := []string{"necessary", "functional", "analytics", "ads", "marketing.email", "marketing.sms", "marketing.phone", "marketing.push", "marketing.in_app"}
	if got := p.PurposeIDs(); !slices.Equal(got, wantIDs) {
		t.Errorf("purposes = %v, want %v", got, wantIDs)
	}
	if got := p.NonNecessaryPurposeIDs(); !slices.Equal(got, wantIDs[1:]) {
		t.Errorf("non-necessary purposes = %v, want %v", got, wantIDs[1:])
	}
	for _, pu := range p.Purposes {
		if pu.Version != 1 {
			t.Errorf("%s: version %d, want 1", pu.ID, pu.Version)
		}
		if got, want := pu.Necessary, pu.ID == "necessary"; got != want {
			t.Errorf("%s: necessary = %v, want %v", pu.ID, got, want)
		}
		if got, want := pu.GPC, pu.ID == "ads"; got != want {
			t.Errorf("%s: gpc = %v, want %v", pu.ID, got, want)
		}
		// Texts and calls need prior consent under the US TCPA, even where
		// ads and analytics are opt-out.
		if got, want := pu.AlwaysOptIn, pu.ID == "marketing.sms" || pu.ID == "marketing.phone"; got != want {
			t.Errorf("%s: always_opt_in = %v, want %v", pu.ID, got, want)
		}
		if !pu.Necessary && pu.LegalBasis != "consent" {
			t.Errorf("%s: legal basis %q, want consent", pu.ID, pu.LegalBasis)
		}
		for _, lang := range []string{"en", "de", "fr"} {
			if pu.Titles[lang] == "" || pu.Descriptions[lang] == "" {
				t.Errorf("%s: missing %s title or description", pu.ID, lang)
			}
		}
		wantLifetime := time.Duration(0)
		switch pu.ID {
		case "functional", "analytics", "ads":
			wantLifetime = 390 * 24 * time.Hour
		}
		if pu.Lifetime != wantLifetime {
			t.Errorf("%s: lifetime %v, want %v", pu.ID, pu.Lifetime, wantLifetime)
		}
	}

	eu27 := []string{"AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT",
		"LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE"}
	if len(eu27) != 27 {
		t.Fatalf("the test's EU list has %d countries", len(eu27))
	}
	regions := []struct {
		code      string
		region    string
		mechanism Mechanism
	}{
		{"IS", "eea", MechanismOptIn},
		{"LI", "eea", MechanismOptIn},
		{"NO", "eea", MechanismOptIn},
		{"RE", "eea", MechanismOptIn},    // Réunion, reported by GeoIP as its own country
		{"ES-CN", "eea", MechanismOptIn}, // Canary Islands, by country fallback
		{"GB", "uk", MechanismOptIn},
		{"CH", "ch", MechanismOptIn},
		{"US-CA", "us_opt_out", MechanismOptOut},
		{"US-CO", "us_opt_out", MechanismOptOut},
		{"US-CT", "us_opt_out", MechanismOptOut},
		{"US-TX", "us_opt_out", MechanismOptOut},
		{"US-NJ", "us_opt_out", MechanismOptOut},
		{"US", "us_opt_out", MechanismOptOut},
		{"US-WY", "us_opt_out", MechanismOptOut},
		{"JP", "rest_of_world", MechanismOptIn},
		{"", "rest_of_world", MechanismOptIn},
	}
	for _, c := range eu27 {
		regions = append(regions, struct {
			code      string
			region    string
			mechanism Mechanism
		}{c, "eea", MechanismOptIn})
	}
	for _, tc := range regions {
		r := p.RegionFor(tc.code)
		if r.ID != tc.region || r.Mechanism != tc.mechanism {
			t.Errorf("RegionFor(%q) = %s/%s, want %s/%s", tc.code, r.ID, r.Mechanism, tc.region, tc.mechanism)
		}
	}
	if p.DefaultRegion != "rest_of_world" {
		t.Errorf("default region %q", p.DefaultRegion)
	}
}

func TestLoadPolicy(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(path, []byte(edit(5, `  - {id: ads, version: 0, legal_basis: vibes, titles: {en: A}, descriptions: {en: A}}`)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadPolicy(path)
	if err == nil {
		t.Fatal("no error")
	}
	// Every line names the file, so each can be pasted into an editor.
	for _, line := range strings.Split(err.Error(), "\n") {
		if !strings.HasPrefix(line, path+": line 5: purposes[1].") {
			t.Errorf("error line %q does not start with %q", line, path+": line 5: purposes[1].")
		}
	}
	if n := len(strings.Split(err.Error(), "\n")); n != 2 {
		t.Errorf("got %d error lines, want 2:\n%v", n, err)
	}

	if _, err := LoadPolicy(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}

	if err := os.WriteFile(path, []byte(base()), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := LoadPolicy(path)
	if err != nil {
		t.Fatalf("valid file: %v", err)
	}
	if p.RegionFor("DE").ID != "world" {
		t.Error("valid file: DE not in world")
	}
}

func TestStatsRegionIsBoundedByThePolicy(t *testing.T) {
	p, err := LoadPolicy("../../deploy/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for code, want := range map[string]string{
		"DE":    "DE",            // listed
		"US-CA": "US-CA",         // listed
		"US-WY": "US",            // its country is listed
		"ES-CN": "ES",            // its country is listed
		"JP":    "rest_of_world", // unknown: the default region's id
		"":      "rest_of_world",
	} {
		if got := p.StatsRegion(code); got != want {
			t.Errorf("StatsRegion(%q) = %q, want %q", code, got, want)
		}
	}
}
