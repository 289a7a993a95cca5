package api

import (
	"context"
	"fmt"
	"time"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/store"
)

// Consent statistics: the write path counts people's decisions (updates and
// withdrawals, see writeStats) in the store, atomically with the write;
// browsers report the banner funnel anonymously (RecordBannerEvent); the
// console reads both per UTC day (GetConsentStats). Regions are counted
// under the label the policy gives them (domain.Policy.StatsRegion), so the
// counts and the metrics' labels are bounded by the policy.

// StatsObserver is told what was counted, once it is stored: consentd's
// Prometheus counters.
type StatsObserver interface {
	// WriteCounted: an applied write counted c.
	WriteCounted(c *store.Counted)
	// BannerEventCounted: a banner event was counted.
	BannerEventCounted(region string, step store.BannerStep)
}

// WithStatsObserver sets what is told about counted writes and banner
// events (default: nothing).
func WithStatsObserver(o StatsObserver) Option { return func(s *Server) { s.stats = o } }

// DefaultStatsDays is the range GetConsentStats reads when it is given no
// start_day: the 30 days up to end_day.
const DefaultStatsDays = 30

// writeStats is how an update or withdrawal counts: under the method its
// source and decisions make, in the region the policy puts the subject in.
func writeStats(policy *domain.Policy, source domain.Source, decisions map[string]domain.Decision) *store.WriteStats {
	return &store.WriteStats{Method: writeMethod(source, decisions), Region: policy.StatsRegion}
}

// writeMethod: a banner write that grants every purpose it decides is
// "accept all", one that denies every one "reject all", any other banner
// write "other". "Every purpose it decides", not every purpose of the
// policy: the banner asks about the purposes its region prompts for, and its
// buttons decide exactly those. The other sources are methods of their own,
// the API's (and unspecified, and anything else) "api".
func writeMethod(source domain.Source, decisions map[string]domain.Decision) store.Method {
	switch source {
	case domain.SourceBanner:
		granted := 0
		for _, d := range decisions {
			if d.Granted {
				granted++
			}
		}
		switch {
		case len(decisions) > 0 && granted == len(decisions):
			return store.MethodBannerAcceptAll
		case len(decisions) > 0 && granted == 0:
			return store.MethodBannerRejectAll
		}
		return store.MethodBannerOther
	case domain.SourcePreferenceCenter:
		return store.MethodPreferenceCenter
	case domain.SourceGPC:
		return store.MethodGPC
	case domain.SourceImport:
		return store.MethodImport
	}
	return store.MethodAPI
}

// counted tells the observer what an applied write counted.
func (s *Server) counted(res store.WriteResult) {
	if s.stats != nil && res.Counted != nil {
		s.stats.WriteCounted(res.Counted)
	}
}

var (
	methodsToProto = map[store.Method]consentv1.ConsentMethod{
		store.MethodBannerAcceptAll:  consentv1.ConsentMethod_CONSENT_METHOD_BANNER_ACCEPT_ALL,
		store.MethodBannerRejectAll:  consentv1.ConsentMethod_CONSENT_METHOD_BANNER_REJECT_ALL,
		store.MethodBannerOther:      consentv1.ConsentMethod_CONSENT_METHOD_BANNER_OTHER,
		store.MethodPreferenceCenter: consentv1.ConsentMethod_CONSENT_METHOD_PREFERENCE_CENTER,
		store.MethodAPI:              consentv1.ConsentMethod_CONSENT_METHOD_API,
		store.MethodGPC:              consentv1.ConsentMethod_CONSENT_METHOD_GPC,
		store.MethodImport:           consentv1.ConsentMethod_CONSENT_METHOD_IMPORT,
	}
	stepsToProto = map[store.BannerStep]consentv1.BannerStep{
		store.StepShown:      consentv1.BannerStep_BANNER_STEP_SHOWN,
		store.StepAcceptAll:  consentv1.BannerStep_BANNER_STEP_ACCEPT_ALL,
		store.StepRejectAll:  consentv1.BannerStep_BANNER_STEP_REJECT_ALL,
		store.StepCustomised: consentv1.BannerStep_BANNER_STEP_CUSTOMISED,
		store.StepClosed:     consentv1.BannerStep_BANNER_STEP_CLOSED,
	}
	stepsFromProto = func() map[consentv1.BannerStep]store.BannerStep {
		m := make(map[consentv1.BannerStep]store.BannerStep, len(stepsToProto))
		for s, p := range stepsToProto {
			m[p] = s
		}
		return m
	}()
)

