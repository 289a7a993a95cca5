// Package app is consentd's composition root: it builds every part from the
// config, serves gRPC and HTTP, and shuts down gracefully.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/test/bufconn"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/api"
	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/keys"
	"github.com/consentd/consentd/server/store"
)

// App is a running consentd.
type App struct {
	cfg    config.Config
	logger *slog.Logger
	policy atomic.Pointer[domain.Policy]

	redis         redis.UniversalClient
	store         *store.Store
	grpc          *grpc.Server // serves the network
	grpcInProcess *grpc.Server // serves the gateway
	health        *health.Server
	http          *http.Server // the internal REST API (--http-addr)
	publicHTTP    *http.Server // browsers' listener (--public-addr); nil when off
	adminHTTP     *http.Server // operators' listener (--admin-addr); nil when off

	grpcListener   net.Listener
	httpListener   net.Listener
	publicListener net.Listener
	adminListener  net.Listener
	inProcess      *bufconn.Listener // the gateway's way into the gRPC server
	gatewayConn    *grpc.ClientConn

	feed     *feedRuntime    // ends watch streams at shutdown; publishes consumer lag (feed.go)
	storage  *storageMonitor // whether Redis refuses writes for memory (storage.go)
	stats    *statsCounters  // the consent statistics' counters (metrics.go)
	tracing  *tracing        // OpenTelemetry spans, when --otlp-endpoint is set (tracing.go)
	draining atomic.Bool     // set on shutdown: /readyz fails while calls are still served
	debug    *debugServer    // pprof on --debug-addr; nil when off (debug.go)
}

