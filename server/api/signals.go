package api

import (
	"context"
	"errors"
	"fmt"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/store"
)

// RecordAdSignals stores the IAB strings a browser built from the subject's
// decisions at one revision, as a signals event. It reads the subject once
// to check that the strings claim no more than was granted at that revision,
// then writes only if the revision is still the subject's (ABORTED if a
// write came in between: the browser rebuilds from the newer state).
func (s *Server) RecordAdSignals(ctx context.Context, req *consentv1.RecordAdSignalsRequest) (*consentv1.RecordAdSignalsResponse, error) {
	policy := s.policy()
	if err := firstError(
		domain.ValidateSubjectID("subject_id", req.GetSubjectId()),
		domain.ValidateRegionCode("region", req.GetRegion()),
		validateIdempotencyKey(req.GetIdempotencyKey()),
	); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if req.GetRegion() == "" {
		return nil, s.toStatus(ctx, &domain.FieldError{Field: "region", Reason: "required: the region code the strings were made for"})
	}
	if req.GetRevision() < 1 {
		return nil, s.toStatus(ctx, &domain.FieldError{Field: "revision", Reason: fmt.Sprintf("must be >= 1 (the subject revision the strings encode), got %d", req.GetRevision())})
	}
	for _, f := range []struct{ name, value string }{{"tc_string", req.GetTcString()}, {"gpp_string", req.GetGppString()}} {
		if len(f.value) > domain.MaxAdSignalLength {
			return nil, s.toStatus(ctx, &domain.FieldError{Field: f.name, Reason: fmt.Sprintf("at most %d characters, got %d", domain.MaxAdSignalLength, len(f.value))})
		}
	}
	if policy.IAB == nil {
		return nil, s.toStatus(ctx, &preconditionError{field: "region", reason: "the policy has no iab section: this service records no IAB signals"})
	}
	// Through a linked visitor, the user's record: where the write lands.
	rec, err := s.store.Get(ctx, req.GetSubjectId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	switch {
	case rec.Revision == req.GetRevision():
		if err := policy.CheckAdSignals(rec, req.GetRegion(), req.GetTcString(), req.GetGppString(), s.now()); err != nil {
			return nil, s.toStatus(ctx, err)
		}
	case req.GetIdempotencyKey() == "":
		return nil, s.toStatus(ctx, &revisionMovedError{expected: req.GetRevision(), current: rec.Revision})
	}
	// With an idempotency key and another revision, the write answers: the
	// first result if this is a retry of a request that applied, else
	// ABORTED (its expected revision does not match either).
	w := s.newWrite(ctx, policy, req.GetSubjectId(), domain.EventSignals, domain.SourceAPI)
	revision := req.GetRevision()
	w.ExpectedRevision, w.IdempotencyKey = &revision, req.GetIdempotencyKey()
	w.Signals = &domain.AdSignals{Region: req.GetRegion(), Revision: revision, TCString: req.GetTcString(), GPPString: req.GetGppString()}
	// Not writeConsent: a conflict here is the request's own revision field
	// (there is no expected_revision in this call).
	res, err := s.store.Write(ctx, w)
	var conflict *store.ConflictError
	if errors.As(err, &conflict) {
		err = &revisionMovedError{expected: conflict.Expected, current: conflict.Current}
	}
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	s.counted(res)
	return &consentv1.RecordAdSignalsResponse{Consent: consentToProto(policy, w.SubjectID, res.Record, req.GetRegion(), w.Now)}, nil
}

// revisionMovedError: the subject was written after the revision the strings
// encode (ABORTED, naming the field "revision"); the SDK rebuilds them from
// the newer state.
type revisionMovedError struct{ expected, current int64 }

func (e *revisionMovedError) Error() string {
	return fmt.Sprintf("revision: %d is no longer the subject's revision (now %d): build the strings from the current state", e.expected, e.current)
}

func adSignalsToProto(sig *domain.AdSignals) *consentv1.AdSignals {
	if sig == nil {
		return nil
	}
	return &consentv1.AdSignals{
		Region: sig.Region, Revision: sig.Revision, TcString: sig.TCString, GppString: sig.GPPString, Time: timeToProto(sig.At),
	}
}

// VendorListPath is where the gateway serves the vendor list (TCFPolicy.vendor_list_url).
const VendorListPath = "/v1/iab/vendor-list.json"

func iabToProto(iab *domain.IAB) *consentv1.IABPolicy {
	if iab == nil {
		return nil
	}
	out := &consentv1.IABPolicy{CmpId: int32(iab.CMPID), CmpVersion: int32(iab.CMPVersion)}
	if t := iab.TCF; t != nil {
		tcf := &consentv1.TCFPolicy{Regions: t.Regions, PublisherCountry: t.PublisherCountry, PurposeOneTreatment: t.PurposeOneTreatment,
			Vendors: int32s(t.Vendors), VendorListUrl: VendorListPath}
		for _, m := range t.Purposes {
			tcf.Purposes = append(tcf.Purposes, &consentv1.TCFPurposeMapping{Purpose: m.Purpose, Consent: int32s(m.Consent),
				LegitimateInterest: int32s(m.LegitimateInterest), SpecialFeatures: int32s(m.SpecialFeatures)})
		}
		out.Tcf = tcf
	}
	if g := iab.GPP; g != nil {
		out.Gpp = &consentv1.GPPPolicy{Regions: g.Regions, Purpose: g.Purpose, StateSections: g.StateSections,
			Notices: &consentv1.GPPNotices{Sharing: g.Notices.Sharing, SaleOptOut: g.Notices.SaleOptOut,
				SharingOptOut: g.Notices.SharingOptOut, TargetedAdvertisingOptOut: g.Notices.TargetedAdvertisingOptOut},
			Mspa: &consentv1.GPPMSPA{CoveredTransaction: g.MSPA.CoveredTransaction, Mode: g.MSPA.Mode}}
	}
	return out
}

func int32s(v []int) []int32 {
	if v == nil {
		return nil
	}
	out := make([]int32, len(v))
	for i, x := range v {
		out[i] = int32(x)
	}
	return out
}
