package app

import (
	"context"
	"fmt"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"

	"github.com/consentd/consentd/server/config"
)

// tracing is OpenTelemetry tracing, on when --otlp-endpoint is set: a span
// for every gRPC call, which covers REST calls too (they pass through the
// in-process gRPC server, and the gateway forwards the W3C traceparent
// header). Spans carry the method and status, never request content, so no
// subject id reaches the collector.
type tracing struct {
	provider *sdktrace.TracerProvider // nil: off
}

func newTracing(cfg config.Config) (*tracing, error) {
	if cfg.OTLPEndpoint == "" {
		return &tracing{}, nil
	}
	// The exporter connects lazily and retries in the background: a missing
	// collector never stops consentd or slows a call (spans are batched).
	exporter, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpoint(cfg.OTLPEndpoint), otlptracegrpc.WithInsecure())
	if err != nil {
		return nil, fmt.Errorf("--otlp-endpoint: %w", err)
	}
	provider := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exporter),
		// A caller's sampling decision is kept; new traces are sampled at
		// the configured ratio.
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.TraceSampleRatio))),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "consentd"))),
	)
	return &tracing{provider: provider}, nil
}

// serverOptions are the gRPC server options that trace calls.
func (t *tracing) serverOptions() []grpc.ServerOption {
	if t.provider == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(t.provider),
		otelgrpc.WithPropagators(propagation.TraceContext{}),
	))}
}

// shutdown sends the spans still buffered.
func (t *tracing) shutdown(ctx context.Context) error {
	if t.provider == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}
