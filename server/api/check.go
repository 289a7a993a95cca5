package api

import (
	"context"
	"fmt"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/store"
)

// CheckConsent is the hot path: validate, one HMGET of the purpose and the
// subject's revision, region and GPC fields, then the pure rule.
func (s *Server) CheckConsent(ctx context.Context, req *consentv1.CheckConsentRequest) (*consentv1.CheckConsentResponse, error) {
	policy := s.policy()
	if err := validateCheck(policy, "", req.GetSubjectId(), req.GetPurpose(), req.GetRegion(), req.GetMinRevision()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	var rec domain.Record
	var err error
	if req.GetAdSignals() {
		// The signals ride in the same single read (GetMany of one).
		var recs []domain.Record
		recs, err = s.store.GetMany(ctx, []store.Lookup{{SubjectID: req.GetSubjectId(), Purposes: []string{req.GetPurpose()}, Signals: true}})
		if err == nil {
			rec = recs[0]
		}
	} else {
		rec, err = s.store.GetPurposes(ctx, req.GetSubjectId(), []string{req.GetPurpose()})
	}
	if storeUnavailable(err) {
		r := s.failClosed(ctx, err, policy, []*consentv1.ConsentCheck{{SubjectId: req.GetSubjectId(), Purpose: req.GetPurpose()}})[0]
		return &consentv1.CheckConsentResponse{Allowed: r.GetAllowed(), Reason: r.GetReason()}, nil
	}
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if err := checkMinRevision("min_revision", req.GetMinRevision(), rec.Revision); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	answer := domain.Effective(policy, req.GetPurpose(), rec, req.GetRegion(), s.now())
	resp := &consentv1.CheckConsentResponse{
		Allowed:  answer.Allowed,
		Reason:   reasonToProto(answer.Reason),
		Revision: rec.Revision,
	}
	if req.GetAdSignals() {
		resp.AdSignals = adSignalsToProto(policy.CurrentAdSignals(rec, answerRegion(req.GetRegion(), rec)))
	}
	return resp, nil
}

// BatchCheckConsent answers many pairs with the reads pipelined in one round
// trip. One bad check fails the whole batch, naming it, so no caller mistakes
// a partial answer for a complete one.
func (s *Server) BatchCheckConsent(ctx context.Context, req *consentv1.BatchCheckConsentRequest) (*consentv1.BatchCheckConsentResponse, error) {
	policy := s.policy()
	checks := req.GetChecks()
	if len(checks) == 0 || len(checks) > MaxBatchChecks {
		return nil, s.toStatus(ctx, &domain.FieldError{Field: "checks",
			Reason: fmt.Sprintf("must hold 1 to %d checks, got %d", MaxBatchChecks, len(checks))})
	}
	lookups := make([]store.Lookup, len(checks))
	for i, c := range checks {
		prefix := fmt.Sprintf("checks[%d].", i)
		if err := validateCheck(policy, prefix, c.GetSubjectId(), c.GetPurpose(), c.GetRegion(), c.GetMinRevision()); err != nil {
			return nil, s.toStatus(ctx, err)
		}
		lookups[i] = store.Lookup{SubjectID: c.GetSubjectId(), Purposes: []string{c.GetPurpose()}, Signals: c.GetAdSignals()}
	}
	records, err := s.store.GetMany(ctx, lookups)
	if storeUnavailable(err) {
		return &consentv1.BatchCheckConsentResponse{Results: s.failClosed(ctx, err, policy, checks)}, nil
	}
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	now := s.now()
	results := make([]*consentv1.ConsentCheckResult, len(checks))
	for i, c := range checks {
		rec := records[i]
		if err := checkMinRevision(fmt.Sprintf("checks[%d].min_revision", i), c.GetMinRevision(), rec.Revision); err != nil {
			return nil, s.toStatus(ctx, err)
		}
		answer := domain.Effective(policy, c.GetPurpose(), rec, c.GetRegion(), now)
		results[i] = &consentv1.ConsentCheckResult{
			SubjectId: c.GetSubjectId(),
			Purpose:   c.GetPurpose(),
			Allowed:   answer.Allowed,
			Reason:    reasonToProto(answer.Reason),
			Revision:  rec.Revision,
		}
		if c.GetAdSignals() {
			results[i].AdSignals = adSignalsToProto(policy.CurrentAdSignals(rec, answerRegion(c.GetRegion(), rec)))
		}
	}
	return &consentv1.BatchCheckConsentResponse{Results: results}, nil
}

func validateCheck(policy *domain.Policy, prefix, subjectID, purpose, region string, minRevision int64) error {
	if err := domain.ValidateSubjectID(prefix+"subject_id", subjectID); err != nil {
		return err
	}
	if err := domain.ValidatePurpose(policy, prefix+"purpose", purpose); err != nil {
		return err
	}
	if err := domain.ValidateRegionCode(prefix+"region", region); err != nil {
		return err
	}
	return validateMinRevision(prefix+"min_revision", minRevision)
}

// FilterSubjects keeps the subjects of a send list for whom the purpose is
// allowed. One bad id fails the call, naming it: a silently shortened list
// would look like opt-outs.
func (s *Server) FilterSubjects(ctx context.Context, req *consentv1.FilterSubjectsRequest) (*consentv1.FilterSubjectsResponse, error) {
	policy := s.policy()
	ids := req.GetSubjectIds()
	if err := firstError(
		domain.ValidatePurpose(policy, "purpose", req.GetPurpose()),
		domain.ValidateRegionCode("region", req.GetRegion()),
	); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if len(ids) == 0 || len(ids) > MaxFilterSubjects {
		return nil, s.toStatus(ctx, &domain.FieldError{Field: "subject_ids",
			Reason: fmt.Sprintf("must hold 1 to %d subject ids, got %d", MaxFilterSubjects, len(ids))})
	}
	seen := make(map[string]bool, len(ids))
	lookups := make([]store.Lookup, 0, len(ids))
	for i, id := range ids {
		if err := domain.ValidateSubjectID(fmt.Sprintf("subject_ids[%d]", i), id); err != nil {
			return nil, s.toStatus(ctx, err)
		}
		if !seen[id] {
			seen[id] = true
			lookups = append(lookups, store.Lookup{SubjectID: id, Purposes: []string{req.GetPurpose()}})
		}
	}
	resp := &consentv1.FilterSubjectsResponse{}
	now := s.now()
	for start := 0; start < len(lookups); start += filterBatch {
		batch := lookups[start:min(start+filterBatch, len(lookups))]
		records, err := s.store.GetMany(ctx, batch)
		if err != nil {
			return nil, s.toStatus(ctx, err)
		}
		for i, rec := range records {
			if domain.Effective(policy, req.GetPurpose(), rec, req.GetRegion(), now).Allowed {
				resp.AllowedSubjectIds = append(resp.AllowedSubjectIds, batch[i].SubjectID)
			}
		}
	}
	return resp, nil
}

// filterBatch bounds one pipeline: large enough that 10,000 ids take a few
// round trips, small enough not to hold Redis' output buffer for long.
const filterBatch = 2000

// answerRegion is the region code an answer is for: the request's, else the
// subject's own.
func answerRegion(region string, rec domain.Record) string {
	if region == "" {
		return rec.Region
	}
	return region
}