// New builds consentd and binds its listeners; Run serves. Everything that
// can be wrong with the configuration is reported here, before serving.
func New(cfg config.Config, logger *slog.Logger) (_ *App, err error) {
	a := &App{cfg: cfg, logger: logger}
	// A failed start leaves nothing running: a caller that retries, or a
	// process that embeds consentd, would otherwise keep the stream workers,
	// the gateway's connection and the tracer's exporter for good.
	var undo closers
	defer func() {
		if err != nil {
			if cerr := undo.closeAll(); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
	}()
	routeGRPCLog(logger)
	policy, err := loadPolicyAndVendorList(cfg)
	if err != nil {
		return nil, err
	}
	a.policy.Store(policy)
	keySet, err := keys.Load(cfg.KeysFile)
	if err != nil {
		return nil, err
	}
	if a.store, a.redis, err = newStore(cfg, keySet); err != nil {
		return nil, err
	}
	undo.push(a.redis.Close)

	metrics, grpcMetrics := a.newMetrics()
	interceptors, tokens, err := a.newInterceptors(keySet, grpcMetrics)
	if err != nil {
		return nil, err
	}
	service := api.New(a.store, a.policy.Load, api.WithLogger(logger), api.WithTokens(tokens),
		api.WithFeed(a.store, cfg.FeedPollInterval), api.WithShutdown(a.feed.streamsDone), api.WithStatsObserver(a.stats))
	a.health = health.NewServer()
	if a.tracing, err = newTracing(cfg); err != nil {
		return nil, err
	}
	undo.push(func() error { return a.tracing.shutdown(context.Background()) })
	interceptors = append(interceptors, a.tracing.serverOptions()...)
	tlsConfig, err := a.newGRPCServers(interceptors, service, grpcMetrics, &undo)
	if err != nil {
		return nil, err
	}
	if err := a.newGateway(metrics, tlsConfig, &undo); err != nil {
		return nil, err
	}
	if err := a.listen(&undo); err != nil {
		return nil, err
	}
	return a, nil
}

// GRPCAddr is the address the gRPC server listens on.
func (a *App) GRPCAddr() string { return a.grpcListener.Addr().String() }

// HTTPAddr is the address the HTTP server listens on.
func (a *App) HTTPAddr() string { return a.httpListener.Addr().String() }

// PublicAddr is the address of the public listener, "" when it is off.
func (a *App) PublicAddr() string {
	if a.publicListener == nil {
		return ""
	}
	return a.publicListener.Addr().String()
}

// AdminAddr is the address of the admin listener, "" when it is off.
func (a *App) AdminAddr() string {
	if a.adminListener == nil {
		return ""
	}
	return a.adminListener.Addr().String()
}

// Run serves until ctx is done, then stops taking new calls, lets in-flight
// ones finish (up to the shutdown timeout) and releases everything.
func (a *App) Run(ctx context.Context) error {
	serveErr := make(chan error, 5)
	go func() { serveErr <- a.grpc.Serve(a.grpcListener) }()
	go func() { serveErr <- a.grpcInProcess.Serve(a.inProcess) }()
	serveHTTP := func(s *http.Server, l net.Listener) {
		if s == nil {
			return
		}
		go func() {
			if s.TLSConfig != nil {
				serveErr <- s.ServeTLS(l, "", "")
				return
			}
			serveErr <- s.Serve(l)
		}()
	}
	serveHTTP(a.http, a.httpListener)
	serveHTTP(a.publicHTTP, a.publicListener)
	serveHTTP(a.adminHTTP, a.adminListener)
	// By name too: Kubernetes' gRPC probes and load balancers ask for the
	// service they route to. health.Shutdown turns every name to NOT_SERVING
	// when draining starts.
	for _, name := range healthNames {
		a.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	a.feed.start()
	a.debug.serve()
	serving := []any{"grpc", a.GRPCAddr(), "http", a.HTTPAddr()}
	if a.publicListener != nil {
		serving = append(serving, "public", a.PublicAddr())
	}
	if a.adminListener != nil {
		serving = append(serving, "admin", a.AdminAddr())
	}
	a.logger.Info("consentd serving", append(serving, "policy_version", a.policy.Load().Version)...)

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("serving stopped: %w", err)
	}
	return errors.Join(err, a.shutdown())
}

func (a *App) shutdown() error {
	a.logger.Info("consentd shutting down: draining, then finishing in-flight calls",
		"drain_delay", a.cfg.DrainDelay.String(), "timeout", a.cfg.ShutdownTimeout.String())
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	// Load balancers first: /readyz and gRPC health say "not serving" while
	// calls are still served for the drain delay, so that by the time the
	// listeners close no new traffic is routed here.
	a.draining.Store(true)
	a.health.Shutdown()
	time.Sleep(a.cfg.DrainDelay)
	a.feed.stop() // watch streams end now, or the graceful stops below would wait for them
	// HTTP first: its calls go through the gRPC server, which must still serve.
	// The admin listener goes last: probes and scrapes answer (not ready)
	// while the API listeners drain.
	httpErr := errors.Join(a.http.Shutdown(ctx), shutdownHTTP(ctx, a.publicHTTP))
	stopped := make(chan struct{})
	go func() { a.grpc.GracefulStop(); a.grpcInProcess.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		a.grpc.Stop()
		a.grpcInProcess.Stop()
	}
	// Serve closes its listeners when it stops; these close them when Run was
	// never called (the errors are then "already closed" and mean nothing).
	httpErr = errors.Join(httpErr, shutdownHTTP(ctx, a.adminHTTP))
	_ = a.grpcListener.Close()
	_ = a.httpListener.Close()
	for _, l := range []net.Listener{a.publicListener, a.adminListener} {
		if l != nil {
			_ = l.Close()
		}
	}
	return errors.Join(httpErr, a.gatewayConn.Close(), a.redis.Close(), a.tracing.shutdown(ctx), a.debug.close())
}

// shutdownHTTP stops s, if it is on, letting its requests finish.
func shutdownHTTP(ctx context.Context, s *http.Server) error {
	if s == nil {
		return nil
	}
	return s.Shutdown(ctx)
}

// healthNames are the names gRPC health answers for: the server as a whole
// ("") and the API service.
var healthNames = []string{"", consentv1.ConsentService_ServiceDesc.ServiceName}

// errDraining answers /readyz while consentd shuts down.
var errDraining = errors.New("shutting down")

// ready is /readyz: Redis answers and consentd is not shutting down.
func (a *App) ready(ctx context.Context) error {
	if a.draining.Load() {
		return errDraining
	}
	return a.store.Ping(ctx)
}

// degraded is what /readyz adds while ready: that Redis is full.
//
// A full Redis still makes consentd ready. Every instance shares that Redis,
// so failing readiness would take them all out of the load balancer, and
// checks and reads, which Redis still serves, would fail with the writes
// (a check that fails denies, so every site would stop its analytics and
// ads). Writes answer UNAVAILABLE "storage is full" by themselves (the SDK
// queues them and retries); /readyz says so in its body, and
// consentd_redis_storage_full says so to alerting.
func (a *App) degraded(ctx context.Context) string {
	if a.storage.refresh(ctx) {
		return "storage is full: Redis refuses writes for memory (maxmemory); checks and reads are served"
	}
	return ""
}

// ReloadPolicy reads the policy file again, and the vendor list (--gvl)
// with it. A bad file, or a policy and vendor list that disagree, keeps both
// in force and returns the error.
func (a *App) ReloadPolicy() error {
	policy, err := loadPolicyAndVendorList(a.cfg)
	if err != nil {
		return err
	}
	a.policy.Store(policy)
	attrs := []any{"policy_version", policy.Version}
	if g := policy.VendorList; g != nil {
		attrs = append(attrs, "vendor_list_version", g.VendorListVersion)
	}
	a.logger.Info("policy reloaded", attrs...)
	return nil
}

// vendorList is the served vendor list in force; nil when none.
func (a *App) vendorList() []byte {
	if g := a.policy.Load().VendorList; g != nil {
		return g.Body()
	}
	return nil
}
