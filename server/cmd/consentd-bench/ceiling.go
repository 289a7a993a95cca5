package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
)

// The ceiling: what grpc-go and grpc-gateway cost by themselves on this
// machine. It runs as a child process of the bench binary (`consentd-bench
// ceiling`), so /proc accounts its CPU apart from consentd's and the load
// generator's, and it has the same shape as consentd: a gRPC server on TCP,
// and a REST gateway reaching a second gRPC server over an in-memory bufconn
// connection (as server/app does). What it lacks is exactly what consentd
// adds: interceptors (recovery, request id, metrics, logging, auth, rate
// limit), validation, the Redis read, the rules, and the HTTP middleware
// (CORS, body limit, routing of the other paths).

// ceilingService answers every CheckConsent with the same constant.
type ceilingService struct {
	consentv1.UnimplementedConsentServiceServer
}

var ceilingAnswer = &consentv1.CheckConsentResponse{Allowed: true, Reason: consentv1.Reason_REASON_EXPLICIT, Revision: 1}

func (ceilingService) CheckConsent(context.Context, *consentv1.CheckConsentRequest) (*consentv1.CheckConsentResponse, error) {
	return ceilingAnswer, nil
}

// runCeiling serves the ceiling on free loopback ports, prints
// "grpc=<addr> http=<addr>" on stdout, and serves until SIGTERM/SIGINT or
// until its parent goes away (stdin closes).
func runCeiling() error {
	// The same garbage collector setting as consentd (gcPercent in
	// server/cmd/consentd/main.go), so the ratios compare code, not GOGC.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
	grpcListener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	httpListener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}

	network := grpc.NewServer()
	consentv1.RegisterConsentServiceServer(network, ceilingService{})
	inProcess := grpc.NewServer()
	consentv1.RegisterConsentServiceServer(inProcess, ceilingService{})
	memory := bufconn.Listen(1 << 20)
	conn, err := grpc.NewClient("passthrough:///ceiling-in-process",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return memory.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	mux := runtime.NewServeMux()
	if err := consentv1.RegisterConsentServiceHandler(context.Background(), mux, conn); err != nil {
		return err
	}
	httpServer := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}

	errs := make(chan error, 3)
	go func() { errs <- network.Serve(grpcListener) }()
	go func() { errs <- inProcess.Serve(memory) }()
	go func() { errs <- httpServer.Serve(httpListener) }()
	fmt.Printf("grpc=%s http=%s\n", grpcListener.Addr(), httpListener.Addr())

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	parentGone := make(chan struct{})
	go func() { // the parent holds our stdin open; EOF means it is gone
		_, _ = os.Stdin.Read(make([]byte, 1))
		close(parentGone)
	}()
	select {
	case <-stop:
	case <-parentGone:
	case err = <-errs:
	}
	_ = httpServer.Close()
	network.Stop()
	inProcess.Stop()
	_ = conn.Close()
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, grpc.ErrServerStopped) {
		err = nil
	}
	return err
}
