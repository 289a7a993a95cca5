// Package gateway serves consentd's HTTP listeners: the REST API (grpc-gateway,
// reaching the gRPC server through a client connection so REST calls pass the
// same interceptors as gRPC calls), health and readiness, Prometheus metrics,
// the OpenAPI document and the GPC well-known file; New builds the internal
// listener's handler (everything, as one port serves it by default) or the
// public one's (Options.Public: the browsers' share, listeners.go), Admin the
// admin one's.
package gateway

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/cors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/api"
	"github.com/consentd/consentd/server/auth"
	"github.com/consentd/consentd/server/console"
	"github.com/consentd/consentd/server/middleware"
)

//go:embed openapi/consent/v1/consent.swagger.json
var openAPI []byte

// MaxBodyBytes bounds a REST request body. The largest legitimate body, a
// send list of 10,000 subject ids to filter, is about half of it.
const MaxBodyBytes = 1 << 20

// gpcWellKnown is /.well-known/gpc.json: this service honours GPC.
const gpcWellKnown = `{"gpc": true, "lastUpdate": "2026-11-23"}` + "\n"

// Options are what the HTTP port serves besides the API.
type Options struct {
	// Ready reports whether the service can answer (Redis reachable, not
	// shutting down). Its error is never shown: the probe says only "not
	// ready", which is all a load balancer needs.
	Ready func(ctx context.Context) error
	// Degraded, when set, is asked once Ready has said yes: a non-empty
	// answer says what works only in part (e.g. Redis is full: writes are
	// refused, reads served). /readyz stays 200 and puts it in the body,
	// for people and monitoring; the load balancer keeps sending calls.
	Degraded func(ctx context.Context) string
	// Metrics is the registry /metrics exposes.
	Metrics *prometheus.Registry
	// DemoSite, in demo mode, is the sdk-js folder: its demo page is served
	// at /demo/ and its built bundles at /sdk/, from the API's own origin.
	DemoSite string
	// Logger gets a line for each request refused before the service
	// (which logs its own calls).
	Logger *slog.Logger
	// CORSOrigins are the site origins whose pages may call the REST API.
	// Other origins get no CORS headers, so browsers keep them out.
	CORSOrigins []string
	// Console serves the privacy console at /console/ (server/console).
	Console bool
	// VendorList returns the IAB Global Vendor List in force (--gvl, as
	// served: narrowed to the policy's tcf.vendors), nil when there is none.
	// It is served at api.VendorListPath, public, for the SDK's TCF layer.
	VendorList func() []byte
	// Public makes this the public listener's handler (--public-addr): the
	// RPCs auth.Listeners puts on it, with a subject token or no credentials,
	// the vendor list, /.well-known/gpc.json, the demo site and CORS; every
	// other path, and any call with an API key, is 404. Health, metrics,
	// OpenAPI and the console are never served there.
	Public bool
	// AdminElsewhere leaves /healthz, /readyz and /metrics out: they are on
	// the admin listener (--admin-addr, Admin).
	AdminElsewhere bool
}

var setQueryParser sync.Once

// New returns the HTTP handler. conn is a connection to the gRPC server.
func New(ctx context.Context, conn *grpc.ClientConn, opts Options) (http.Handler, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	marshaler := compactJSON{&runtime.JSONPb{
		// snake_case names, as in the protos and the OpenAPI document, and
		// false/0 written out: "allowed": false must be visible.
		MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitDefaultValues: true},
		UnmarshalOptions: protojson.UnmarshalOptions{},
	}}
	errs := &errorWriter{marshaler: marshaler, logger: logger}
	muxOptions := []runtime.ServeMuxOption{
		runtime.WithMarshalerOption(runtime.MIMEWildcard, marshaler),
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		runtime.WithOutgoingHeaderMatcher(outgoingHeader),
		runtime.WithMetadata(func(context.Context, *http.Request) metadata.MD {
			if opts.Public {
				return metadata.Pairs(api.ChannelMetadataKey, "rest", auth.ListenerMetadataKey, auth.ListenerPublic)
			}
			return metadata.Pairs(api.ChannelMetadataKey, "rest")
		}),
		runtime.WithErrorHandler(errs.handle),
		// ETag and Cache-Control on the consent and the policy (etag.go).
		runtime.WithForwardResponseOption(setETag),
		// Without this a form-encoded POST (curl -d's default) to a GET-only
		// path is served as the GET: a wrong method must be an error.
		runtime.WithDisablePathLengthFallback(),
		runtime.WithRoutingErrorHandler(errs.routing),
	}
	if opts.Public {
		routes, err := restRoutes(openAPI)
		if err != nil {
			return nil, err
		}
		muxOptions = append(muxOptions, runtime.WithMiddlewares(publicOnly(routes, errs)))
		errs.publicRouting = true
	}
	// grpc-gateway keeps the query parser in a global: set once, before any
	// mux serves, so no request reads it while it is written.
	setQueryParser.Do(func() { muxOptions = append(muxOptions, runtime.SetQueryParameterParser(queryParser{})) })
	rest := runtime.NewServeMux(muxOptions...)
	errs.mux = rest
	if err := consentv1.RegisterConsentServiceHandler(ctx, rest, conn); err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	var restHandler http.Handler = corsFor(opts.CORSOrigins).Handler(http.MaxBytesHandler(errs.strictBody(conditional(rest)), MaxBodyBytes))
	if opts.Public {
		restHandler = publicPreflight(rest, restHandler, errs)
	}
	mux.Handle("/v1/", restHandler)
	if !opts.AdminElsewhere && !opts.Public {
		addAdmin(mux, opts)
	}
	if !opts.Public {
		// OpenAPI 2.0 (as generated, for existing users) and 3.0 (for today's
		// client generators), both with this build's version (openapi.go).
		openAPIv2, openAPIv3, err := openAPIDocs(openAPI, BuildVersion())
		if err != nil {
			return nil, err
		}
		for path, doc := range map[string][]byte{"/openapi.json": openAPIv2, "/openapi.v3.json": openAPIv3} {
			mux.HandleFunc("GET "+path, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write(doc)
			})
		}
	}
	// The vendor list: public and the same for everyone, like the policy
	// (CORS, ETag, revalidated before every use). More specific than "/v1/",
	// so this route, not the API's, serves it.
	mux.Handle("GET "+api.VendorListPath, corsFor(opts.CORSOrigins).Handler(conditional(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		if opts.VendorList != nil {
			body = opts.VendorList()
		}
		if body == nil {
			errs.write(w, r, http.StatusNotFound, status.New(codes.NotFound, "vendor list: none is configured (start consentd with --gvl)"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", policyCacheControl)
		w.Header().Set("ETag", bodyETag(body))
		_, _ = w.Write(body)
	}))))
	mux.HandleFunc("GET /.well-known/gpc.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(gpcWellKnown))
	})
	if opts.Console && !opts.Public {
		mux.Handle("GET "+console.Prefix, console.Handler())
		mux.Handle("GET "+strings.TrimSuffix(console.Prefix, "/"), console.Handler())
	}
	if opts.DemoSite != "" {
		mux.Handle("GET /demo/", http.StripPrefix("/demo/", http.FileServer(http.Dir(filepath.Join(opts.DemoSite, "demo")))))
		mux.Handle("GET /sdk/", http.StripPrefix("/sdk/", http.FileServer(http.Dir(filepath.Join(opts.DemoSite, "dist")))))
		mux.Handle("GET /{$}", http.RedirectHandler("/demo/", http.StatusFound))
	}
	return withRequestID(errs.unmatched(mux)), nil
}

