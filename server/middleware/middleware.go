// Package middleware holds the gRPC interceptors every call passes through,
// REST calls included (the gateway dials the gRPC server). The chain itself,
// in the order it runs, is in server/app so it can be read in one place.
package middleware

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"runtime/debug"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	grpcmiddleware "github.com/grpc-ecosystem/go-grpc-middleware/v2"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// RequestIDKey is the metadata key (and, over REST, the X-Request-Id header)
// that carries a request's id. A caller's id is kept; otherwise one is made.
const RequestIDKey = "x-request-id"

type requestIDCtxKey struct{}

// RequestID returns the id of the request in ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDCtxKey{}).(string)
	return id
}

// UnaryRecovery turns a panic in any later interceptor or handler into
// Internal for the caller, and logs it with its stack for the operator. It
// comes first in the chain, so nothing can crash the server.
func UnaryRecovery(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return recovery.UnaryServerInterceptor(recoverWith(logger))
}

// StreamRecovery is UnaryRecovery for streams.
func StreamRecovery(logger *slog.Logger) grpc.StreamServerInterceptor {
	return recovery.StreamServerInterceptor(recoverWith(logger))
}

func recoverWith(logger *slog.Logger) recovery.Option {
	return recovery.WithRecoveryHandlerContext(func(ctx context.Context, p any) error {
		logger.ErrorContext(ctx, "panic in handler", "request_id", RequestID(ctx), "panic", p, "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	})
}

// NewMetrics makes the request counters (by method and code) and latency
// histograms. The caller registers them on its own registry.
func NewMetrics() *grpcprom.ServerMetrics {
	return grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
		grpcprom.WithHistogramBuckets([]float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}),
	))
}

// WithRequestID returns ctx carrying the request id id, for RequestID.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDCtxKey{}, id)
}

// NewRequestID makes a request id for a caller that sent none.
func NewRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func withRequestID(ctx context.Context) context.Context {
	id := ""
	if v := metadata.ValueFromIncomingContext(ctx, RequestIDKey); len(v) > 0 && ValidRequestID(v[0]) {
		id = v[0]
	}
	if id == "" {
		id = NewRequestID()
	}
	// The id goes back to the caller (over REST as the X-Request-Id header).
	_ = grpc.SetHeader(ctx, metadata.Pairs(RequestIDKey, id))
	return WithRequestID(ctx, id)
}

// ValidRequestID keeps callers from putting arbitrary text into our logs.
func ValidRequestID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// UnaryRequestID keeps a caller's request id or makes one, returns it in
// the response headers and puts it in the context for the log lines.
func UnaryRequestID(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	return handler(withRequestID(ctx), req)
}

// StreamRequestID is UnaryRequestID for streams.
func StreamRequestID(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	wrapped := grpcmiddleware.WrapServerStream(ss)
	wrapped.WrappedContext = withRequestID(ss.Context())
	return handler(srv, wrapped)
}

// levelOf is the level a call's log line is written at.
func levelOf(code codes.Code) slog.Level {
	switch code {
	case codes.OK:
		return slog.LevelDebug
	case codes.InvalidArgument, codes.NotFound, codes.Aborted, codes.FailedPrecondition,
		codes.Unauthenticated, codes.PermissionDenied, codes.ResourceExhausted, codes.Canceled:
		return slog.LevelInfo
	case codes.Unavailable, codes.DeadlineExceeded:
		return slog.LevelWarn
	}
	return slog.LevelError
}

// UnaryLogging logs one line per call: method, code, duration and request
// id. It logs no peer address and no request content, so no IP, subject id or
// token reaches the logs (go-grpc-middleware's logging adds the peer address,
// which is why this is ours).
func UnaryLogging(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		logCall(ctx, logger, "call", info.FullMethod, start, err)
		return resp, err
	}
}

// logCall writes the line of a call or stream that ended with err.
func logCall(ctx context.Context, logger *slog.Logger, msg, method string, start time.Time, err error) {
	code := status.Code(err)
	// Successful calls log at debug: at tens of thousands of checks a
	// second, an info line each would cost more than the check.
	level := levelOf(code)
	if !logger.Enabled(ctx, level) {
		return // the usual case for successful calls: build nothing
	}
	attrs := []any{
		"method", method,
		"code", code.String(),
		"duration_ms", float64(time.Since(start).Microseconds()) / 1000,
		"request_id", RequestID(ctx),
	}
	// With tracing on, the line names its trace, to go from a log line to
	// the trace and back.
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		attrs = append(attrs, "trace_id", sc.TraceID().String())
	}
	logger.Log(ctx, level, msg, attrs...)
}

// StreamLogging is UnaryLogging for streams: one line when a stream ends.
func StreamLogging(logger *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		logCall(ss.Context(), logger, "stream", info.FullMethod, start, err)
		return err
	}
}
