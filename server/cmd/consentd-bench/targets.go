package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
)

// The load generator's clients: the generated gRPC client, and net/http
// with keep-alive. consentd and the ceiling are called through the same
// code, with the same connections and the same requests.

// grpcTarget is a pool of gRPC connections; worker w uses connection
// w mod len. grpc-go multiplexes every call of a connection on one HTTP/2
// connection, served on each side by one reader and one writer goroutine.
type grpcTarget struct {
	conns   []*grpc.ClientConn
	clients []consentv1.ConsentServiceClient
}

// bearer sends the API key with every call, over plaintext loopback.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return false }

func dialGRPC(addr string, conns int, apiKey string) (*grpcTarget, error) {
	t := &grpcTarget{}
	for range conns {
		conn, err := grpc.NewClient("passthrough:///"+addr,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithPerRPCCredentials(bearer(apiKey)),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
		if err != nil {
			t.close()
			return nil, err
		}
		conn.Connect()
		t.conns = append(t.conns, conn)
		t.clients = append(t.clients, consentv1.NewConsentServiceClient(conn))
	}
	return t, nil
}

func (t *grpcTarget) client(worker int) consentv1.ConsentServiceClient {
	return t.clients[worker%len(t.clients)]
}

func (t *grpcTarget) close() {
	for _, c := range t.conns {
		_ = c.Close()
	}
}

// restTarget is an HTTP/1.1 client keeping up to conns connections alive:
// with as many workers, each worker has a connection of its own.
type restTarget struct {
	client *http.Client
	base   string
	auth   string
}

func newREST(addr string, conns int, apiKey string) *restTarget {
	transport := &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns,
		IdleConnTimeout: 5 * time.Minute, DisableCompression: true,
	}
	return &restTarget{client: &http.Client{Transport: transport, Timeout: 30 * time.Second},
		base: "http://" + addr, auth: "Bearer " + apiKey}
}

// get sends a GET and reads the whole answer (so the connection is reused);
// anything but 200 is an error.
func (t *restTarget) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.base+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", t.auth)
	resp, err := t.client.Do(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", strings.SplitN(path, "?", 2)[0], resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

func (t *restTarget) close() { t.client.CloseIdleConnections() }

// --- the workload ---------------------------------------------------------------

// decidedPurposes are the purposes every seeded subject has decided (a banner
// "accept all" as in store_test.go's TestMemoryUsage); checks ask about them.
var decidedPurposes = []string{"functional", "analytics", "ads", "marketing.email", "marketing.sms"}

// seedDecisions are subject i's decisions: a mix of grants and denials, so
// checks answer both ways and FilterSubjects keeps about half of a list.
func seedDecisions(i int) map[string]bool {
	return map[string]bool{
		"functional": true, "analytics": i%2 == 0, "ads": i%3 == 0,
		"marketing.email": i%2 == 1, "marketing.sms": i%5 == 0,
	}
}

func subjectID(i int) string { return fmt.Sprintf("bench-subject-%05d", i) }

// checkSet is a fixed set of checks (subject x purpose), prepared once so
// the generator spends nothing on building requests; workers walk it in
// scattered order.
type checkSet struct {
	grpc []*consentv1.CheckConsentRequest
	rest []string
}

func newCheckSet(subjects, n int) checkSet {
	var s checkSet
	for i := range n {
		subject := subjectID((i * 7919) % subjects)
		purpose := decidedPurposes[(i*31)%len(decidedPurposes)]
		s.grpc = append(s.grpc, &consentv1.CheckConsentRequest{SubjectId: subject, Purpose: purpose})
		s.rest = append(s.rest, "/v1/subjects/"+subject+"/purposes/"+purpose+":check")
	}
	return s
}

// pick spreads (worker, seq) over n entries.
func pick(worker, seq, n int) int {
	return int((uint64(seq)*64 + uint64(worker)) * 2654435761 % uint64(n))
}

func grpcCheck(t *grpcTarget, set checkSet) op {
	return func(ctx context.Context, worker, seq int) error {
		_, err := t.client(worker).CheckConsent(ctx, set.grpc[pick(worker, seq, len(set.grpc))])
		return err
	}
}

func restCheck(t *restTarget, set checkSet) op {
	return func(ctx context.Context, worker, seq int) error {
		_, err := t.get(ctx, set.rest[pick(worker, seq, len(set.rest))])
		return err
	}
}

// sanityCheck asks both ways once and wants the answer a seeded subject
// must get: a load that only measures errors would be worthless.
func sanityCheck(ctx context.Context, g *grpcTarget, r *restTarget, wantReason consentv1.Reason) error {
	resp, err := g.client(0).CheckConsent(ctx, &consentv1.CheckConsentRequest{SubjectId: subjectID(0), Purpose: "functional"})
	if err != nil {
		return fmt.Errorf("gRPC CheckConsent: %w", err)
	}
	if !resp.GetAllowed() || resp.GetReason() != wantReason {
		return fmt.Errorf("gRPC CheckConsent answered %v, want allowed with %v", resp, wantReason)
	}
	body, err := r.get(ctx, "/v1/subjects/"+subjectID(0)+"/purposes/functional:check")
	if err != nil {
		return fmt.Errorf("REST check: %w", err)
	}
	var answer struct {
		Allowed bool   `json:"allowed"`
		Reason  string `json:"reason"`
	}
	if err := json.Unmarshal(body, &answer); err != nil || !answer.Allowed || answer.Reason != wantReason.String() {
		return fmt.Errorf("REST check answered %s, want allowed with %v", body, wantReason)
	}
	return nil
}
