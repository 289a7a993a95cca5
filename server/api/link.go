package api

import (
	"context"
	"errors"
	"fmt"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/store"
)

// linkAttempts bounds the retries when a subject changes while it is being
// linked.
const linkAttempts = 5

// LinkSubjects links a visitor to a user in two writes, since the two live
// in different partitions (cluster slots):
//
//  1. The visitor is pointed at the user, checked against the revision just
//     read. From then on its reads and writes go to the user, so its own
//     decisions can no longer change: the merge sees all of them.
//  2. The merge (domain.MergeLink) is written to the user, checked against
//     the user's revision just read.
//
// Each write is a link event on its subject. The merge carries an
// idempotency key naming the visitor's link (its id and link revision), so a
// retry after a failure between the two writes completes the merge, and
// linking the pair again merges nothing twice: a replay, or the key found
// with a different merge (the user changed since), means it is done.
func (s *Server) LinkSubjects(ctx context.Context, req *consentv1.LinkSubjectsRequest) (*consentv1.LinkSubjectsResponse, error) {
	user, visitorID := req.GetSubjectId(), req.GetVisitorId()
	if err := firstError(
		domain.ValidateSubjectID("subject_id", user),
		notVisitor(user),
		domain.ValidateSubjectID("visitor_id", visitorID),
		visitorOnly(visitorID),
	); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	policy := s.policy()
	var visitor domain.Record
	var linkRevision int64 // the visitor's revision with its link to the user
	for attempt := 0; ; attempt++ {
		var err error
		if visitor, err = s.store.GetOwn(ctx, visitorID); err != nil {
			return nil, s.toStatus(ctx, err)
		}
		if visitor.LinkedTo == user {
			linkRevision = visitor.Revision
			break
		}
		w := s.newWrite(ctx, policy, visitorID, domain.EventLink, domain.SourceLink)
		w.Event.Counterpart = user
		w.LinkTo, w.ExpectedRevision = user, &visitor.Revision
		res, err := s.store.Write(ctx, w)
		if err == nil {
			linkRevision = res.Record.Revision
			break
		}
		if !errors.Is(err, store.ErrConflict) || attempt == linkAttempts {
			return nil, s.toStatus(ctx, err)
		}
	}
	for attempt := 0; ; attempt++ {
		rec, err := s.store.GetOwn(ctx, user)
		if err != nil {
			return nil, s.toStatus(ctx, err)
		}
		merge := domain.MergeLink(policy, visitor, rec)
		w := s.newWrite(ctx, policy, user, domain.EventLink, domain.SourceLink)
		w.Event.Counterpart = visitorID
		w.Decisions, w.GPCAt, w.ExpectedRevision = merge.Decisions, merge.GPCAt, &rec.Revision
		w.LinkedVisitor = visitorID // kept with the user, so erasing the user finds the visitor
		w.IdempotencyKey = fmt.Sprintf("link:%s:%d", visitorID, linkRevision)
		if merge.Restrict {
			w.Restrict = &merge.Restrict
		}
		if merge.Minor {
			w.Minor = &merge.Minor
		}
		res, err := s.store.Write(ctx, w)
		switch {
		case errors.Is(err, store.ErrIdempotencyMismatch):
			// Merged before, and the user has changed since: nothing to do.
			return &consentv1.LinkSubjectsResponse{Consent: consentToProto(policy, user, rec, "", w.Now)}, nil
		case err == nil && res.Replayed:
			return &consentv1.LinkSubjectsResponse{Consent: consentToProto(policy, user, rec, "", w.Now)}, nil
		case err == nil:
			return &consentv1.LinkSubjectsResponse{Consent: consentToProto(policy, user, res.Record, "", w.Now)}, nil
		}
		if !errors.Is(err, store.ErrConflict) || attempt == linkAttempts {
			return nil, s.toStatus(ctx, err)
		}
	}
}

func notVisitor(id string) error {
	if domain.IsVisitorID(id) {
		return &domain.FieldError{Field: "subject_id", Reason: "must be a user id, not a visitor id: a visitor is linked to a user"}
	}
	return nil
}

func visitorOnly(id string) error {
	if !domain.IsVisitorID(id) {
		return &domain.FieldError{Field: "visitor_id", Reason: "must be a visitor id minted by CreateVisitor (\"v_\" and 22 characters)"}
	}
	return nil
}
