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
	rec, err := s.store.GetPurposes(ctx, req.GetSubjectId(), []string{req.GetPurpose()})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if err := checkMinRevision("min_revision", req.GetMinRevision(), rec.Revision); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	answer := domain.Effective(policy, req.GetPurpose(), rec, req.GetRegion(), s.now())
	return &consentv1.CheckConsentResponse{
		Allowed:  answer.Allowed,
		Reason:   reasonToProto(answer.Reason),
		Revision: rec.Revision,
	}, nil
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
		lookups[i] = store.Lookup{SubjectID: c.GetSubjectId(), Purposes: []string{c.GetPurpose()}}
	}
	records, err := s.store.GetMany(ctx, lookups)
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
