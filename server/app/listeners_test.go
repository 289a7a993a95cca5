package app

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/auth"
	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/gateway"
	"github.com/consentd/consentd/server/internal/redistest"
)

// The route table (auth.Listeners) is complete: every RPC of the service is
// on a listener, the internal one at least; the public listener carries
// nothing an API key alone may call; and every RPC has a REST route the
// public listener's filter can recognise.
func TestEveryRPCHasAListener(t *testing.T) {
	routes, err := gateway.RESTRoutes()
	if err != nil {
		t.Fatal(err)
	}
	routed := map[string]bool{}
	for _, method := range routes {
		routed[method] = true
	}
	methods := consentv1.File_consent_v1_consent_proto.Services().ByName("ConsentService").Methods()
	inService := map[string]bool{}
	for i := range methods.Len() {
		full := "/consent.v1.ConsentService/" + string(methods.Get(i).Name())
		inService[full] = true
		on, ok := auth.Listeners[full]
		switch {
		case !ok || on == 0:
			t.Errorf("%s has no listener assignment in auth.Listeners", full)
		case on&auth.Internal == 0:
			t.Errorf("%s is not on the internal listener: the internal API is the whole API", full)
		}
		if rule := auth.Rules[full]; on&auth.Public != 0 && !rule.Public && !rule.Visitor {
			t.Errorf("%s is on the public listener, but only API keys may call it", full)
		}
		if !routed[full] {
			t.Errorf("%s has no REST route in the OpenAPI document the public filter reads", full)
		}
	}
	for full := range auth.Listeners {
		if !inService[full] {
			t.Errorf("auth.Listeners names %s, which the service does not have", full)
		}
	}
}

