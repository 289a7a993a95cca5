package api

import (
	"context"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
)

// GetPolicy returns the policy in force.
func (s *Server) GetPolicy(context.Context, *consentv1.GetPolicyRequest) (*consentv1.GetPolicyResponse, error) {
	return &consentv1.GetPolicyResponse{Policy: policyToProto(s.policy())}, nil
}
