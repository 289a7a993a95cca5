package api

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/auth"
	"github.com/consentd/consentd/server/domain"
)

// CreateVisitor mints a new anonymous visitor id and its token, and answers
// with its consent in the region asked for, so a browser's first visit needs
// no GetConsent. Nothing is stored: the visitor exists once it first writes.
// The id is new, so its record is the empty one and the answer is computed
// without reading Redis: what GetConsent would answer for it.
func (s *Server) CreateVisitor(ctx context.Context, req *consentv1.CreateVisitorRequest) (*consentv1.CreateVisitorResponse, error) {
	policy := s.policy()
	if err := domain.ValidateRegionCode("region", req.GetRegion()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	id := auth.NewVisitorID()
	token, err := s.issue(ctx, id)
	if err != nil {
		return nil, err
	}
	consent := consentToProto(policy, id, domain.Record{}, req.GetRegion(), s.now())
	return &consentv1.CreateVisitorResponse{SubjectId: id, Token: token, Consent: consent}, nil
}

// IssueSubjectToken mints a token for a subject a site's backend vouches for.
func (s *Server) IssueSubjectToken(ctx context.Context, req *consentv1.IssueSubjectTokenRequest) (*consentv1.IssueSubjectTokenResponse, error) {
	if err := domain.ValidateSubjectID("subject_id", req.GetSubjectId()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	token, err := s.issue(ctx, req.GetSubjectId())
	if err != nil {
		return nil, err
	}
	return &consentv1.IssueSubjectTokenResponse{Token: token}, nil
}

// RefreshSubjectToken gives the caller's subject a fresh token.
func (s *Server) RefreshSubjectToken(ctx context.Context, _ *consentv1.RefreshSubjectTokenRequest) (*consentv1.RefreshSubjectTokenResponse, error) {
	p := auth.FromContext(ctx)
	if p.Kind != auth.Visitor {
		return nil, status.Error(codes.FailedPrecondition, "authorization: refreshing needs a subject token")
	}
	token, err := s.issue(ctx, p.Subject)
	if err != nil {
		return nil, err
	}
	return &consentv1.RefreshSubjectTokenResponse{Token: token}, nil
}

func (s *Server) issue(ctx context.Context, subjectID string) (*consentv1.SubjectToken, error) {
	if s.tokens == nil {
		return nil, s.toStatus(ctx, errNoTokens)
	}
	token, expires, err := s.tokens.Issue(subjectID)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &consentv1.SubjectToken{Token: token, ExpireTime: timestamppb.New(expires.Truncate(time.Second))}, nil
}
