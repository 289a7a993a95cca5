// Package api implements the consent.v1 gRPC service. Handlers are thin:
// validate the request, read or write the store once, apply the domain rules,
// translate to protobuf. REST calls arrive here too, through the gateway.
package api

import (
	"context"
	"errors"
	"log/slog"
	"time"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/auth"
	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/store"
)

// Limits on request sizes. They bound the work one call can cause.
const (
	MaxBatchChecks         = 1000
	MaxFilterSubjects      = 10000
	MaxDecisionsPerUpdate  = 64
	DefaultEventsPageSize  = 50
	MaxEventsPageSize      = 500
	maxIdempotencyKeyChars = 128
)

// Store is what the handlers need from storage.
type Store interface {
	Get(ctx context.Context, subjectID string) (domain.Record, error)
	GetOwn(ctx context.Context, subjectID string) (domain.Record, error)
	GetPurposes(ctx context.Context, subjectID string, purposes []string) (domain.Record, error)
	GetMany(ctx context.Context, lookups []store.Lookup) ([]domain.Record, error)
	Write(ctx context.Context, w store.Write) (store.WriteResult, error)
	Events(ctx context.Context, subjectID string, before int64, limit int) ([]store.Event, error)
	History(ctx context.Context, subjectID string) (store.History, error)
	VerifySubject(ctx context.Context, subjectID string, opts store.VerifyOptions) (store.VerifyReport, error)
	Erase(ctx context.Context, e store.Erasure) (store.EraseResult, error)
	RecordBannerEvent(ctx context.Context, region string, step store.BannerStep, now time.Time) error
	Stats(ctx context.Context, first, last time.Time) ([]store.DayStats, error)
}

// Server is the ConsentService.
type Server struct {
	consentv1.UnimplementedConsentServiceServer

	store  Store
	tokens *auth.Tokens          // mints subject tokens; nil: no token RPCs
	policy func() *domain.Policy // the policy in force; it can be reloaded
	now    func() time.Time
	logger *slog.Logger
	feed   feedSettings  // the change feed (feed.go)
	stats  StatsObserver // told what was counted (stats.go); nil: nobody
}

// Option changes a Server default.
type Option func(*Server)

// WithClock replaces time.Now, for tests of expiry.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithTokens enables the token RPCs.
func WithTokens(t *auth.Tokens) Option { return func(s *Server) { s.tokens = t } }

// errNoTokens is a configuration mistake, so it is an internal error.
var errNoTokens = errors.New("api: no token minter configured")

// WithLogger sets the logger for internal errors (default: slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.logger = l } }

// New returns the service over st, answering with the policy that policy
// returns at the time of each call.
func New(st Store, policy func() *domain.Policy, opts ...Option) *Server {
	s := &Server{store: st, policy: policy, now: time.Now, logger: slog.Default()}
	for _, o := range opts {
		o(s)
	}
	return s
}