// RecordBannerEvent counts one step of the banner in the region the policy
// puts the code in. It is anonymous: nothing about the caller is read,
// logged or stored, and the count goes to a partition chosen at random.
func (s *Server) RecordBannerEvent(ctx context.Context, req *consentv1.RecordBannerEventRequest) (*consentv1.RecordBannerEventResponse, error) {
	step, ok := stepsFromProto[req.GetStep()]
	if err := firstError(
		validateStep(req.GetStep(), ok),
		domain.ValidateRegionCode("region", req.GetRegion()),
	); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	region := s.policy().StatsRegion(req.GetRegion())
	if err := s.store.RecordBannerEvent(ctx, region, step, s.now()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if s.stats != nil {
		s.stats.BannerEventCounted(region, step)
	}
	return &consentv1.RecordBannerEventResponse{}, nil
}

func validateStep(step consentv1.BannerStep, known bool) error {
	if known {
		return nil
	}
	if step == consentv1.BannerStep_BANNER_STEP_UNSPECIFIED {
		return &domain.FieldError{Field: "step", Reason: "required: one of BANNER_STEP_SHOWN, BANNER_STEP_ACCEPT_ALL, BANNER_STEP_REJECT_ALL, BANNER_STEP_CUSTOMISED, BANNER_STEP_CLOSED"}
	}
	return &domain.FieldError{Field: "step", Reason: fmt.Sprintf("unknown banner step %d", step)}
}

// GetConsentStats answers the counts of every day of the range, oldest
// first.
func (s *Server) GetConsentStats(ctx context.Context, req *consentv1.GetConsentStatsRequest) (*consentv1.GetConsentStatsResponse, error) {
	first, last, err := statsRange(s.now(), req.GetStartDay(), req.GetEndDay())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	days, err := s.store.Stats(ctx, first, last)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	out := &consentv1.GetConsentStatsResponse{Days: make([]*consentv1.DayStats, len(days))}
	for i, d := range days {
		day := &consentv1.DayStats{Day: d.Day.Format(time.DateOnly)}
		for _, c := range d.Decisions {
			day.Decisions = append(day.Decisions, &consentv1.DecisionCounts{Purpose: c.Purpose, Region: c.Region,
				Granted: c.Granted, Denied: c.Denied, Withdrawn: c.Withdrawn})
		}
		for _, c := range d.Methods {
			day.Methods = append(day.Methods, &consentv1.MethodCount{Region: c.Region, Method: methodsToProto[c.Method], Count: c.Count})
		}
		for _, c := range d.Banner {
			day.Banner = append(day.Banner, &consentv1.BannerStepCount{Region: c.Region, Step: stepsToProto[c.Step], Count: c.Count})
		}
		out.Days[i] = day
	}
	return out, nil
}

// statsRange is the range of days a GetConsentStats request asks for: by
// default the DefaultStatsDays days up to today (UTC).
func statsRange(now time.Time, start, end string) (first, last time.Time, err error) {
	parse := func(field, v string) (time.Time, error) {
		d, err := time.Parse(time.DateOnly, v)
		if err != nil {
			return time.Time{}, &domain.FieldError{Field: field, Reason: "must be a day as YYYY-MM-DD (UTC), got " + domain.Quote(v, 32)}
		}
		return d, nil
	}
	y, m, d := now.UTC().Date()
	last = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	if end != "" {
		if last, err = parse("end_day", end); err != nil {
			return time.Time{}, time.Time{}, err
		}
	}
	first = last.AddDate(0, 0, 1-DefaultStatsDays)
	if start != "" {
		if first, err = parse("start_day", start); err != nil {
			return time.Time{}, time.Time{}, err
		}
	}
	if last.Before(first) {
		field := "end_day"
		if end == "" {
			field = "start_day" // after today, the default end
		}
		return time.Time{}, time.Time{}, &domain.FieldError{Field: field, Reason: fmt.Sprintf("end_day %s is before start_day %s", last.Format(time.DateOnly), first.Format(time.DateOnly))}
	}
	if days := int(last.Sub(first)/(24*time.Hour)) + 1; days > store.MaxStatsDays {
		return time.Time{}, time.Time{}, &domain.FieldError{Field: "start_day", Reason: fmt.Sprintf("the range spans %d days, at most %d", days, store.MaxStatsDays)}
	}
	return first, last, nil
}
