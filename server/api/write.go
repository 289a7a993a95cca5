package api

import (
	"context"
	"slices"
	"strings"
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

// newWrite is the one way a handler starts a store.Write, so every event
// carries the same facts: who called, through which channel, under which
// policy version, at what time. The handler adds what its call changes
// (decisions, statuses, a link) and the event's own details.
//
// The write follows a visitor's link to its user, since decisions and
// statuses set through a linked visitor's token are its user's, except for
// the events that are about the subject itself rather than its consent:
// an access or export (of the subject's own data) and a link (which writes
// each side explicitly).
func (s *Server) newWrite(ctx context.Context, policy *domain.Policy, subjectID string, eventType domain.EventType, source domain.Source) store.Write {
	return store.Write{
		SubjectID:  subjectID,
		FollowLink: eventType != domain.EventAccess && eventType != domain.EventExport && eventType != domain.EventLink,
		Event: store.EventInfo{
			Type:          eventType,
			Actor:         auth.FromContext(ctx).Actor(),
			Source:        source,
			PolicyVersion: policy.Version,
			Channel:       channel(ctx),
		},
		Now: s.now(),
	}
}

// writeConsent applies w and answers with the subject's consent after it,
// in region ("": the subject's own).
func (s *Server) writeConsent(ctx context.Context, policy *domain.Policy, w store.Write, region string) (*consentv1.Consent, error) {
	res, err := s.store.Write(ctx, w)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	s.counted(res)
	return consentToProto(policy, w.SubjectID, res.Record, region, w.Now), nil
}

// clientFacts are the coarse facts about a browser recorded with its write:
// the user agent and platform hints the gateway forwards, shortened. Calls
// over gRPC come from services, whose user agent says nothing of a person.
func clientFacts(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
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