// The scene: mutual TLS on the internal listener, a browser (TLS,
// no client certificate) on the public one, probes and Prometheus on the
// admin one without a certificate.
func TestListenersByAudience(t *testing.T) {
	ca, dir := newTestCA(t), t.TempDir()
	serverCert, serverKey := ca.leaf(t, "consentd", x509.ExtKeyUsageServerAuth)
	clientCert, clientKey := ca.leaf(t, "checkout-service", x509.ExtKeyUsageClientAuth)
	const origin = "https://shop.example"
	cfg := testConfig(t, redistest.Start(t).URL())
	cfg.TLSCert = writeFile(t, dir, "server.pem", serverCert)
	cfg.TLSKey = writeFile(t, dir, "server-key.pem", serverKey)
	cfg.TLSClientCA = writeFile(t, dir, "ca.pem", ca.pem)
	cfg.PublicAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.CORSOrigins = []string{origin}
	logs := &syncBuffer{}
	a, err := New(cfg, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	runInBackground(t, a)

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.pem)
	pair, err := tls.X509KeyPair(clientCert, clientKey)
	if err != nil {
		t.Fatal(err)
	}
	service := &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}}
	browser := &tls.Config{RootCAs: roots} // no client certificate
	client := func(c *tls.Config) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: c}, Timeout: 5 * time.Second}
	}
	do := func(c *http.Client, method, url, body string, header ...string) (int, map[string]any, http.Header) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, url, rd)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var out map[string]any
		_ = json.Unmarshal(raw, &out)
		return resp.StatusCode, out, resp.Header
	}
	public := "https://" + a.PublicAddr()
	web := client(browser)

	t.Run("a browser on the public listener", func(t *testing.T) {
		code, _, h := do(web, "OPTIONS", public+"/v1/visitors", "", "Origin", origin,
			"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "content-type")
		if code >= 300 || h.Get("Access-Control-Allow-Origin") != origin {
			t.Fatalf("CORS preflight: %d %v", code, h)
		}
		code, body, h := do(web, "POST", public+"/v1/visitors", `{"region":"DE"}`, "Origin", origin, "Content-Type", "application/json")
		id, token := jsonPath(body, "subject_id"), jsonPath(body, "token.token")
		if code != 200 || !strings.HasPrefix(id, "v_") || h.Get("Access-Control-Allow-Origin") != origin {
			t.Fatalf("POST /v1/visitors: %d %v %v", code, body, h)
		}
		if code, body, _ := do(web, "GET", public+"/v1/policy", "", "Origin", origin); code != 200 || body["policy"] == nil {
			t.Fatalf("GET /v1/policy: %d %v", code, body)
		}
		bearer := "Bearer " + token
		code, body, _ = do(web, "PATCH", public+"/v1/subjects/"+id+"/consent",
			`{"decisions": {"analytics": true}, "region": "DE", "source": "SOURCE_BANNER"}`, "Authorization", bearer)
		if code != 200 || jsonPath(body, "consent.revision") != "1" {
			t.Fatalf("PATCH own consent: %d %v", code, body)
		}
		code, body, _ = do(web, "GET", public+"/v1/subjects/"+id+"/consent?region=DE", "", "Authorization", bearer)
		if code != 200 || jsonPath(body, "consent.revision") != "1" {
			t.Fatalf("GET own consent: %d %v", code, body)
		}
		if code, body, _ := do(web, "GET", public+"/v1/subjects/"+id+"/events", "", "Authorization", bearer); code != 200 {
			t.Fatalf("GET own events: %d %v", code, body)
		}
		if code, _, _ := do(web, "GET", public+"/.well-known/gpc.json", ""); code != 200 {
			t.Fatalf("GPC well-known file: %d", code)
		}
		// Another subject's record with this token: the access rules still apply.
		if code, _, _ := do(web, "GET", public+"/v1/subjects/v_someone-else/consent", "", "Authorization", bearer); code != 403 {
			t.Errorf("another subject's consent with a token: %d, want 403", code)
		}
		// The person's own erase works with their token.
		if code, body, _ := do(web, "POST", public+"/v1/subjects/"+id+":erase", `{}`, "Authorization", bearer); code != 200 {
			t.Errorf("erase own data with the token: %d %v", code, body)
		}
	})

	t.Run("the public listener has nothing for API keys or operators", func(t *testing.T) {
		for _, tc := range []struct{ method, path, body, credential string }{
			{"POST", "/v1/subjects/alice:erase", `{"reason":"request"}`, apiKeys["rights"]},
			{"POST", "/v1/subjects/alice:erase", `{"reason":"request"}`, apiKeys["admin"]},
			{"POST", "/v1/purposes/analytics:filterSubjects", `{"subject_ids":["alice"]}`, apiKeys["check"]},
			{"POST", "/v1/purposes/analytics:filterSubjects", `{"subject_ids":["alice"]}`, ""},
			{"GET", "/v1/subjects/alice/consent", "", apiKeys["read"]},
			{"GET", "/v1/subjects/alice/consent", "", "an-unknown-key-0123456789abcdefghijklmn"},
			{"GET", "/v1/policy", "", apiKeys["read"]},
			{"GET", "/v1/subjects/alice/purposes/analytics:check", "", apiKeys["check"]},
			{"POST", "/v1/subjects/alice:issueToken", `{}`, apiKeys["token"]},
			{"GET", "/v1/changes:watch", "", apiKeys["watch"]},
			{"GET", "/v1/caller", "", apiKeys["admin"]},
			{"GET", "/v1/stats", "", apiKeys["admin"]},
			{"GET", "/v1/visitors", "", ""}, // a public path with another method: 404, not 405
			{"GET", "/healthz", "", ""},
			{"GET", "/readyz", "", ""},
			{"GET", "/metrics", "", ""},
			{"GET", "/openapi.json", "", ""},
			{"GET", "/console/", "", ""},
			{"GET", "/debug/pprof/", "", ""},
		} {
			var header []string
			if tc.credential != "" {
				header = []string{"Authorization", "Bearer " + tc.credential}
			}
			if code, body, _ := do(web, tc.method, public+tc.path, tc.body, header...); code != 404 {
				t.Errorf("%s %s on the public listener (key %t): %d %v, want 404", tc.method, tc.path, tc.credential != "", code, body)
			}
		}
	})

	t.Run("CORS preflights only for the public routes", func(t *testing.T) {
		for _, tc := range []struct {
			method, path string
			served       bool
		}{
			{"POST", "/v1/visitors", true},
			{"PATCH", "/v1/subjects/v_1/consent", true},
			{"POST", "/v1/subjects/v_1:erase", true},
			{"POST", "/v1/purposes/analytics:filterSubjects", false},
			{"POST", "/v1/subjects/v_1:issueToken", false},
			{"DELETE", "/v1/subjects/v_1/consent", false},
			{"GET", "/v1/no-such-path", false},
		} {
			code, _, h := do(web, "OPTIONS", public+tc.path, "", "Origin", origin,
				"Access-Control-Request-Method", tc.method, "Access-Control-Request-Headers", "authorization")
			if served := code < 300 && h.Get("Access-Control-Allow-Origin") == origin; served != tc.served || (!tc.served && code != 404) {
				t.Errorf("preflight for %s %s: %d %v, want served %t (else 404)", tc.method, tc.path, code, h, tc.served)
			}
		}
	})

	t.Run("probes and metrics on the admin listener, without a certificate", func(t *testing.T) {
		admin := "http://" + a.AdminAddr()
		plain := &http.Client{Timeout: 5 * time.Second}
		for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
			if code, _, _ := do(plain, "GET", admin+path, ""); code != 200 {
				t.Errorf("GET %s on the admin listener: %d", path, code)
			}
		}
		for _, path := range []string{"/v1/policy", "/debug/pprof/", "/console/"} {
			if code, _, _ := do(plain, "GET", admin+path, ""); code != 404 {
				t.Errorf("GET %s on the admin listener: %d, want 404 (the API is not there; pprof is off)", path, code)
			}
		}
	})

	t.Run("the internal listener requires a client certificate", func(t *testing.T) {
		internal := "https://" + a.HTTPAddr()
		if resp, err := web.Get(internal + "/v1/policy"); err == nil {
			resp.Body.Close()
			t.Fatal("HTTPS without a client certificate was served on the internal listener")
		}
		svc := client(service)
		if code, _, _ := do(svc, "POST", internal+"/v1/purposes/analytics:filterSubjects", `{"subject_ids":["alice"]}`,
			"Authorization", "Bearer "+apiKeys["check"]); code != 200 {
			t.Errorf("filter with a client certificate and an API key: %d", code)
		}
		// Health and metrics moved to the admin listener.
		if code, _, _ := do(svc, "GET", internal+"/healthz", ""); code != 404 {
			t.Errorf("/healthz on the internal listener with --admin-addr: %d, want 404", code)
		}
		for _, c := range []*tls.Config{browser, service} {
			conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(c)), grpc.WithUnaryInterceptor(withCredentials))
			if err != nil {
				t.Fatal(err)
			}
			_, err = consentv1.NewConsentServiceClient(conn).GetPolicy(ctx(t), &consentv1.GetPolicyRequest{})
			conn.Close()
			if c == browser && status.Code(err) != codes.Unavailable {
				t.Errorf("gRPC without a client certificate: %v, want the handshake refused", err)
			}
			if c == service && err != nil {
				t.Errorf("gRPC with a client certificate: %v", err)
			}
		}
	})

	// The second guard, on its own: a call marked as the public listener's
	// is refused by the authenticator whatever path brought it, so a mistake
	// in the HTTP filter cannot widen the public listener.
	t.Run("the listener mark narrows a call in the interceptors", func(t *testing.T) {
		conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(service)), grpc.WithUnaryInterceptor(withCredentials))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		c := consentv1.NewConsentServiceClient(conn)
		marked := metadata.AppendToOutgoingContext(ctx(t), auth.ListenerMetadataKey, auth.ListenerPublic)
		_, err = c.FilterSubjects(marked, &consentv1.FilterSubjectsRequest{Purpose: "analytics", SubjectIds: []string{"alice"}})
		if status.Code(err) != codes.NotFound {
			t.Errorf("FilterSubjects marked public: %v, want NotFound", err)
		}
		_, err = c.GetPolicy(marked, &consentv1.GetPolicyRequest{}) // admin API key
		if status.Code(err) != codes.NotFound {
			t.Errorf("GetPolicy with an API key marked public: %v, want NotFound", err)
		}
		if _, err := c.GetPolicy(as(marked, ""), &consentv1.GetPolicyRequest{}); err != nil {
			t.Errorf("GetPolicy without credentials marked public: %v", err)
		}
	})

	// A caller cannot set the mark's header itself: the gateway drops it
	// (and the mark could only narrow anyway).
	t.Run("the mark is the gateway's", func(t *testing.T) {
		svc := client(service)
		code, _, _ := do(svc, "GET", "https://"+a.HTTPAddr()+"/v1/policy", "", "Authorization", "Bearer "+apiKeys["read"],
			"Grpc-Metadata-"+auth.ListenerMetadataKey, auth.ListenerPublic)
		if code != 200 {
			t.Errorf("internal REST call with a forged listener header: %d, want it served as internal", code)
		}
	})
}

