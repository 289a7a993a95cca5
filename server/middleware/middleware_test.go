package middleware

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// run passes one unary call through the interceptors in the order the
// server chains them.
func run(t *testing.T, ctx context.Context, handler grpc.UnaryHandler) (string, error) {
	t.Helper()
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	interceptors := []grpc.UnaryServerInterceptor{
		UnaryRecovery(logger), UnaryRequestID, NewMetrics().UnaryServerInterceptor(), UnaryLogging(logger),
	}
	info := &grpc.UnaryServerInfo{FullMethod: "/consent.v1.ConsentService/CheckConsent"}
	// Compose them as grpc.ChainUnaryInterceptor does: the first runs first.
	call := handler
	for i := len(interceptors) - 1; i >= 0; i-- {
		next, ic := call, interceptors[i]
		call = func(ctx context.Context, req any) (any, error) { return ic(ctx, req, info, next) }
	}
	_, err := call(ctx, "request")
	return logs.String(), err
}

func TestAPanicBecomesInternalWithoutItsDetails(t *testing.T) {
	logs, err := run(t, context.Background(), func(context.Context, any) (any, error) {
		panic("secret detail from deep inside")
	})
	st := status.Convert(err)
	if st.Code() != codes.Internal || st.Message() != "internal error" {
		t.Fatalf("got %v %q, want Internal \"internal error\"", st.Code(), st.Message())
	}
	if !strings.Contains(logs, "secret detail from deep inside") || !strings.Contains(logs, "panic in handler") {
		t.Errorf("the panic is not logged for the operator:\n%s", logs)
	}
}

func TestRequestIDIsKeptWhenValidAndMadeOtherwise(t *testing.T) {
	for _, tc := range []struct {
		name, sent string
		kept       bool
	}{
		{"a caller's id is kept", "abc-123_x.y", true},
		{"an id with spaces is replaced", "a b", false},
		{"an overlong id is replaced", strings.Repeat("a", 65), false},
		{"no id gets one made", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.sent != "" {
				ctx = metadata.NewIncomingContext(ctx, metadata.Pairs(RequestIDKey, tc.sent))
			}
			var seen string
			logs, _ := run(t, ctx, func(ctx context.Context, _ any) (any, error) {
				seen = RequestID(ctx)
				return "ok", nil
			})
			if got := seen == tc.sent; got != tc.kept {
				t.Fatalf("request id %q for sent %q", seen, tc.sent)
			}
			if len(seen) < 16 && !tc.kept {
				t.Fatalf("made id %q is too short to be unique", seen)
			}
			if !strings.Contains(logs, `"request_id":"`+seen+`"`) {
				t.Errorf("the call's log line lacks its request id:\n%s", logs)
			}
		})
	}
}
