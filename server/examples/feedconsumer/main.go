// Command feedconsumer follows consentd's change feed as the durable
// consumer "mailer": it applies each change to e-mail marketing, then
// acknowledges it, so after a crash consentd redelivers only the rest.
//
//	CONSENTD_ADDR=localhost:9090 CONSENTD_API_KEY=<key with scope watch> go run ./server/examples/feedconsumer
package main

import (
	"context"
	"errors"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
)

const consumer = "mailer"

func main() {
	// Plaintext for a local consentd; use credentials.NewTLS in production.
	conn, err := grpc.NewClient(os.Getenv("CONSENTD_ADDR"), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(apiKey(os.Getenv("CONSENTD_API_KEY"))))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	client := consentv1.NewConsentServiceClient(conn)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for backoff := time.Second; ctx.Err() == nil; backoff = min(2*backoff, time.Minute) {
		received, err := follow(ctx, client)
		if received {
			backoff = time.Second // it worked for a while: start over
		}
		log.Printf("change feed: %v; reconnecting in %v", err, backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
	}
}

// follow applies changes until the stream ends (consentd restarting, a
// network error). received says whether any message came.
func follow(ctx context.Context, client consentv1.ConsentServiceClient) (received bool, err error) {
	// Creating an existing consumer is a no-op: its position is kept.
	if _, err := client.CreateFeedConsumer(ctx, &consentv1.CreateFeedConsumerRequest{Consumer: consumer}); err != nil {
		return false, err
	}
	stream, err := client.WatchConsentChanges(ctx, &consentv1.WatchConsentChangesRequest{
		Consumer: consumer, Purposes: []string{"marketing.email"}, // restrictions, erasures etc. always come too
	})
	if err != nil {
		return false, err
	}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return received, errors.New("the stream ended (consentd shutting down?)")
		}
		if err != nil {
			return received, err
		}
		received = true // a message without changes is a heartbeat
		var applied []string
		for _, c := range msg.GetChanges() {
			apply(c)
			applied = append(applied, c.GetId())
		}
		if len(applied) > 0 {
			if _, err := client.AcknowledgeConsentChanges(ctx, &consentv1.AcknowledgeConsentChangesRequest{Consumer: consumer, ChangeIds: applied}); err != nil {
				return received, err // unacknowledged changes are redelivered: apply must be idempotent
			}
		}
	}
}

// apply stands for the mailer's own work.
func apply(c *consentv1.ConsentChange) {
	switch {
	case c.GetType() == consentv1.EventType_EVENT_TYPE_ERASE:
		log.Printf("erase %s from the mailing lists", c.GetSubjectId())
	case c.GetOptOut():
		log.Printf("unsubscribe %s (revision %d, %s)", c.GetSubjectId(), c.GetRevision(), c.GetType())
	default:
		log.Printf("re-check %s (revision %d): CheckConsent before the next send", c.GetSubjectId(), c.GetRevision())
	}
}

// apiKey sends the key with every call.
type apiKey string

func (k apiKey) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(k)}, nil
}

func (apiKey) RequireTransportSecurity() bool { return false } // true once on TLS