// Left empty, the new settings change nothing: the internal HTTP listener
// serves health, metrics and the public routes as before.
func TestWithoutPublicAndAdminAddrsEverythingStaysOnTheHTTPListener(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	if srv.app.PublicAddr() != "" || srv.app.AdminAddr() != "" {
		t.Fatalf("public %q, admin %q: want both off", srv.app.PublicAddr(), srv.app.AdminAddr())
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/v1/policy", "/.well-known/gpc.json", "/openapi.json"} {
		if code, _, _ := srv.restRaw(t, "GET", path, ""); code != 200 {
			t.Errorf("GET %s: %d", path, code)
		}
	}
}

// --pprof serves the profiles on the admin listener.
func TestPprofOnTheAdminListener(t *testing.T) {
	srv := start(t, redistest.Start(t).URL(), func(c *config.Config) { c.AdminAddr, c.Pprof = "127.0.0.1:0", true })
	resp, err := http.Get("http://" + srv.app.AdminAddr() + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/debug/pprof/cmdline on the admin listener: %d", resp.StatusCode)
	}
}

// Every REST route, from the same table: on the public listener the public
// ones reach the service (which answers as the access rules say) and every
// other one is 404 before the service, with or without credentials.
func TestPublicListenerServesExactlyThePublicRoutes(t *testing.T) {
	srv := start(t, redistest.Start(t).URL(), func(c *config.Config) { c.PublicAddr = "127.0.0.1:0" })
	routes, err := gateway.RESTRoutes()
	if err != nil {
		t.Fatal(err)
	}
	public := &consentd{baseURL: "http://" + srv.app.PublicAddr()}
	param := regexp.MustCompile(`\{[^}]+\}`)
	for route, method := range routes {
		httpMethod, path, _ := strings.Cut(route, " ")
		path = param.ReplaceAllString(path, "alice")
		body := ""
		if httpMethod != "GET" && httpMethod != "DELETE" {
			body = "{}"
		}
		for _, credential := range []string{"", "Bearer " + apiKeys["admin"]} {
			code, raw, _ := public.restRaw(t, httpMethod, path, body, "Authorization", credential)
			want404 := !auth.OnPublic(method) || credential != ""
			if (code == 404) != want404 {
				t.Errorf("%s %s (%s) on the public listener, API key %t: %d %s; want 404: %t", httpMethod, path, method, credential != "", code, raw, want404)
			}
		}
	}
}

