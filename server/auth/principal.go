// Package auth decides who is calling and what they may do. Services
// authenticate with API keys that carry scopes; browsers with a subject
// token bound to one subject id. Every RPC has a rule (rules.go), and the
// interceptor (interceptor.go) enforces it before any handler runs.
package auth

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Scope is a permission an API key carries.
type Scope string

// The scopes. admin implies every other.
const (
	ScopeCheck  Scope = "check"  // CheckConsent, BatchCheckConsent
	ScopeRead   Scope = "read"   // GetPolicy, GetConsent
	ScopeWrite  Scope = "write"  // UpdateConsent, WithdrawConsent
	ScopeWatch  Scope = "watch"  // the change feed
	ScopeRights Scope = "rights" // history with a reason; privacy-rights requests
	ScopeAdmin  Scope = "admin"  // everything
	ScopeToken  Scope = "token"  // IssueSubjectToken
)

// AllScopes lists every scope, in the order documentation shows them.
var AllScopes = []Scope{ScopeCheck, ScopeRead, ScopeWrite, ScopeWatch, ScopeRights, ScopeAdmin, ScopeToken}

// ParseScope checks a scope name.
func ParseScope(s string) (Scope, error) {
	if slices.Contains(AllScopes, Scope(s)) {
		return Scope(s), nil
	}
	names := make([]string, len(AllScopes))
	for i, sc := range AllScopes {
		names[i] = string(sc)
	}
	return "", fmt.Errorf("unknown scope %q (known: %s)", s, strings.Join(names, ", "))
}

// Kind is what sort of caller a principal is.
type Kind int

const (
	// Anonymous: no credentials, allowed only on public RPCs.
	Anonymous Kind = iota
	// Service: a backend with an API key.
	Service
	// Visitor: a browser with a subject token.
	Visitor
	// Demo: anyone, in make run's demo mode, which has no authentication.
	Demo
)

// Principal is an authenticated caller.
type Principal struct {
	Kind    Kind
	Name    string         // the API key's name; "visitor", "demo" or "anonymous" otherwise
	Scopes  map[Scope]bool // Service only
	Subject string         // Visitor only: the one subject the token is bound to
}

// Has reports whether a service principal holds scope (admin holds all).
func (p Principal) Has(s Scope) bool {
	return p.Kind == Service && (p.Scopes[s] || p.Scopes[ScopeAdmin])
}

// Actor is the name recorded in history events for writes by p.
func (p Principal) Actor() string {
	switch p.Kind {
	case Service:
		return "key:" + p.Name
	case Visitor:
		return "visitor"
	case Demo:
		return "demo"
	}
	return "anonymous"
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the caller the interceptor authenticated; a context
// that never passed it holds the Anonymous principal.
func FromContext(ctx context.Context) Principal {
	p, ok := ctx.Value(principalKey{}).(Principal)
	if !ok {
		return Principal{Kind: Anonymous, Name: "anonymous"}
	}
	return p
}
