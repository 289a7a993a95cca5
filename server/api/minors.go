package api

import (
	"context"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/domain"
)

// MaxGuardianChars bounds who confirmed a minor's decisions.
const MaxGuardianChars = 200

// MarkMinor marks a subject as a minor, or clears the mark.
func (s *Server) MarkMinor(ctx context.Context, req *consentv1.MarkMinorRequest) (*consentv1.MarkMinorResponse, error) {
	if err := domain.ValidateSubjectID("subject_id", req.GetSubjectId()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	policy, minor := s.policy(), req.GetMinor()
	w := s.newWrite(ctx, policy, req.GetSubjectId(), domain.EventMinor, domain.SourceAPI)
	w.Minor = &minor
	w.Event.Minor = &minor
	consent, err := s.writeConsent(ctx, policy, w, "")
	if err != nil {
		return nil, err
	}
	return &consentv1.MarkMinorResponse{Consent: consent}, nil
}

// ConfirmGuardianConsent records that a guardian confirmed a minor's
// current decisions.
func (s *Server) ConfirmGuardianConsent(ctx context.Context, req *consentv1.ConfirmGuardianConsentRequest) (*consentv1.ConfirmGuardianConsentResponse, error) {
	if err := firstError(
		domain.ValidateSubjectID("subject_id", req.GetSubjectId()),
		validateGuardian(req.GetGuardian()),
	); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	policy := s.policy()
	rec, err := s.store.Get(ctx, req.GetSubjectId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if !rec.Minor() {
		return nil, s.toStatus(ctx, &preconditionError{field: "subject_id", reason: "the subject is not marked as a minor (MarkMinor first)"})
	}
	w := s.newWrite(ctx, policy, req.GetSubjectId(), domain.EventGuardian, domain.SourceAPI)
	w.GuardianConfirmed = true
	w.Event.Guardian = req.GetGuardian()
	// The confirmation covers the decisions just read, and the store records
	// their revision with it: a grant written later awaits a new
	// confirmation. If they changed in between, the caller must look again
	// (Aborted).
	w.ExpectedRevision = &rec.Revision
	consent, err := s.writeConsent(ctx, policy, w, "")
	if err != nil {
		return nil, err
	}
	return &consentv1.ConfirmGuardianConsentResponse{Consent: consent}, nil
}

func validateGuardian(g string) error {
	n := utf8.RuneCountInString(g)
	switch {
	case g == "":
		return &domain.FieldError{Field: "guardian", Reason: "required: who confirmed (e.g. the guardian's account id)"}
	case n > MaxGuardianChars:
		return &domain.FieldError{Field: "guardian", Reason: fmt.Sprintf("at most %d characters, got %d", MaxGuardianChars, n)}
	case !utf8.ValidString(g) || strings.ContainsFunc(g, unicode.IsControl):
		return &domain.FieldError{Field: "guardian", Reason: "must be text without control characters"}
	}
	return nil
}
