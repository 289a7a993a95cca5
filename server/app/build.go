package app

// The steps of New, in the order it takes them. Each step that opens
// something registers how to close it, so a failure later in start-up closes
// everything opened before it (New's deferred closeAll).

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
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/test/bufconn"

	"github.com/consentd/consentd/deploy"
	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/auth"
	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/gateway"
	"github.com/consentd/consentd/server/keys"
	"github.com/consentd/consentd/server/middleware"
	"github.com/consentd/consentd/server/ratelimit"
)

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
	a.stats = newStatsCounters()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		grpcMetrics, redisErrors, a.storage, a.stats)
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
	// The internal listener keeps everything it served before the public and
	// admin listeners existed, but what those take over when they are on: the
	// demo site goes to the public listener, health and metrics to the admin
	// one. The console stays here, next to the API it calls with an API key.
	demoSite := cfg.DemoSite
	if cfg.PublicAddr != "" {
		demoSite = ""
	}
	handler, err := gateway.New(context.Background(), a.gatewayConn, gateway.Options{Ready: a.ready, Degraded: a.degraded, Metrics: metrics, Logger: a.logger, CORSOrigins: cfg.CORSOrigins, DemoSite: demoSite, Console: cfg.Console,
		VendorList: a.vendorList, AdminElsewhere: cfg.AdminAddr != ""})
	if err != nil {
		return err
	}
	a.http = newHTTPServer(handler, tlsConfig, a.logger)
	if cfg.PublicAddr != "" {
		public, err := gateway.New(context.Background(), a.gatewayConn, gateway.Options{Public: true, Logger: a.logger,
			CORSOrigins: cfg.CORSOrigins, DemoSite: cfg.DemoSite, VendorList: a.vendorList})
		if err != nil {
			return err
		}
		a.publicHTTP = newHTTPServer(public, publicTLS(tlsConfig), a.logger)
	}
	if cfg.AdminAddr != "" {
		var pprof func(*http.ServeMux)
		if cfg.Pprof {
			pprof = servePprof
		}
		admin := gateway.Admin(gateway.Options{Ready: a.ready, Degraded: a.degraded, Metrics: metrics, Logger: a.logger}, pprof)
		a.adminHTTP = newHTTPServer(admin, nil, a.logger)
	}
	return nil
}

func newHTTPServer(handler http.Handler, tlsConfig *tls.Config, logger *slog.Logger) *http.Server {
	return &http.Server{Handler: handler, TLSConfig: tlsConfig, ErrorLog: httpErrorLog(logger),
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
}

// publicTLS is the public listener's TLS: the same certificate, but never
// a client certificate asked for (browsers have none), whatever
// --tls-client-ca says for the internal listener. nil (plaintext) when TLS
// is off.
func publicTLS(internal *tls.Config) *tls.Config {
	if internal == nil {
		return nil
	}
	c := internal.Clone()
	c.ClientAuth, c.ClientCAs = tls.NoClientCert, nil
	return c
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
	if a.publicHTTP != nil {
		if a.publicListener, err = net.Listen("tcp", a.cfg.PublicAddr); err != nil {
			return fmt.Errorf("--public-addr: %w", err)
		}
		undo.push(a.publicListener.Close)
	}
	if a.adminHTTP != nil {
		if a.adminListener, err = net.Listen("tcp", a.cfg.AdminAddr); err != nil {
			return fmt.Errorf("--admin-addr: %w", err)
		}
		undo.push(a.adminListener.Close)
		if a.cfg.Pprof {
			a.logger.Warn("profiling served on --admin-addr (--pprof): keep the admin port off the internet", "addr", a.adminListener.Addr().String())
		}
	}
	a.debug, err = newDebugServer(a.cfg.DebugAddr, a.logger)
	return err
}

// loadTLS builds the listeners' TLS settings from the certificate files;
// nil when TLS is off. With a client CA, the internal listeners (gRPC and
// REST) require a client certificate signed by it (mutual TLS between
// services); the public listener never does (publicTLS).
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

// loadPolicyAndVendorList loads the policy and, with --gvl, the IAB vendor
// list it runs with, checked against each other: one value, swapped whole on
// reload, so the two never disagree.
func loadPolicyAndVendorList(cfg config.Config) (*domain.Policy, error) {
	p, err := loadPolicy(cfg.PolicyPath)
	if err != nil {
		return nil, err
	}
	var gvl *domain.GVL
	if cfg.GVLPath != "" {
		if gvl, err = domain.LoadGVL(cfg.GVLPath); err != nil {
			return nil, err
		}
	}
	policyFile := cfg.PolicyPath
	if policyFile == "" {
		policyFile = "shipped policy deploy/policy.yaml"
	}
	if err := domain.CheckVendorList(p, gvl, cfg.GVLPath); err != nil {
		return nil, fmt.Errorf("%s: %w", policyFile, err)
	}
	if gvl != nil {
		p.VendorList = gvl.Narrowed(p)
	}
	return p, nil
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
