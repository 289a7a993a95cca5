package auth

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	grpcmiddleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/consentd/consentd/server/middleware"
)

// protectedPrefix: every RPC of these services needs a rule. Others (gRPC
// health, reflection) are open, as a load balancer's probe must be.
const protectedPrefix = "/consent.v1."

// Authenticator is the interceptor that authenticates each call and checks
// it against Rules.
type Authenticator struct {
	keys   *APIKeys
	tokens *Tokens
	demo   bool
	logger *slog.Logger
}

// NewAuthenticator checks API keys and subject tokens. In demo mode a call
// without credentials is let through as the Demo principal; calls with
// credentials are still checked.
func NewAuthenticator(keys *APIKeys, tokens *Tokens, demo bool, logger *slog.Logger) *Authenticator {
	return &Authenticator{keys: keys, tokens: tokens, demo: demo, logger: logger}
}

// Unary is the unary server interceptor.
func (a *Authenticator) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := a.authorize(ctx, info.FullMethod, req)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// Stream is the stream server interceptor. Streams carry no subject in
// their first message that could be checked here, so a streaming RPC must
// not allow visitors (its rule says so).
func (a *Authenticator) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := a.authorize(ss.Context(), info.FullMethod, nil)
	if err != nil {
		return err
	}
	wrapped := grpcmiddleware.WrapServerStream(ss)
	wrapped.WrappedContext = ctx
	return handler(srv, wrapped)
}

// subjectRequest is every request that names a subject.
type subjectRequest interface{ GetSubjectId() string }

func (a *Authenticator) authorize(ctx context.Context, method string, req any) (context.Context, error) {
	if !strings.HasPrefix(method, protectedPrefix) {
		return ctx, nil
	}
	if err := checkPublic(ctx, method); err != nil {
		return nil, err
	}
	rule, known := Rules[method]
	if !known {
		return nil, status.Errorf(codes.PermissionDenied, "%s has no access rule", rpcName(method))
	}
	p, err := a.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	ctx = WithPrincipal(ctx, p)
	switch {
	case rule.Public, p.Kind == Demo:
		return ctx, nil
	case p.Kind == Anonymous:
		return nil, status.Error(codes.Unauthenticated, "missing credentials: send Authorization: Bearer <API key or subject token>")
	case p.Kind == Service:
		for _, s := range rule.Scopes {
			if p.Has(s) {
				return ctx, nil
			}
		}
		if len(rule.Scopes) == 0 {
			return nil, status.Errorf(codes.PermissionDenied, "%s is for subject tokens, not API keys", rpcName(method))
		}
		return nil, status.Errorf(codes.PermissionDenied, "API key %q lacks the scope %s needs (%s)", p.Name, rpcName(method), scopeList(rule.Scopes))
	case p.Kind == Visitor:
		if !rule.Visitor {
			return nil, status.Errorf(codes.PermissionDenied, "a subject token cannot call %s", rpcName(method))
		}
		if r, ok := req.(subjectRequest); ok && r.GetSubjectId() != p.Subject {
			// Logged for the operator, without the token or either subject id.
			a.logger.WarnContext(ctx, "subject token used for another subject",
				"method", method, "request_id", middleware.RequestID(ctx))
			return nil, status.Error(codes.PermissionDenied, "subject_id: the subject token is bound to another subject")
		}
		return ctx, nil
	}
	return nil, status.Error(codes.PermissionDenied, "not allowed")
}

// authenticate reads the credential, if any, and returns who presented it.
func (a *Authenticator) authenticate(ctx context.Context) (Principal, error) {
	values := metadata.ValueFromIncomingContext(ctx, "authorization")
	if len(values) > 1 {
		return Principal{}, status.Errorf(codes.Unauthenticated, "authorization: send one Authorization header, got %d", len(values))
	}
	credential, err := bearerCredential(values)
	if err != nil {
		return Principal{}, err
	}
	if credential == "" {
		if a.demo {
			return Principal{Kind: Demo, Name: "demo"}, nil
		}
		if len(values) == 0 {
			return Principal{Kind: Anonymous, Name: "anonymous"}, nil
		}
		return Principal{}, errEmptyBearer
	}
	if LooksLikeToken(credential) {
		subject, err := a.tokens.Verify(credential)
		if errors.Is(err, ErrTokenExpired) {
			return Principal{}, status.Error(codes.Unauthenticated, "subject token expired: get a fresh one")
		}
		if err != nil {
			return Principal{}, status.Error(codes.Unauthenticated, "subject token invalid")
		}
		return Principal{Kind: Visitor, Name: "visitor", Subject: subject}, nil
	}
	if p, ok := a.keys.Lookup(credential); ok {
		return p, nil
	}
	return Principal{}, status.Error(codes.Unauthenticated, "unknown API key")
}

// errEmptyBearer is what `Authorization: Bearer $KEY` with $KEY unset sends.
var errEmptyBearer = status.Error(codes.Unauthenticated, "authorization: Authorization: Bearer with no credential after it: send Bearer <API key or subject token>")

// bearerCredential returns the credential of an Authorization header, ""
// when there is none or it is empty. The scheme name is case-insensitive
// (RFC 9110 §11.1), so "bearer" and "BEARER" are Bearer too. An empty
// header or one with nothing after "Bearer" (HTTP trims the trailing space)
// is what a script sends when the variable holding its key is unset: it is
// no credential, which demo mode lets through and other modes refuse with
// errEmptyBearer.
func bearerCredential(values []string) (string, error) {
	if len(values) == 0 {
		return "", nil
	}
	header := strings.TrimSpace(values[0])
	scheme, credential, _ := strings.Cut(header, " ")
	if header != "" && !strings.EqualFold(scheme, "Bearer") {
		return "", status.Error(codes.Unauthenticated, "authorization: must be \"Bearer <API key or subject token>\"")
	}
	return strings.TrimSpace(credential), nil
}

func rpcName(method string) string { return method[strings.LastIndex(method, "/")+1:] }

func scopeList(scopes []Scope) string {
	if len(scopes) == len(AllScopes) {
		return "any scope"
	}
	names := make([]string, len(scopes))
	for i, s := range scopes {
		names[i] = string(s)
	}
	return strings.Join(names, " or ")
}
