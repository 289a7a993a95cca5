package api

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/auth"
	"github.com/consentd/consentd/server/domain"
)

// ListConsentEvents pages through history newest first. The page token is
// the revision to continue below, so a page stays stable while new events
// arrive.
func (s *Server) ListConsentEvents(ctx context.Context, req *consentv1.ListConsentEventsRequest) (*consentv1.ListConsentEventsResponse, error) {
	size := int(req.GetPageSize())
	if size == 0 {
		size = DefaultEventsPageSize
	}
	before, tokenErr := parsePageToken(req.GetPageToken())
	// A service reading a person's history is an operator access: it must say
	// why, and the person's history records it. The person reading their own
	// (with their token) need not.
	operator := auth.FromContext(ctx).Kind == auth.Service
	if err := firstError(
		domain.ValidateSubjectID("subject_id", req.GetSubjectId()),
		pageSizeError(req.GetPageSize()),
		tokenErr,
		validateReason(req.GetReason(), operator, reasonToRead),
	); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	// One more than asked tells whether another page follows.
	events, err := s.store.Events(ctx, req.GetSubjectId(), before, size+1)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	// Only a subject with a history gets an access event: a mistyped id must
	// not create a record about nobody.
	if operator && len(events) > 0 {
		if err := s.recordAccess(ctx, req.GetSubjectId(), req.GetReason()); err != nil {
			return nil, err
		}
	}
	resp := &consentv1.ListConsentEventsResponse{}
	if len(events) > size {
		events = events[:size]
		resp.NextPageToken = pageToken(events[size-1].Revision)
	}
	counterpart := counterpartVisible(ctx, req.GetSubjectId())
	for _, e := range events {
		resp.Events = append(resp.Events, eventToProto(e, counterpart))
	}
	return resp, nil
}

// counterpartVisible reports whether the caller may read whom a subject's
// link events link it to. A visitor's link names its user (an account id,
// often an email address), and the visitor's token is the browser's, which
// may be shared or read by scripts on the page: only operators (API keys)
// see it. The visitor still sees that it is linked (the event, and
// Consent.linked). A user's link names a visitor id, which the user's own
// browser holds anyway.
func counterpartVisible(ctx context.Context, subjectID string) bool {
	return auth.FromContext(ctx).Kind == auth.Service || !domain.IsVisitorID(subjectID)
}

// recordAccess appends an access event (actor, reason, time) to the
// subject's history.
func (s *Server) recordAccess(ctx context.Context, subjectID, reason string) error {
	w := s.newWrite(ctx, s.policy(), subjectID, domain.EventAccess, domain.SourceAPI)
	w.Event.Reason = reason
	_, err := s.store.Write(ctx, w)
	if err != nil {
		return s.toStatus(ctx, err)
	}
	return nil
}

// MaxReasonChars bounds an operator's reason.
const MaxReasonChars = 500

// Why an operator must give a reason, per RPC: the error tells the caller
// what they are about to do and where their reason is kept.
const (
	reasonToRead     = "required with an API key: say why you read this person's history (it is recorded there)"
	reasonToExport   = "required with an API key: say why you export this person's data (it is recorded in their history)"
	reasonToErase    = "required with an API key: say why you erase this person (it is kept in the erasure's tombstone)"
	reasonToRestrict = "required: say why you restrict the processing of this person's data (it is recorded in their history)"
	reasonToLift     = "required: say why you lift the restriction on this person's data (it is recorded in their history)"
)

// validateReason checks an operator's reason; when required and missing,
// the error says why (one of the reasonTo... texts).
func validateReason(reason string, required bool, why string) error {
	switch {
	case reason == "" && required:
		return &domain.FieldError{Field: "reason", Reason: why}
	case utf8.RuneCountInString(reason) > MaxReasonChars:
		return &domain.FieldError{Field: "reason", Reason: fmt.Sprintf("at most %d characters, got %d", MaxReasonChars, utf8.RuneCountInString(reason))}
	case !utf8.ValidString(reason) || strings.ContainsFunc(reason, unicode.IsControl):
		return &domain.FieldError{Field: "reason", Reason: "must be text without control characters"}
	}
	return nil
}

func pageSizeError(size int32) error {
	if size < 0 || size > MaxEventsPageSize {
		return &domain.FieldError{Field: "page_size", Reason: fmt.Sprintf("must be 0 (default %d) to %d, got %d", DefaultEventsPageSize, MaxEventsPageSize, size)}
	}
	return nil
}

const pageTokenPrefix = "before:"

func pageToken(before int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(pageTokenPrefix + strconv.FormatInt(before, 10)))
}

func parsePageToken(token string) (int64, error) {
	if token == "" {
		return 0, nil
	}
	bad := &domain.FieldError{Field: "page_token", Reason: "not a token from a previous response"}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || !strings.HasPrefix(string(raw), pageTokenPrefix) {
		return 0, bad
	}
	before, err := strconv.ParseInt(strings.TrimPrefix(string(raw), pageTokenPrefix), 10, 64)
	// Only the exact form pageToken makes: no "+7", "007" or re-encodings.
	if err != nil || before < 1 || pageToken(before) != token {
		return 0, bad
	}
	return before, nil
}