// Admin returns the admin listener's handler (--admin-addr): /healthz,
// /readyz and /metrics (opts.Ready, Degraded, Metrics), and what extra adds
// (pprof). Plain HTTP for probes and scrapers, never client certificates.
func Admin(opts Options, extra func(*http.ServeMux)) http.Handler {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// The errors' shape needs a grpc-gateway mux; this one serves nothing.
	errs := &errorWriter{mux: runtime.NewServeMux(), marshaler: compactJSON{&runtime.JSONPb{}}, logger: logger}
	mux := http.NewServeMux()
	addAdmin(mux, opts)
	if extra != nil {
		extra(mux)
	}
	return withRequestID(errs.unmatched(mux))
}

// addAdmin serves health, readiness and metrics on mux.
func addAdmin(mux *http.ServeMux, opts Options) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := opts.Ready(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready\n"))
			return
		}
		if opts.Degraded != nil {
			if note := opts.Degraded(ctx); note != "" {
				_, _ = w.Write([]byte("ready, degraded: " + note + "\n"))
				return
			}
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Metrics, promhttp.HandlerOpts{}))
}

// compactJSON removes the whitespace protojson inserts at random (on
// purpose, so nobody depends on its exact bytes): responses are then the
// same for every build, and as small as they can be.
type compactJSON struct{ *runtime.JSONPb }

// NewDecoder reads a request body strictly (errors.go).
func (m compactJSON) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error { return m.decodeBody(r, v) })
}

func (m compactJSON) Marshal(v any) ([]byte, error) {
	b, err := m.JSONPb.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.Grow(len(b))
	if err := json.Compact(&out, b); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// corsFor allows the listed origins to call the API from their pages, with
// a bearer token (never cookies: AllowCredentials stays off), and to
// revalidate what they hold (If-None-Match, ETag: etag.go).
func corsFor(origins []string) *cors.Cors {
	return cors.New(cors.Options{
		AllowedOrigins: origins,
		AllowedMethods: []string{http.MethodGet, http.MethodPost, http.MethodPatch},
		AllowedHeaders: []string{"Authorization", "Content-Type", "X-Request-Id", "If-None-Match"},
		ExposedHeaders: []string{"X-Request-Id", "Retry-After", "ETag"},
		MaxAge:         600,
	})
}

// incomingHeader forwards the headers the service reads: Sec-GPC, the
// request id, platform client hints, W3C trace context (so a REST call's
// span continues the caller's trace), and grpc-gateway's defaults
// (Authorization, User-Agent and Grpc-Metadata-*).
func incomingHeader(key string) (string, bool) {
	switch strings.ToLower(key) {
	case "sec-gpc":
		return api.GPCMetadataKey, true
	case "sec-ch-ua-platform", "sec-ch-ua-mobile", // coarse client facts for the history
		"traceparent", "tracestate":
		return strings.ToLower(key), true
	case middleware.RequestIDKey:
		return middleware.RequestIDKey, true
	case api.ChannelMetadataKey, auth.ListenerMetadataKey,
		"grpc-metadata-" + api.ChannelMetadataKey, "grpc-metadata-" + auth.ListenerMetadataKey:
		return "", false // set by the gateway itself, never by the caller
	}
	return runtime.DefaultHeaderMatcher(key)
}

// outgoingHeader returns a rate limit's Retry-After and nothing else of the
// gRPC response metadata. The request id is the service's answer too, but
// withRequestID has set X-Request-Id already, before anything could fail.
func outgoingHeader(key string) (string, bool) {
	switch key {
	case "retry-after":
		return "Retry-After", true
	}
	return "", false
}
