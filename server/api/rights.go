package api

import (
	"context"
	"errors"
	"slices"

	"google.golang.org/protobuf/types/known/timestamppb"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/auth"
	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/store"
)

// The privacy rights: export, erase, restrict and lift. Object (withdraw
// everything non-necessary) is WithdrawConsent; rectify is UpdateConsent,
// whose history event keeps the old value.

// ExportSubject returns everything stored about the subject. The export is
// recorded in the history first, so the document lists it.
func (s *Server) ExportSubject(ctx context.Context, req *consentv1.ExportSubjectRequest) (*consentv1.ExportSubjectResponse, error) {
	if err := validateRightsRequest(ctx, req.GetSubjectId(), req.GetReason(), reasonToExport); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	policy, now := s.policy(), s.now()
	own, err := s.store.GetOwn(ctx, req.GetSubjectId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	// A subject with nothing stored gets no record of the export: a mistyped
	// id must not create a record about nobody.
	if own.Revision > 0 {
		w := s.newWrite(ctx, policy, req.GetSubjectId(), domain.EventExport, domain.SourceAPI)
		w.Event.Reason = req.GetReason()
		if _, err := s.store.Write(ctx, w); err != nil {
			return nil, s.toStatus(ctx, err)
		}
	}
	rec, err := s.store.Get(ctx, req.GetSubjectId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	history, err := s.store.History(ctx, req.GetSubjectId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	chain := &consentv1.ChainVerification{Valid: history.Chain == nil, EventsChecked: int64(history.Checked)}
	if broken, ok := errors.AsType[*store.ChainError](history.Chain); ok {
		chain.FirstInvalidRevision, chain.Problem = broken.Revision, broken.Problem
	} else if own.Revision > 0 {
		// What the subject's own keys cannot show, its change-feed entries
		// can: a state and history put back together to an earlier copy
		// (see `consentd verify`).
		var first *store.Finding
		_, err := s.store.VerifySubject(ctx, req.GetSubjectId(), store.VerifyOptions{OnFinding: func(f store.Finding) {
			if first == nil {
				first = &f
			}
		}})
		if err != nil {
			return nil, s.toStatus(ctx, err)
		}
		if first != nil {
			chain.Valid, chain.FirstInvalidRevision, chain.Problem = false, first.Revision, first.Detail
		}
	}

	resp := &consentv1.ExportSubjectResponse{
		SubjectId:  req.GetSubjectId(),
		ExportTime: timestamppb.New(now),
		Consent:    consentToProto(policy, req.GetSubjectId(), rec, "", now),
		Policy:     policyToProto(policy),
		Chain:      chain,
	}
	counterpart := counterpartVisible(ctx, req.GetSubjectId())
	for _, e := range history.Events {
		resp.Events = append(resp.Events, eventToProto(e, counterpart))
		if e.PolicyVersion != "" && !slices.Contains(resp.PolicyVersions, e.PolicyVersion) {
			resp.PolicyVersions = append(resp.PolicyVersions, e.PolicyVersion)
		}
	}
	return resp, nil
}

// validateRightsRequest checks a request an operator (API key) must give a
// reason for, and a person may make with their own token without one.
func validateRightsRequest(ctx context.Context, subjectID, reason, why string) error {
	operator := auth.FromContext(ctx).Kind == auth.Service
	return firstError(
		domain.ValidateSubjectID("subject_id", subjectID),
		validateReason(reason, operator, why),
	)
}

// EraseSubject deletes the subject, and a user's linked visitors with it.
func (s *Server) EraseSubject(ctx context.Context, req *consentv1.EraseSubjectRequest) (*consentv1.EraseSubjectResponse, error) {
	if err := validateRightsRequest(ctx, req.GetSubjectId(), req.GetReason(), reasonToErase); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	now := s.now()
	erasure := store.Erasure{SubjectID: req.GetSubjectId(), Actor: auth.FromContext(ctx).Actor(), Reason: req.GetReason(), Channel: channel(ctx), Now: now}
	res, err := s.store.Erase(ctx, erasure)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	resp := &consentv1.EraseSubjectResponse{Erased: res.Erased, EraseTime: timestamppb.New(now)}
	// A user's visitors point at the user (their link holds the user's id):
	// they go too. A visitor's erasure leaves its user alone: the browser's
	// record is not the account's.
	if !domain.IsVisitorID(req.GetSubjectId()) {
		for _, visitor := range res.LinkedVisitors {
			own, err := s.store.GetOwn(ctx, visitor)
			if err != nil {
				return nil, s.toStatus(ctx, err)
			}
			if own.LinkedTo != req.GetSubjectId() {
				continue // linked to someone else since, or erased already
			}
			erasure.SubjectID = visitor
			if _, err := s.store.Erase(ctx, erasure); err != nil {
				return nil, s.toStatus(ctx, err)
			}
			resp.LinkedSubjectsErased++
			resp.LinkedSubjectIds = append(resp.LinkedSubjectIds, visitor)
		}
	}
	return resp, nil
}

// RestrictProcessing denies every non-necessary purpose until lifted.
func (s *Server) RestrictProcessing(ctx context.Context, req *consentv1.RestrictProcessingRequest) (*consentv1.RestrictProcessingResponse, error) {
	consent, err := s.setRestriction(ctx, req.GetSubjectId(), req.GetReason(), true)
	if err != nil {
		return nil, err
	}
	return &consentv1.RestrictProcessingResponse{Consent: consent}, nil
}

// LiftRestriction lets the subject's decisions count again.
func (s *Server) LiftRestriction(ctx context.Context, req *consentv1.LiftRestrictionRequest) (*consentv1.LiftRestrictionResponse, error) {
	consent, err := s.setRestriction(ctx, req.GetSubjectId(), req.GetReason(), false)
	if err != nil {
		return nil, err
	}
	return &consentv1.LiftRestrictionResponse{Consent: consent}, nil
}

func (s *Server) setRestriction(ctx context.Context, subjectID, reason string, restricted bool) (*consentv1.Consent, error) {
	why := reasonToRestrict
	if !restricted {
		why = reasonToLift
	}
	if err := firstError(
		domain.ValidateSubjectID("subject_id", subjectID),
		validateReason(reason, true, why),
	); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	eventType := domain.EventRestrict
	if !restricted {
		eventType = domain.EventLift
	}
	policy := s.policy()
	w := s.newWrite(ctx, policy, subjectID, eventType, domain.SourceAPI)
	w.Event.Reason = reason
	w.Restrict = &restricted
	return s.writeConsent(ctx, policy, w, "")
}
