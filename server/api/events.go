package api

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
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
	if err := firstError(
		domain.ValidateSubjectID("subject_id", req.GetSubjectId()),
		pageSizeError(req.GetPageSize()),
		tokenErr,
	); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	// One more than asked tells whether another page follows.
	events, err := s.store.Events(ctx, req.GetSubjectId(), before, size+1)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	resp := &consentv1.ListConsentEventsResponse{}
	if len(events) > size {
		events = events[:size]
		resp.NextPageToken = pageToken(events[size-1].Revision)
	}
	for _, e := range events {
		resp.Events = append(resp.Events, eventToProto(e))
	}
	return resp, nil
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
