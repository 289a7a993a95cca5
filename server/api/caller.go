package api

import (
	"context"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/auth"
)

// GetCaller describes the caller's credentials. The console signs in with it:
// an unknown key fails here (UNAUTHENTICATED, from the interceptor), and a
// known one shows its scopes, so the console can say what a key lacks
// instead of failing call by call.
func (s *Server) GetCaller(ctx context.Context, _ *consentv1.GetCallerRequest) (*consentv1.GetCallerResponse, error) {
	p := auth.FromContext(ctx)
	out := &consentv1.GetCallerResponse{Name: p.Name}
	switch p.Kind {
	case auth.Service:
		out.Kind = consentv1.CallerKind_CALLER_KIND_SERVICE
		for _, sc := range auth.AllScopes { // documentation order, not map order
			if p.Scopes[sc] {
				out.Scopes = append(out.Scopes, string(sc))
			}
		}
	case auth.Visitor:
		out.Kind = consentv1.CallerKind_CALLER_KIND_VISITOR
		out.SubjectId = p.Subject
	case auth.Demo:
		out.Kind = consentv1.CallerKind_CALLER_KIND_DEMO
		for _, sc := range auth.AllScopes { // demo mode allows every call
			out.Scopes = append(out.Scopes, string(sc))
		}
	}
	return out, nil
}
