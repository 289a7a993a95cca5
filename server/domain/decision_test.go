package domain

import (
	"testing"
	"time"
)

func TestNewDecision(t *testing.T) {
	berlin := time.FixedZone("CET", 3600)
	madeAt := time.Date(2026, 6, 1, 14, 0, 0, 999_999_999, berlin) // 13:00:00.999999999 UTC
	second := time.Date(2026, 6, 1, 13, 0, 0, 0, time.UTC)
	cases := []struct {
		name     string
		purpose  Purpose
		granted  bool
		want     Decision
		wantLeft time.Duration // ExpiresAt - DecidedAt
	}{
		{
			name:    "a grant with a 390-day lifetime expires 390 days after the truncated decision time",
			purpose: Purpose{ID: "ads", Version: 3, Lifetime: 390 * 24 * time.Hour},
			granted: true,
			want: Decision{Granted: true, DecidedAt: second, ExpiresAt: second.Add(390 * 24 * time.Hour),
				Source: SourceBanner, PolicyVersion: 3, Region: "DE"},
		},
		{
			name:    "a denial with a lifetime expires too",
			purpose: Purpose{ID: "ads", Version: 1, Lifetime: time.Hour},
			granted: false,
			want:    Decision{Granted: false, DecidedAt: second, ExpiresAt: second.Add(time.Hour), Source: SourceBanner, PolicyVersion: 1, Region: "DE"},
		},
		{
			name:    "a zero lifetime never expires",
			purpose: Purpose{ID: "marketing.email", Version: 2},
			granted: true,
			want:    Decision{Granted: true, DecidedAt: second, Source: SourceBanner, PolicyVersion: 2, Region: "DE"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := NewDecision(tc.purpose, tc.granted, SourceBanner, "DE", madeAt)
			if got != tc.want {
				t.Errorf("NewDecision = %+v\nwant          %+v", got, tc.want)
			}
			if got.DecidedAt.Location() != time.UTC {
				t.Errorf("DecidedAt in %v, want UTC", got.DecidedAt.Location())
			}
			if !got.ExpiresAt.IsZero() && got.ExpiresAt.Sub(got.DecidedAt) != tc.purpose.Lifetime {
				t.Errorf("ExpiresAt - DecidedAt = %v, want the lifetime %v", got.ExpiresAt.Sub(got.DecidedAt), tc.purpose.Lifetime)
			}
		})
	}
}

// A decision made now answers explicitly until exactly its lifetime has passed.
func TestNewDecisionExpiresAfterLifetime(t *testing.T) {
	p := mustParse(t, rulesPolicy)
	ads, _ := p.Purpose("ads")
	d := NewDecision(ads, true, SourceAPI, "DE", now)
	rec := record("ads", d)
	if got := Effective(p, "ads", rec, "DE", now.Add(30*24*time.Hour-time.Second)); got != (Answer{Allowed: true, Reason: ReasonExplicit}) {
		t.Errorf("one second before the lifetime ends: %+v", got)
	}
	if got := Effective(p, "ads", rec, "DE", now.Add(30*24*time.Hour)); got != (Answer{Allowed: false, Reason: ReasonExpired}) {
		t.Errorf("when the lifetime ends: %+v", got)
	}
}
