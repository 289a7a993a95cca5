package app

import (
	"context"
	"encoding/hex"
	"net"
	"strings"
	"sync"
	"testing"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/prototext"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/internal/redistest"
)

// collector is an OTLP trace collector that keeps what it receives.
type collector struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (c *collector) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			c.spans = append(c.spans, ss.GetSpans()...)
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func startCollector(t *testing.T) (*collector, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, c)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return c, lis.Addr().String()
}

func TestTracingSendsASpanPerCallAndContinuesTheCallersTrace(t *testing.T) {
	col, endpoint := startCollector(t)
	srv := start(t, redistest.Start(t).URL(), func(c *config.Config) { c.OTLPEndpoint, c.TraceSampleRatio = endpoint, 1 })
	must(srv.grpc.CheckConsent(ctx(t), &consentv1.CheckConsentRequest{SubjectId: "trace-subject-1", Purpose: "ads"})).ok(t)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	code, body, _ := srv.rest(t, "PATCH", "/v1/subjects/trace-subject-1/consent", `{"decisions": {"ads": true}}`,
		"Traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	if code != 200 {
		t.Fatalf("REST update: %d %v", code, body)
	}
	srv.stop() // shutting down sends the spans still buffered

	col.mu.Lock()
	defer col.mu.Unlock()
	names := map[string]string{} // span name -> trace id
	for _, s := range col.spans {
		names[s.GetName()] = hex.EncodeToString(s.GetTraceId())
		if text := prototext.Format(s); strings.Contains(text, "trace-subject-1") {
			t.Errorf("a span holds the subject id: %s", text)
		}
	}
	if _, ok := names["consent.v1.ConsentService/CheckConsent"]; !ok {
		t.Errorf("no span for the gRPC call; got %v", names)
	}
	if !strings.Contains(srv.logs.String(), `"trace_id":"`+traceID+`"`) {
		t.Error("the call's log line does not name its trace")
	}
	if got := names["consent.v1.ConsentService/UpdateConsent"]; got != traceID {
		t.Errorf("the REST call's span is in trace %q, want the caller's %s (spans: %v)", got, traceID, names)
	}
}

func TestTracingIsOffByDefault(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	if srv.app.tracing.provider != nil {
		t.Fatal("a tracer provider was made without --otlp-endpoint")
	}
}