// The console stays with the API it calls (same origin, API keys): on the
// internal listener, whatever the other listeners do; the demo site moves
// to the public listener.
func TestTheConsoleStaysOnTheInternalListener(t *testing.T) {
	sdk := t.TempDir()
	mkdir(t, sdk, "demo")
	srv := start(t, redistest.Start(t).URL(), func(c *config.Config) {
		c.PublicAddr, c.AdminAddr, c.Console = "127.0.0.1:0", "127.0.0.1:0", true
		c.Demo, c.DemoSite = true, sdk
	})
	public := &consentd{baseURL: "http://" + srv.app.PublicAddr()}
	admin := &consentd{baseURL: "http://" + srv.app.AdminAddr()}
	for _, tc := range []struct {
		on   *consentd
		name string
		path string
		want int
	}{
		{srv, "internal", "/console/", 200},
		{srv, "internal", "/v1/caller", 200},
		{public, "public", "/console/", 404},
		{admin, "admin", "/console/", 404},
		{public, "public", "/demo/", 200},
		{srv, "internal", "/demo/", 404},
		{srv, "internal", "/readyz", 404},
		{admin, "admin", "/readyz", 200},
	} {
		if code, _, _ := tc.on.restRaw(t, "GET", tc.path, ""); code != tc.want {
			t.Errorf("GET %s on the %s listener: %d, want %d", tc.path, tc.name, code, tc.want)
		}
	}
}
