package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/auth"
)

// restRoutes maps each REST route, "METHOD /path/{template}", to the RPC it
// calls ("/consent.v1.ConsentService/Name"), read from the generated OpenAPI
// document: the same proto/consent/v1/gateway.yaml generates it and the
// gateway's handlers, so the two cannot disagree (a test checks every RPC
// has its route).
func restRoutes(doc []byte) (map[string]string, error) {
	var d struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("openapi document: %w", err)
	}
	service := consentv1.ConsentService_ServiceDesc.ServiceName
	routes := map[string]string{}
	for path, ops := range d.Paths {
		for method, op := range ops {
			name, ok := strings.CutPrefix(op.OperationID, "ConsentService_")
			if !ok {
				return nil, fmt.Errorf("openapi document: %s %s: operation %q is not the ConsentService's", method, path, op.OperationID)
			}
			routes[strings.ToUpper(method)+" "+path] = "/" + service + "/" + name
		}
	}
	return routes, nil
}

// RESTRoutes is restRoutes of the served API, for tests.
func RESTRoutes() (map[string]string, error) { return restRoutes(openAPI) }

// patternVar is a path variable as runtime.Pattern prints it, {name=*}.
var patternVar = regexp.MustCompile(`\{([^=}]+)=\*\}`)

// publicOnly is the public listener's route filter, the first of its two
// guards (the authenticator's listener mark is the second): a REST call is
// served only if the RPC its route calls is on the public listener
// (auth.Listeners) and it carries no API key. Anything else is 404, as if
// the path did not exist, before the body is read.
func publicOnly(routes map[string]string, errs *errorWriter) runtime.Middleware {
	notFound := func(w http.ResponseWriter, r *http.Request) {
		errs.write(w, r, http.StatusNotFound, status.New(codes.NotFound, "path: no such path in the API"))
	}
	return func(next runtime.HandlerFunc) runtime.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
			pattern, ok := runtime.HTTPPattern(r.Context())
			if !ok {
				notFound(w, r)
				return
			}
			method := routes[r.Method+" "+patternVar.ReplaceAllString(pattern.String(), "{$1}")]
			allowed := auth.OnPublic(method) && !carriesAPIKey(r)
			if served, probing := r.Context().Value(probeKey{}).(*bool); probing {
				*served = allowed
				return
			}
			if !allowed {
				notFound(w, r)
				return
			}
			next(w, r, params)
		}
	}
}

// carriesAPIKey: an Authorization header whose credential is not a subject
// token. API keys work on the internal listener only.
func carriesAPIKey(r *http.Request) bool {
	for _, v := range r.Header.Values("Authorization") {
		_, credential, _ := strings.Cut(strings.TrimSpace(v), " ")
		if credential = strings.TrimSpace(credential); credential != "" && !auth.LooksLikeToken(credential) {
			return true
		}
	}
	return false
}

// probeKey marks publicPreflight's probe: the route filter says whether it
// would serve the request, and nothing is called or written.
type probeKey struct{}

// publicPreflight answers a CORS preflight on the public listener only for
// a route the public listener serves, 404 otherwise, like the request it
// announces: the CORS handler would answer any path. It asks the route
// filter itself (publicOnly), with the announced method, so the answer
// comes from the same table.
func publicPreflight(rest http.Handler, next http.Handler, errs *errorWriter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			served := false
			probe := r.Clone(context.WithValue(r.Context(), probeKey{}, &served))
			probe.Method, probe.Body, probe.ContentLength = r.Header.Get("Access-Control-Request-Method"), http.NoBody, 0
			rest.ServeHTTP(discard{header: http.Header{}}, probe)
			if !served {
				errs.write(w, r, http.StatusNotFound, status.New(codes.NotFound, "path: no such path in the API"))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// discard is a ResponseWriter that keeps nothing: the probe's.
type discard struct{ header http.Header }

func (d discard) Header() http.Header         { return d.header }
func (d discard) Write(p []byte) (int, error) { return len(p), nil }
func (d discard) WriteHeader(int)             {}

// probing says whether r is publicPreflight's probe.
func probing(r *http.Request) bool {
	_, ok := r.Context().Value(probeKey{}).(*bool)
	return ok
}
