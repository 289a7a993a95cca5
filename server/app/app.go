// Package app is consentd's composition root: it builds every part from the
// config, serves gRPC and HTTP, and shuts down gracefully.
package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/test/bufconn"

	"github.com/consentd/consentd/deploy"
	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/api"
	"github.com/consentd/consentd/server/auth"
	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/gateway"
	"github.com/consentd/consentd/server/keys"
	"github.com/consentd/consentd/server/middleware"
	"github.com/consentd/consentd/server/ratelimit"
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
	http          *http.Server

	grpcListener net.Listener
	httpListener net.Listener
	inProcess    *bufconn.Listener // the gateway's way into the gRPC server
	gatewayConn  *grpc.ClientConn

	feed     *feedRuntime    // ends watch streams at shutdown; publishes consumer lag (feed.go)
	storage  *storageMonitor // whether Redis refuses writes for memory (storage.go)
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
	policy, err := loadPolicy(cfg.PolicyPath)
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
		api.WithFeed(a.store, cfg.FeedPollInterval), api.WithShutdown(a.feed.streamsDone))
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

// closers close what New has opened so far.
type closers []func() error

func (c *closers) push(close func() error) { *c = append(*c, close) }

// closeAll closes newest first: what uses a resource goes before it (the
// gateway's connection before the server it dials).
func (c closers) closeAll() error {
	var errs []error
	for i := len(c) - 1; i >= 0; i-- {
		errs = append(errs, c[i]())
	}
	return errors.Join(errs...)
}

// newMetrics builds the Prometheus registry /metrics serves, with the gRPC
// calls' metrics, which the interceptors update.
func (a *App) newMetrics() (*prometheus.Registry, *grpcprom.ServerMetrics) {
	metrics := prometheus.NewRegistry()
	grpcMetrics := middleware.NewMetrics()
	a.storage = newStorageMonitor(a.store.StorageFull)
	redisErrors := newRedisErrorCounter(a.storage.refused)
	a.redis.AddHook(redisErrors)
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		grpcMetrics, redisErrors, a.storage)
	a.feed = newFeedRuntime(a.store.Consumers, a.cfg.FeedMonitorInterval, a.logger)
	metrics.MustRegister(a.feed.monitor)
	return metrics, grpcMetrics
}

// newInterceptors builds the interceptor chains, and the subject tokens the
// authenticator checks and the API issues.
func (a *App) newInterceptors(keySet keys.Set, grpcMetrics *grpcprom.ServerMetrics) ([]grpc.ServerOption, *auth.Tokens, error) {
	cfg, logger := a.cfg, a.logger
	apiKeys, err := loadAPIKeys(cfg)
	if err != nil {
		return nil, nil, err
	}
	tokens, err := auth.NewTokens(keySet.Token, cfg.TokenTTL, time.Now)
	if err != nil {
		return nil, nil, fmt.Errorf("token keys: %w", err)
	}
	if cfg.Demo {
		logger.Warn("DEMO MODE: calls without credentials are allowed. Never run this in production.")
	}
	authn := auth.NewAuthenticator(apiKeys, tokens, cfg.Demo, logger)
	limiter := ratelimit.New(a.redis, ratelimit.Options{
		PerIP: cfg.RateLimitIP, PerKey: cfg.RateLimitKey, TrustedProxyHops: cfg.TrustedProxyHops,
		IPHashKey: keySet.ActiveHMAC().Secret, RedisWait: cfg.RedisTimeout / 10,
	}, logger)

	// Every call, REST ones included, passes these in this order.
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(
			middleware.UnaryRecovery(logger), // a panic becomes Internal, never a crash
			middleware.UnaryRequestID,        // so every later step can log the request id
			grpcMetrics.UnaryServerInterceptor(),
			middleware.UnaryLogging(logger),
			authn.Unary,   // who is calling, and may they call this for this subject
			limiter.Unary, // per API key, or per client IP for browsers and public calls
		),
		grpc.ChainStreamInterceptor(
			middleware.StreamRecovery(logger),
			middleware.StreamRequestID,
			grpcMetrics.StreamServerInterceptor(),
			middleware.StreamLogging(logger),
			authn.Stream,
		),
	}, tokens, nil
}

// newGRPCServers builds two servers with the same services and
// interceptors: one for the network, with TLS when configured, and one for
// the gateway's in-memory connection, which never leaves the process and
// needs none. It returns the TLS settings, nil when TLS is off.
func (a *App) newGRPCServers(interceptors []grpc.ServerOption, service consentv1.ConsentServiceServer,
	grpcMetrics *grpcprom.ServerMetrics, undo *closers) (*tls.Config, error) {
	// A pool of stream workers serves calls on goroutines whose stacks have
	// already grown, instead of a fresh goroutine per call growing its stack
	// through the interceptor chain and go-redis (`make bench`'s profiles).
	// A call waiting for Redis holds its worker, and grpc-go starts a fresh
	// goroutine when every worker is busy, so the pool covers the calls in
	// flight, not the CPUs: 256 goroutines cost a few MiB of stacks.
	interceptors = append(interceptors, grpc.NumStreamWorkers(uint32(max(256, 32*runtime.GOMAXPROCS(0)))))
	newGRPCServer := func(opts ...grpc.ServerOption) *grpc.Server {
		s := grpc.NewServer(append(opts, interceptors...)...)
		consentv1.RegisterConsentServiceServer(s, service)
		healthpb.RegisterHealthServer(s, a.health)
		reflection.Register(s)
		return s
	}
	tlsConfig, err := loadTLS(a.cfg)
	if err != nil {
		return nil, err
	}
	if tlsConfig != nil {
		a.grpc = newGRPCServer(grpc.Creds(credentials.NewTLS(tlsConfig)))
	} else {
		a.grpc = newGRPCServer()
	}
	a.grpcInProcess = newGRPCServer()
	// The stream workers run from NewServer on; Stop ends them.
	undo.push(func() error { a.grpc.Stop(); a.grpcInProcess.Stop(); return nil })
	grpcMetrics.InitializeMetrics(a.grpc)
	return tlsConfig, nil
}

