package api

import (
	"context"
	"fmt"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/domain"
)

// GetConsent returns the effective answer for every purpose.
func (s *Server) GetConsent(ctx context.Context, req *consentv1.GetConsentRequest) (*consentv1.GetConsentResponse, error) {
	policy := s.policy()
	if err := firstError(
		domain.ValidateSubjectID("subject_id", req.GetSubjectId()),
		domain.ValidateRegionCode("region", req.GetRegion()),
		validateMinRevision("min_revision", req.GetMinRevision()),
	); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	rec, err := s.store.Get(ctx, req.GetSubjectId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if err := checkMinRevision("min_revision", req.GetMinRevision(), rec.Revision); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &consentv1.GetConsentResponse{Consent: consentToProto(policy, req.GetSubjectId(), rec, req.GetRegion(), s.now())}, nil
}

// UpdateConsent records the decisions given and leaves the other purposes
// alone.
func (s *Server) UpdateConsent(ctx context.Context, req *consentv1.UpdateConsentRequest) (*consentv1.UpdateConsentResponse, error) {
	policy := s.policy()
	decisionsErr := domain.ValidateDecisions(policy, "decisions", req.GetDecisions(), MaxDecisionsPerUpdate)
	if len(req.GetDecisions()) == 0 && (req.GetGpc() || gpcHeader(ctx)) {
		// A browser reporting its GPC signal before the visitor chose
		// anything: the write records the signal alone.
		decisionsErr = nil
	}
	if err := firstError(
		domain.ValidateSubjectID("subject_id", req.GetSubjectId()),
		decisionsErr,
		validateWrite(req.GetSource(), req.GetRegion(), req.ExpectedRevision, req.GetIdempotencyKey()),
	); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	w := s.newWrite(ctx, policy, req.GetSubjectId(), domain.EventUpdate, sourceFromProto(req.GetSource()))
	w.Decisions = make(map[string]domain.Decision, len(req.GetDecisions()))
	for id, granted := range req.GetDecisions() {
		purpose, _ := policy.Purpose(id)
		if purpose.Necessary {
			continue // granting necessary is a no-op: it is always granted
		}
		w.Decisions[id] = domain.NewDecision(purpose, granted, w.Event.Source, req.GetRegion(), w.Now)
	}
	w.Region, w.GPC, w.Event.Client = req.GetRegion(), req.GetGpc() || gpcHeader(ctx), clientFacts(ctx)
	w.ExpectedRevision, w.IdempotencyKey = req.ExpectedRevision, req.GetIdempotencyKey()
	w.Stats = writeStats(policy, w.Event.Source, w.Decisions)
	consent, err := s.writeConsent(ctx, policy, w, req.GetRegion())
	if err != nil {
		return nil, err
	}
	return &consentv1.UpdateConsentResponse{Consent: consent}, nil
}

// WithdrawConsent denies every non-necessary purpose, or the ones listed.
func (s *Server) WithdrawConsent(ctx context.Context, req *consentv1.WithdrawConsentRequest) (*consentv1.WithdrawConsentResponse, error) {
	policy := s.policy()
	if err := firstError(
		domain.ValidateSubjectID("subject_id", req.GetSubjectId()),
		validateWithdrawPurposes(policy, req.GetPurposes()),
		validateWrite(req.GetSource(), req.GetRegion(), req.ExpectedRevision, req.GetIdempotencyKey()),
	); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	purposes := req.GetPurposes()
	if len(purposes) == 0 {
		purposes = policy.NonNecessaryPurposeIDs()
	}
	w := s.newWrite(ctx, policy, req.GetSubjectId(), domain.EventWithdraw, sourceFromProto(req.GetSource()))
	w.Decisions = make(map[string]domain.Decision, len(purposes))
	for _, id := range purposes {
		purpose, _ := policy.Purpose(id)
		w.Decisions[id] = domain.NewDecision(purpose, false, w.Event.Source, req.GetRegion(), w.Now)
	}
	w.Region, w.GPC, w.Event.Client = req.GetRegion(), req.GetGpc() || gpcHeader(ctx), clientFacts(ctx)
	w.ExpectedRevision, w.IdempotencyKey = req.ExpectedRevision, req.GetIdempotencyKey()
	w.Stats = writeStats(policy, w.Event.Source, w.Decisions)
	consent, err := s.writeConsent(ctx, policy, w, req.GetRegion())
	if err != nil {
		return nil, err
	}
	return &consentv1.WithdrawConsentResponse{Consent: consent}, nil
}

func validateWithdrawPurposes(policy *domain.Policy, purposes []string) error {
	if len(purposes) > MaxDecisionsPerUpdate {
		return &domain.FieldError{Field: "purposes", Reason: fmt.Sprintf("at most %d purposes, got %d", MaxDecisionsPerUpdate, len(purposes))}
	}
	for i, id := range purposes {
		field := fmt.Sprintf("purposes[%d]", i)
		if err := domain.ValidatePurpose(policy, field, id); err != nil {
			return err
		}
		if p, _ := policy.Purpose(id); p.Necessary {
			return &domain.FieldError{Field: field, Reason: "the necessary purpose cannot be withdrawn"}
		}
	}
	return nil
}
