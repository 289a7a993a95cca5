package app

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/internal/redistest"
)

// BenchmarkCheckConsent runs gRPC checks against a real consentd and Redis
// in this process, 64 at a time: with -benchmem and -memprofile it shows what
// the check path allocates (client and server together). `make bench` is
// where figures come from; this is for profiling a change.
func BenchmarkCheckConsent(b *testing.B) {
	cfg := testConfig(b, redistest.Start(b).URL())
	cfg.LogLevel = slog.LevelInfo
	a, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	runInBackground(b, a)
	conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(withCredentials))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	client := consentv1.NewConsentServiceClient(conn)
	const subjects = 1024
	for i := range subjects {
		if _, err := client.UpdateConsent(context.Background(), &consentv1.UpdateConsentRequest{
			SubjectId: fmt.Sprint("bench-", i), Decisions: map[string]bool{"analytics": true, "ads": i%2 == 0},
		}); err != nil {
			b.Fatal(err)
		}
	}
	ctx := as(context.Background(), apiKeys["check"])
	b.SetParallelism(32) // goroutines per CPU: 64 calls in flight on 2 CPUs, as make bench
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if _, err := client.CheckConsent(ctx, &consentv1.CheckConsentRequest{SubjectId: fmt.Sprint("bench-", i%subjects), Purpose: "ads"}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