// newGateway builds the HTTP server: the REST gateway, health, metrics and
// the demo site.
func (a *App) newGateway(metrics *prometheus.Registry, tlsConfig *tls.Config, undo *closers) error {
	// The gateway reaches the gRPC server over an in-memory connection: every
	// REST call passes the same interceptors as a gRPC call, without a TCP hop.
	a.inProcess = bufconn.Listen(1 << 20)
	undo.push(a.inProcess.Close)
	var err error
	a.gatewayConn, err = grpc.NewClient("passthrough:///consentd-in-process",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return a.inProcess.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	undo.push(a.gatewayConn.Close)
	cfg := a.cfg
	handler, err := gateway.New(context.Background(), a.gatewayConn, gateway.Options{Ready: a.ready, Degraded: a.degraded, Metrics: metrics, Logger: a.logger, CORSOrigins: cfg.CORSOrigins, DemoSite: cfg.DemoSite})
	if err != nil {
		return err
	}
	a.http = &http.Server{Handler: handler, TLSConfig: tlsConfig, ErrorLog: httpErrorLog(a.logger),
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	return nil
}

// listen binds the ports. It comes last, so that a mistake found by an
// earlier step is reported before a port is taken.
func (a *App) listen(undo *closers) error {
	var err error
	if a.grpcListener, err = net.Listen("tcp", a.cfg.GRPCAddr); err != nil {
		return fmt.Errorf("--grpc-addr: %w", err)
	}
	undo.push(a.grpcListener.Close)
	if a.httpListener, err = net.Listen("tcp", a.cfg.HTTPAddr); err != nil {
		return fmt.Errorf("--http-addr: %w", err)
	}
	undo.push(a.httpListener.Close)
	a.debug, err = newDebugServer(a.cfg.DebugAddr, a.logger)
	return err
}

// GRPCAddr is the address the gRPC server listens on.
func (a *App) GRPCAddr() string { return a.grpcListener.Addr().String() }

// HTTPAddr is the address the HTTP server listens on.
func (a *App) HTTPAddr() string { return a.httpListener.Addr().String() }

// Run serves until ctx is done, then stops taking new calls, lets in-flight
// ones finish (up to the shutdown timeout) and releases everything.
func (a *App) Run(ctx context.Context) error {
	serveErr := make(chan error, 3)
	go func() { serveErr <- a.grpc.Serve(a.grpcListener) }()
	go func() { serveErr <- a.grpcInProcess.Serve(a.inProcess) }()
	go func() {
		if a.http.TLSConfig != nil {
			serveErr <- a.http.ServeTLS(a.httpListener, "", "")
			return
		}
		serveErr <- a.http.Serve(a.httpListener)
	}()
	// By name too: Kubernetes' gRPC probes and load balancers ask for the
	// service they route to. health.Shutdown turns every name to NOT_SERVING
	// when draining starts.
	for _, name := range healthNames {
		a.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	a.feed.start()
	a.debug.serve()
	a.logger.Info("consentd serving", "grpc", a.GRPCAddr(), "http", a.HTTPAddr(), "policy_version", a.policy.Load().Version)

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
	httpErr := a.http.Shutdown(ctx)
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
	_ = a.grpcListener.Close()
	_ = a.httpListener.Close()
	return errors.Join(httpErr, a.gatewayConn.Close(), a.redis.Close(), a.tracing.shutdown(ctx), a.debug.close())
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

// ReloadPolicy reads the policy file again. A bad file keeps the policy in
// force and returns the error.
func (a *App) ReloadPolicy() error {
	policy, err := loadPolicy(a.cfg.PolicyPath)
	if err != nil {
		return err
	}
	a.policy.Store(policy)
	a.logger.Info("policy reloaded", "policy_version", policy.Version)
	return nil
}

// loadTLS builds the listeners' TLS settings from the certificate files;
// nil when TLS is off. With a client CA, both listeners require a client
// certificate signed by it (mutual TLS between services).
func loadTLS(cfg config.Config) (*tls.Config, error) {
	if cfg.TLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if cfg.TLSClientCA != "" {
		pem, err := os.ReadFile(cfg.TLSClientCA)
		if err != nil {
			return nil, fmt.Errorf("--tls-client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-client-ca: %s holds no PEM certificate", cfg.TLSClientCA)
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// loadAPIKeys reads the services' keys: a file, or the single key of
// CONSENTD_API_KEY. Demo mode may have none.
func loadAPIKeys(cfg config.Config) (*auth.APIKeys, error) {
	switch {
	case cfg.APIKeysFile != "":
		return auth.LoadAPIKeys(cfg.APIKeysFile)
	case cfg.APIKey != "":
		return auth.SingleAPIKey(cfg.APIKey)
	}
	return nil, nil
}

func loadPolicy(path string) (*domain.Policy, error) {
	if path == "" {
		p, err := domain.ParsePolicy(deploy.DefaultPolicy)
		if err != nil {
			return nil, fmt.Errorf("shipped policy deploy/policy.yaml: %w", err)
		}
		return p, nil
	}
	return domain.LoadPolicy(path)
}
