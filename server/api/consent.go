package api

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"

	"google.golang.org/grpc/metadata"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/auth"
	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/store"
)

// Metadata keys set by the REST gateway.
const (
	// GPCMetadataKey carries the browser's Sec-GPC header. Only the exact
	// value "1" is a signal, as the GPC specification says.
	GPCMetadataKey = "sec-gpc"
	// ChannelMetadataKey says the call came through the REST gateway.
	ChannelMetadataKey = "x-consentd-channel"
)

// GetConsent returns the effective answer for every purpose.
func (s *Server) GetConsent(ctx context.Context, req *consentv1.GetConsentRequest) (*consentv1.GetConsentResponse, error) {
	policy := s.policy()
	if err := firstError(
		domain.ValidateSubjectID("subject_id", req.GetSubjectId()),
		domain.ValidateRegionCode("region", req.GetRegion()),
		validateMinRevision("min_revision", req.GetMinRevision()),
	); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	rec, err := s.store.Get(ctx, req.GetSubjectId())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	if err := checkMinRevision("min_revision", req.GetMinRevision(), rec.Revision); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &consentv1.GetConsentResponse{Consent: consentToProto(policy, req.GetSubjectId(), rec, req.GetRegion(), s.now())}, nil
}

// UpdateConsent records the decisions given and leaves the other purposes
// alone.
func (s *Server) UpdateConsent(ctx context.Context, req *consentv1.UpdateConsentRequest) (*consentv1.UpdateConsentResponse, error) {
	policy := s.policy()
	decisionsErr := domain.ValidateDecisions(policy, "decisions", req.GetDecisions(), MaxDecisionsPerUpdate)
	if len(req.GetDecisions()) == 0 && (req.GetGpc() || gpcHeader(ctx)) {
		// A browser reporting its GPC signal before the visitor chose
		// anything: the write records the signal alone.
		decisionsErr = nil
	}
	if err := firstError(
		domain.ValidateSubjectID("subject_id", req.GetSubjectId()),
		decisionsErr,
		validateWrite(req.GetSource(), req.GetRegion(), req.ExpectedRevision, req.GetIdempotencyKey()),
	); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	now := s.now()
	source := sourceFromProto(req.GetSource())
	decisions := make(map[string]domain.Decision, len(req.GetDecisions()))
	for id, granted := range req.GetDecisions() {
		purpose, _ := policy.Purpose(id)
		if purpose.Necessary {
			continue // granting necessary is a no-op: it is always granted
		}
		decisions[id] = domain.NewDecision(purpose, granted, source, req.GetRegion(), now)
	}
	consent, err := s.write(ctx, policy, writeArgs{
		subjectID: req.GetSubjectId(), decisions: decisions, eventType: domain.EventUpdate, source: source,
		region: req.GetRegion(), gpc: req.GetGpc(), expected: req.ExpectedRevision, idempotencyKey: req.GetIdempotencyKey(), now: now,
	})
	if err != nil {
		return nil, err
	}
	return &consentv1.UpdateConsentResponse{Consent: consent}, nil
}

// WithdrawConsent denies every non-necessary purpose, or the ones listed.
func (s *Server) WithdrawConsent(ctx context.Context, req *consentv1.WithdrawConsentRequest) (*consentv1.WithdrawConsentResponse, error) {
	policy := s.policy()
	if err := firstError(
		domain.ValidateSubjectID("subject_id", req.GetSubjectId()),
		validateWithdrawPurposes(policy, req.GetPurposes()),
		validateWrite(req.GetSource(), req.GetRegion(), req.ExpectedRevision, req.GetIdempotencyKey()),
	); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	purposes := req.GetPurposes()
	if len(purposes) == 0 {
		purposes = policy.NonNecessaryPurposeIDs()
	}
	now := s.now()
	source := sourceFromProto(req.GetSource())
	decisions := make(map[string]domain.Decision, len(purposes))
	for _, id := range purposes {
		purpose, _ := policy.Purpose(id)
		decisions[id] = domain.NewDecision(purpose, false, source, req.GetRegion(), now)
	}
	consent, err := s.write(ctx, policy, writeArgs{
		subjectID: req.GetSubjectId(), decisions: decisions, eventType: domain.EventWithdraw, source: source,
		region: req.GetRegion(), gpc: req.GetGpc(), expected: req.ExpectedRevision, idempotencyKey: req.GetIdempotencyKey(), now: now,
	})
	if err != nil {
		return nil, err
	}
	return &consentv1.WithdrawConsentResponse{Consent: consent}, nil
}

