package api

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/store"
)

// Translation between protobuf and domain values, in one file so the
// handlers stay short.

var reasons = map[domain.Reason]consentv1.Reason{
	domain.ReasonExplicit:      consentv1.Reason_REASON_EXPLICIT,
	domain.ReasonDefault:       consentv1.Reason_REASON_DEFAULT,
	domain.ReasonGPC:           consentv1.Reason_REASON_GPC,
	domain.ReasonExpired:       consentv1.Reason_REASON_EXPIRED,
	domain.ReasonPolicyChanged: consentv1.Reason_REASON_POLICY_CHANGED,
	domain.ReasonNecessary:     consentv1.Reason_REASON_NECESSARY,
	domain.ReasonRestricted:    consentv1.Reason_REASON_RESTRICTED,
	domain.ReasonGuardian:      consentv1.Reason_REASON_AWAITING_GUARDIAN,

	domain.ReasonStoreUnavailable: consentv1.Reason_REASON_STORE_UNAVAILABLE,
}

func reasonToProto(r domain.Reason) consentv1.Reason { return reasons[r] }

var sources = map[consentv1.Source]domain.Source{
	consentv1.Source_SOURCE_BANNER:            domain.SourceBanner,
	consentv1.Source_SOURCE_PREFERENCE_CENTER: domain.SourcePreferenceCenter,
	consentv1.Source_SOURCE_API:               domain.SourceAPI,
	consentv1.Source_SOURCE_GPC:               domain.SourceGPC,
	consentv1.Source_SOURCE_IMPORT:            domain.SourceImport,
	consentv1.Source_SOURCE_LINK:              domain.SourceLink,
}

// sourceFromProto maps an unset source to API: a backend that does not say
// how it learned the choice is recording it through the API.
func sourceFromProto(s consentv1.Source) domain.Source {
	if d, ok := sources[s]; ok {
		return d
	}
	return domain.SourceAPI
}

func sourceToProto(s domain.Source) consentv1.Source {
	for p, d := range sources {
		if d == s {
			return p
		}
	}
	return consentv1.Source_SOURCE_UNSPECIFIED
}

var mechanisms = map[domain.Mechanism]consentv1.Mechanism{
	domain.MechanismOptIn:      consentv1.Mechanism_MECHANISM_OPT_IN,
	domain.MechanismOptOut:     consentv1.Mechanism_MECHANISM_OPT_OUT,
	domain.MechanismNoticeOnly: consentv1.Mechanism_MECHANISM_NOTICE_ONLY,
}

func timeToProto(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// consentToProto computes the effective answer of every purpose, in policy
// order. region is the request's region code; "" means the subject's own.
func consentToProto(policy *domain.Policy, subjectID string, rec domain.Record, region string, now time.Time) *consentv1.Consent {
	if region == "" {
		region = rec.Region
	}
	c := &consentv1.Consent{
		SubjectId: subjectID,
		Revision:  rec.Revision,
		Region:    region,
		RegionId:  policy.RegionFor(region).ID,
		GpcTime:   timeToProto(rec.GPCSeenAt),

		RestrictTime:        timeToProto(rec.RestrictedAt),
		Minor:               rec.Minor(),
		GuardianConfirmTime: timeToProto(rec.GuardianAt),
		Linked:              rec.Linked,
		AdSignals:           adSignalsToProto(policy.CurrentAdSignals(rec, region)),
	}
	for _, p := range policy.Purposes {
		answer := domain.Effective(policy, p.ID, rec, region, now)
		pc := &consentv1.PurposeConsent{Purpose: p.ID, Allowed: answer.Allowed, Reason: reasonToProto(answer.Reason)}
		if d, ok := rec.Decisions[p.ID]; ok {
			pc.Decision = &consentv1.Decision{
				Granted:       d.Granted,
				DecideTime:    timeToProto(d.DecidedAt),
				ExpireTime:    timeToProto(d.ExpiresAt),
				Source:        sourceToProto(d.Source),
				PolicyVersion: int32(d.PolicyVersion),
				Region:        d.Region,
			}
		}
		c.Purposes = append(c.Purposes, pc)
	}
	return c
}

func policyToProto(p *domain.Policy) *consentv1.Policy {
	out := &consentv1.Policy{Version: p.Version, DefaultRegion: p.DefaultRegion}
	for _, pu := range p.Purposes {
		out.Purposes = append(out.Purposes, &consentv1.Purpose{
			Id:              pu.ID,
			Version:         int32(pu.Version),
			Necessary:       pu.Necessary,
			Gpc:             pu.GPC,
			AlwaysOptIn:     pu.AlwaysOptIn,
			LegalBasis:      pu.LegalBasis,
			LifetimeSeconds: int64(pu.Lifetime / time.Second),
			Titles:          pu.Titles,
			Descriptions:    pu.Descriptions,
		})
	}
	for _, r := range p.Regions {
		out.Regions = append(out.Regions, &consentv1.Region{Id: r.ID, Mechanism: mechanisms[r.Mechanism], Codes: r.Codes})
	}
	out.Iab = iabToProto(p.IAB)
	return out
}

var eventTypes = map[domain.EventType]consentv1.EventType{
	domain.EventUpdate:   consentv1.EventType_EVENT_TYPE_UPDATE,
	domain.EventWithdraw: consentv1.EventType_EVENT_TYPE_WITHDRAW,
	domain.EventAccess:   consentv1.EventType_EVENT_TYPE_ACCESS,
	domain.EventExport:   consentv1.EventType_EVENT_TYPE_EXPORT,
	domain.EventRestrict: consentv1.EventType_EVENT_TYPE_RESTRICT,
	domain.EventLift:     consentv1.EventType_EVENT_TYPE_LIFT_RESTRICTION,
	domain.EventLink:     consentv1.EventType_EVENT_TYPE_LINK,
	domain.EventMinor:    consentv1.EventType_EVENT_TYPE_MARK_MINOR,
	domain.EventGuardian: consentv1.EventType_EVENT_TYPE_GUARDIAN_CONFIRM,
	domain.EventErase:    consentv1.EventType_EVENT_TYPE_ERASE,
	domain.EventSignals:  consentv1.EventType_EVENT_TYPE_SIGNALS,
}

// eventToProto is a history event for a reader. A link event names the
// other subject only when counterpart is set (see counterpartVisible).
func eventToProto(e store.Event, counterpart bool) *consentv1.ConsentEvent {
	out := &consentv1.ConsentEvent{
		Revision:      e.Revision,
		Time:          timeToProto(e.At),
		Type:          eventTypes[e.Type],
		Actor:         e.Actor,
		Source:        sourceToProto(e.Source),
		PolicyVersion: e.PolicyVersion,
		Region:        e.Region,
		Gpc:           e.GPC,
		Channel:       e.Channel,
		PrevHash:      e.PrevHash,
		Hash:          e.Hash,
		Reason:        e.Reason,
		Client:        e.Client,
		Guardian:      e.Guardian,
		Minor:         e.Minor != nil && *e.Minor,
		AdSignals:     adSignalsToProto(e.Signals),
	}
	if counterpart {
		out.LinkedSubjectId = e.Counterpart
	}
	if out.Region == "" && e.Signals != nil {
		out.Region = e.Signals.Region // a signals event's code is that of its strings
	}
	for _, c := range e.Changes {
		out.Changes = append(out.Changes, &consentv1.PurposeChange{Purpose: c.Purpose, OldGranted: c.Old, NewGranted: c.New})
	}
	return out
}
