package api

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/store"
)

// Feed is what the change-feed RPCs need from storage.
type Feed interface {
	WatchFeed(ctx context.Context, q store.FeedQuery) (*store.FeedReader, error)
	AcknowledgeChanges(ctx context.Context, consumer string, ids []string) (int64, error)
	CreateConsumer(ctx context.Context, name string, fromOldest bool) error
	DeleteConsumer(ctx context.Context, name string) error
	ConsumerLag(ctx context.Context, name string) (store.ConsumerLag, error)
	Consumers(ctx context.Context) ([]store.ConsumerLag, error)
}

// Timing of a watch.
const (
	// DefaultFeedPoll is how often an idle watch reads the feed again.
	DefaultFeedPoll = 250 * time.Millisecond
	// FeedHeartbeat: an idle watch sends a message without changes (and with
	// the current cursor) this often, so clients and proxies see the stream
	// is alive and a client always holds a recent cursor.
	FeedHeartbeat = 15 * time.Second
)

type feedSettings struct {
	feed     Feed
	poll     time.Duration
	shutdown <-chan struct{} // nil: never
}

// WithFeed enables the change-feed RPCs over f; an idle watch reads the feed
// every poll (<= 0: DefaultFeedPoll). Polling, not a blocking read: a
// blocking read of every partition at once is one command across cluster
// slots, which Redis Cluster refuses.
func WithFeed(f Feed, poll time.Duration) Option {
	return func(s *Server) {
		if poll <= 0 {
			poll = DefaultFeedPoll
		}
		s.feed.feed, s.feed.poll = f, poll
	}
}

// WithShutdown ends every watch when done is closed, with a last message
// carrying the cursor to resume from. Without it a watch would hold a
// graceful stop (gRPC GracefulStop, http.Server.Shutdown) until its timeout.
func WithShutdown(done <-chan struct{}) Option {
	return func(s *Server) { s.feed.shutdown = done }
}

var errNoFeed = status.Error(codes.Unimplemented, "the change feed is not enabled on this server")

// WatchConsentChanges streams changes: first whatever is waiting, then new
// ones as they come (read every poll interval), with a heartbeat while idle.
// The first message goes out at once, changes or not, so a client knows the
// stream is open and holds a cursor from the start.
func (s *Server) WatchConsentChanges(req *consentv1.WatchConsentChangesRequest, stream grpc.ServerStreamingServer[consentv1.WatchConsentChangesResponse]) error {
	ctx := stream.Context()
	if s.feed.feed == nil {
		return errNoFeed
	}
	if err := s.validateFeedPurposes(req.GetPurposes()); err != nil {
		return s.toStatus(ctx, err)
	}
	reader, err := s.feed.feed.WatchFeed(ctx, store.FeedQuery{
		Consumer: req.GetConsumer(), Cursor: req.GetCursor(), FromOldest: req.GetFromOldest(),
		Purposes: req.GetPurposes(), BatchSize: int(req.GetBatchSize()),
	})
	if err != nil {
		return s.toStatus(ctx, err)
	}

	var lastSent time.Time // zero: nothing sent yet
	wait := time.NewTimer(0)
	defer wait.Stop()
	for {
		select {
		case <-s.feed.shutdown:
			return stream.Send(&consentv1.WatchConsentChangesResponse{Cursor: reader.Cursor()})
		default:
		}
		batches, more, err := reader.Read(ctx)
		if err != nil {
			return s.toStatus(ctx, err)
		}
		for _, b := range batches {
			msg := &consentv1.WatchConsentChangesResponse{Cursor: b.Cursor}
			for _, c := range b.Changes {
				msg.Changes = append(msg.Changes, changeToProto(c))
			}
			if err := stream.Send(msg); err != nil {
				return err // the client went away
			}
			lastSent = time.Now()
		}
		if lastSent.IsZero() || time.Since(lastSent) >= FeedHeartbeat {
			if err := stream.Send(&consentv1.WatchConsentChangesResponse{Cursor: reader.Cursor()}); err != nil {
				return err
			}
			lastSent = time.Now()
		}
		if more {
			continue // a backlog: read on at once
		}
		wait.Reset(s.feed.poll)
		select {
		case <-ctx.Done():
			return s.toStatus(ctx, ctx.Err())
		case <-s.feed.shutdown:
			return stream.Send(&consentv1.WatchConsentChangesResponse{Cursor: reader.Cursor()})
		case <-wait.C:
		}
	}
}

