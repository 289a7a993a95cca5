package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/internal/eventually"
	"github.com/consentd/consentd/server/internal/redistest"
)

func TestOnShutdownReadinessFailsFirstWhileCallsAreStillServed(t *testing.T) {
	t.Parallel()
	srv := start(t, redistest.Start(t).URL(), func(c *config.Config) { c.DrainDelay = 5 * time.Second })
	stopped := make(chan struct{})
	go func() { srv.stop(); close(stopped) }()

	eventually.True(t, "/readyz to fail", func() bool {
		code, _, _ := srv.rest(t, "GET", "/readyz", "")
		return code == http.StatusServiceUnavailable
	})
	// Draining: load balancers see "not ready", but calls still succeed.
	for _, name := range []string{"", "consent.v1.ConsentService"} {
		health, err := healthpb.NewHealthClient(srv.conn).Check(ctx(t), &healthpb.HealthCheckRequest{Service: name})
		if err != nil || health.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("gRPC health of %q while draining: %v, %v; want NOT_SERVING", name, health, err)
		}
	}
	if _, err := srv.grpc.CheckConsent(ctx(t), &consentv1.CheckConsentRequest{SubjectId: "lb", Purpose: "ads"}); err != nil {
		t.Errorf("a gRPC call while draining: %v", err)
	}
	if code, body, _ := srv.rest(t, "GET", "/v1/subjects/lb/purposes/ads:check", ""); code != 200 {
		t.Errorf("a REST call while draining: %d %v", code, body)
	}
	<-stopped
}

// A rolling restart: consentd A stops (SIGTERM) and B starts on the same
// addresses while clients keep writing. Clients retry what was not accepted
// (connection refused, the server closing) with the same idempotency key,
// as the API asks. No request a server accepted may fail, and every write is
// stored exactly once.
func TestARestartUnderLoadFailsNoAcceptedRequest(t *testing.T) {
	t.Parallel()
	redisURL := redistest.Start(t).URL()
	a := start(t, redisURL, func(c *config.Config) { c.DrainDelay = 100 * time.Millisecond })
	grpcAddr, httpAddr := a.app.GRPCAddr(), a.app.HTTPAddr()

	// Paced writes, so that traffic spans the drain, the gap and the start.
	const workers, writesEach, pace = 4, 200, 3 * time.Millisecond
	var (
		mu       sync.Mutex
		acked    int      // writes answered OK
		refused  int      // attempts not accepted, retried
		failures []string // accepted requests that failed, or writes never done
		restart  = make(chan struct{})
	)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			subject := fmt.Sprintf("restart-%d", w)
			for i := range writesEach {
				time.Sleep(pace)
				key := fmt.Sprintf("%s-write-%d", subject, i)
				err := retryUntilAccepted(func() error {
					if i%2 == 0 {
						_, err := a.grpc.UpdateConsent(context.Background(), &consentv1.UpdateConsentRequest{
							SubjectId: subject, Decisions: map[string]bool{"ads": i%4 == 0}, IdempotencyKey: key})
						return err
					}
					return restWrite(a.baseURL, subject, key, i%4 == 1)
				}, func() { mu.Lock(); refused++; mu.Unlock() })
				mu.Lock()
				if err != nil {
					failures = append(failures, fmt.Sprintf("%s: %v", key, err))
				} else if acked++; acked == workers*writesEach/10 {
					close(restart)
				}
				mu.Unlock()
			}
		}()
	}

	<-restart
	a.stop() // drains, lets in-flight calls finish, closes the listeners
	// A moment with no instance at all, as when a single replica restarts:
	// clients are refused and retry.
	time.Sleep(300 * time.Millisecond)
	b := start(t, redisURL, func(c *config.Config) { c.GRPCAddr, c.HTTPAddr = grpcAddr, httpAddr })
	wg.Wait()

	t.Logf("restart under load: %d writes acknowledged, %d attempts refused while no instance was accepting and retried", acked, refused)
	if len(failures) > 0 {
		t.Fatalf("%d writes failed: %v", len(failures), failures[:min(len(failures), 5)])
	}
	for w := range workers {
		got := must(b.grpc.GetConsent(ctx(t), &consentv1.GetConsentRequest{SubjectId: fmt.Sprintf("restart-%d", w)})).ok(t).GetConsent()
		if got.GetRevision() != writesEach {
			t.Errorf("subject %d has revision %d, want %d: a write was lost or applied twice", w, got.GetRevision(), writesEach)
		}
	}
}

// retryUntilAccepted calls do until it succeeds or fails in a way that
// means a server accepted the request and could not do it. A request no
// server took (nothing listening, the connection closing, a server that had
// stopped taking calls) is retried for up to 20 seconds.
func retryUntilAccepted(do func() error, retried func()) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := do()
		if err == nil || !notAccepted(err) || time.Now().After(deadline) {
			return err
		}
		retried()
		time.Sleep(10 * time.Millisecond)
	}
}

// errNotAccepted marks a REST attempt that reached no server.
var errNotAccepted = errors.New("not accepted")

func notAccepted(err error) bool {
	if errors.Is(err, errNotAccepted) {
		return true
	}
	// Unavailable from the transport: nothing listening or a server that
	// has begun to stop; consentd's own Unavailable (Redis down) is an
	// accepted request that failed, and says so.
	st := status.Convert(err)
	return st.Code() == codes.Unavailable && !strings.Contains(st.Message(), "consent store")
}

func restWrite(baseURL, subject, key string, ads bool) error {
	body := fmt.Sprintf(`{"decisions": {"ads": %v}, "idempotency_key": %q}`, ads, key)
	req, err := http.NewRequest("PATCH", baseURL+"/v1/subjects/"+subject+"/consent", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+apiKeys["admin"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %v", errNotAccepted, err) // no response: no server took it
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("REST write answered %d", resp.StatusCode)
	}
	return nil
}