type writeArgs struct {
	subjectID      string
	decisions      map[string]domain.Decision
	eventType      domain.EventType
	source         domain.Source
	region         string
	gpc            bool
	expected       *int64
	idempotencyKey string
	now            time.Time // the decisions' time, also the event's
}

// write is the one path by which both updates and withdrawals reach the
// store, so every write carries the same event facts.
func (s *Server) write(ctx context.Context, policy *domain.Policy, a writeArgs) (*consentv1.Consent, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	gpc := a.gpc || gpcHeader(ctx)
	res, err := s.store.Write(ctx, store.Write{
		SubjectID:        a.subjectID,
		Decisions:        a.decisions,
		Region:           a.region,
		GPC:              gpc,
		ExpectedRevision: a.expected,
		IdempotencyKey:   a.idempotencyKey,
		FollowLink:       true, // a linked visitor's choices are its user's
		Event: store.EventInfo{
			Type:          a.eventType,
			Actor:         auth.FromContext(ctx).Actor(),
			Source:        a.source,
			PolicyVersion: policy.Version,
			Channel:       channel(ctx),
			Client:        clientFacts(md),
		},
		Now: a.now,
	})
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return consentToProto(policy, a.subjectID, res.Record, a.region, a.now), nil
}

// clientFacts are the coarse facts about a browser recorded with its write:
// the user agent and platform hints the gateway forwards, shortened. Calls
// over gRPC come from services, whose user agent says nothing of a person.
func clientFacts(md metadata.MD) string {
	if v := md.Get(ChannelMetadataKey); len(v) == 0 || v[0] != "rest" {
		return ""
	}
	var facts []string
	for _, f := range []struct {
		key, name string
		max       int
	}{{"grpcgateway-user-agent", "ua", 200}, {"sec-ch-ua-platform", "platform", 32}, {"sec-ch-ua-mobile", "mobile", 4}} {
		if v := md.Get(f.key); len(v) > 0 && v[0] != "" {
			facts = append(facts, f.name+"="+printable(v[0], f.max))
		}
	}
	return strings.Join(facts, "; ")
}

// printable keeps at most max runes of s, without control characters.
func printable(s string, max int) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == max {
			break
		}
		if unicode.IsPrint(r) {
			b.WriteRune(r)
			n++
		}
	}
	return b.String()
}

// gpcHeader reports a "Sec-GPC: 1" header on a REST call. Only the exact
// value "1" is a signal, as the GPC specification says.
func gpcHeader(ctx context.Context) bool {
	return slices.Contains(metadata.ValueFromIncomingContext(ctx, GPCMetadataKey), "1")
}

// channel is how the call arrived: "rest" through the gateway, else "grpc".
func channel(ctx context.Context) string {
	if v := metadata.ValueFromIncomingContext(ctx, ChannelMetadataKey); len(v) > 0 && v[0] == "rest" {
		return "rest"
	}
	return "grpc"
}

func validateWithdrawPurposes(policy *domain.Policy, purposes []string) error {
	if len(purposes) > MaxDecisionsPerUpdate {
		return &domain.FieldError{Field: "purposes", Reason: fmt.Sprintf("at most %d purposes, got %d", MaxDecisionsPerUpdate, len(purposes))}
	}
	for i, id := range purposes {
		field := fmt.Sprintf("purposes[%d]", i)
		if err := domain.ValidatePurpose(policy, field, id); err != nil {
			return err
		}
		if p, _ := policy.Purpose(id); p.Necessary {
			return &domain.FieldError{Field: field, Reason: "the necessary purpose cannot be withdrawn"}
		}
	}
	return nil
}