// validateFeedPurposes checks the filter against the policy; the store
// checks the rest.
func (s *Server) validateFeedPurposes(purposes []string) error {
	policy := s.policy()
	for i, p := range purposes {
		if err := domain.ValidatePurpose(policy, fmt.Sprintf("purposes[%d]", i), p); err != nil {
			return err
		}
	}
	return nil
}

// AcknowledgeConsentChanges marks changes a consumer applied.
func (s *Server) AcknowledgeConsentChanges(ctx context.Context, req *consentv1.AcknowledgeConsentChangesRequest) (*consentv1.AcknowledgeConsentChangesResponse, error) {
	if s.feed.feed == nil {
		return nil, errNoFeed
	}
	n, err := s.feed.feed.AcknowledgeChanges(ctx, req.GetConsumer(), req.GetChangeIds())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &consentv1.AcknowledgeConsentChangesResponse{Acknowledged: n}, nil
}

// CreateFeedConsumer registers a consumer (a no-op if it exists) and
// returns its state.
func (s *Server) CreateFeedConsumer(ctx context.Context, req *consentv1.CreateFeedConsumerRequest) (*consentv1.CreateFeedConsumerResponse, error) {
	if s.feed.feed == nil {
		return nil, errNoFeed
	}
	if err := s.feed.feed.CreateConsumer(ctx, req.GetConsumer(), req.GetFromOldest()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	lag, err := s.feed.feed.ConsumerLag(ctx, req.GetConsumer())
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &consentv1.CreateFeedConsumerResponse{Consumer: consumerToProto(lag)}, nil
}

// DeleteFeedConsumer removes a consumer and what it had not acknowledged.
func (s *Server) DeleteFeedConsumer(ctx context.Context, req *consentv1.DeleteFeedConsumerRequest) (*consentv1.DeleteFeedConsumerResponse, error) {
	if s.feed.feed == nil {
		return nil, errNoFeed
	}
	if err := s.feed.feed.DeleteConsumer(ctx, req.GetConsumer()); err != nil {
		return nil, s.toStatus(ctx, err)
	}
	return &consentv1.DeleteFeedConsumerResponse{}, nil
}

// ListFeedConsumers reports every consumer's lag.
func (s *Server) ListFeedConsumers(ctx context.Context, _ *consentv1.ListFeedConsumersRequest) (*consentv1.ListFeedConsumersResponse, error) {
	if s.feed.feed == nil {
		return nil, errNoFeed
	}
	lags, err := s.feed.feed.Consumers(ctx)
	if err != nil {
		return nil, s.toStatus(ctx, err)
	}
	resp := &consentv1.ListFeedConsumersResponse{}
	for _, l := range lags {
		resp.Consumers = append(resp.Consumers, consumerToProto(l))
	}
	return resp, nil
}

func changeToProto(c store.FeedChange) *consentv1.ConsentChange {
	out := &consentv1.ConsentChange{
		Id:        c.ID,
		SubjectId: c.SubjectID,
		Revision:  c.Revision,
		Time:      timeToProto(c.Event.At),
		Type:      eventTypes[c.Event.Type],
		Source:    sourceToProto(c.Event.Source),
		OptOut:    c.Event.OptOut(),
		Region:    c.Event.Region,
		Gpc:       c.Event.GPC,
	}
	for _, ch := range c.Event.Changes {
		out.Changes = append(out.Changes, &consentv1.PurposeChange{Purpose: ch.Purpose, OldGranted: ch.Old, NewGranted: ch.New})
	}
	return out
}

func consumerToProto(l store.ConsumerLag) *consentv1.FeedConsumer {
	return &consentv1.FeedConsumer{
		Name:                           l.Name,
		Unacknowledged:                 l.Unacknowledged,
		UnacknowledgedOptOuts:          l.UnacknowledgedOptOuts,
		OldestUnacknowledgedOptOutTime: timeToProto(l.OldestUnacknowledgedOptOut),
		TrimmedUnacknowledged:          l.TrimmedUnacknowledged,
	}
}
