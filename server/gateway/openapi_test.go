package gateway

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/consentd/consentd/server/auth"
)

type openAPIOperation struct {
	OperationID string                 `json:"operationId"`
	Security    *[]map[string][]string `json:"security"`
	Responses   map[string]struct {
		Schema struct {
			Ref string `json:"$ref"`
		} `json:"schema"`
	} `json:"responses"`
}

type openAPIv2Doc struct {
	Swagger string `json:"swagger"`
	Info    struct {
		Title, Version, Description string
	} `json:"info"`
	SecurityDefinitions map[string]struct {
		Type, Name, In string
	} `json:"securityDefinitions"`
	Security    []map[string][]string                  `json:"security"`
	Paths       map[string]map[string]openAPIOperation `json:"paths"`
	Definitions map[string]json.RawMessage             `json:"definitions"`
}

func servedDocs(t *testing.T, version string) (openAPIv2Doc, map[string]any) {
	t.Helper()
	v2, v3, err := openAPIDocs(openAPI, version)
	if err != nil {
		t.Fatal(err)
	}
	var d2 openAPIv2Doc
	if err := json.Unmarshal(v2, &d2); err != nil {
		t.Fatal(err)
	}
	var d3 map[string]any
	if err := json.Unmarshal(v3, &d3); err != nil {
		t.Fatal(err)
	}
	return d2, d3
}

// Security follows server/auth/rules.go: the public RPCs need nothing, every
// other one the bearer credential, and every RPC of the rules is documented.
func TestOpenAPISecurityFollowsTheAccessRules(t *testing.T) {
	doc, _ := servedDocs(t, "test")
	if def := doc.SecurityDefinitions["bearer"]; def.Type != "apiKey" || def.In != "header" || def.Name != "Authorization" {
		t.Fatalf("securityDefinitions.bearer = %+v, want an apiKey in the Authorization header", def)
	}
	if len(doc.Security) != 1 || doc.Security[0]["bearer"] == nil {
		t.Fatalf("global security = %v, want [{bearer: []}]", doc.Security)
	}
	seen := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			rpc := "/consent.v1.ConsentService/" + strings.TrimPrefix(op.OperationID, "ConsentService_")
			rule, ok := auth.Rules[rpc]
			if !ok {
				t.Errorf("%s %s: %s has no access rule", method, path, rpc)
				continue
			}
			seen[rpc] = true
			public := op.Security != nil && len(*op.Security) == 0
			if public != rule.Public {
				t.Errorf("%s (%s %s): documented public=%v, rules.go says %v", rpc, method, path, public, rule.Public)
			}
			_, has401 := op.Responses["401"]
			_, has403 := op.Responses["403"]
			if has401 == rule.Public || has403 == rule.Public {
				t.Errorf("%s: 401 documented %v, 403 %v; public %v", rpc, has401, has403, rule.Public)
			}
		}
	}
	for rpc := range auth.Rules {
		if !seen[rpc] {
			t.Errorf("%s is in rules.go but not in the OpenAPI document", rpc)
		}
	}
}

// Every operation documents its errors (a 4xx at least, 429 and 503), each
// with the error schema: google.rpc.Status, or for the watch stream the
// stream's line, which is how the gateway writes a stream's error.
func TestOpenAPIDocumentsErrorResponses(t *testing.T) {
	doc, _ := servedDocs(t, "test")
	if _, ok := doc.Definitions[streamLine]; !ok {
		t.Fatalf("no %s definition", streamLine)
	}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			want := "#/definitions/rpcStatus"
			if path == watchPath {
				want = "#/definitions/" + streamLine
			}
			for _, code := range []string{"400", "429", "503", "default"} {
				if _, ok := op.Responses[code]; !ok {
					t.Errorf("%s %s: no %s response", method, path, code)
				}
			}
			for code, r := range op.Responses {
				if code == "200" && path != watchPath {
					continue
				}
				if r.Schema.Ref != want {
					t.Errorf("%s %s: response %s has schema %q, want %q", method, path, code, r.Schema.Ref, want)
				}
			}
		}
	}
}

// The served documents carry the build's version; the generated one says
// what the API is.
func TestOpenAPIInfo(t *testing.T) {
	doc, d3 := servedDocs(t, "1.2.3-test")
	if doc.Info.Version != "1.2.3-test" || dig(d3, "info", "version") != "1.2.3-test" {
		t.Errorf("info.version: 2.0 %q, 3.0 %v; want the version given", doc.Info.Version, dig(d3, "info", "version"))
	}
	if doc.Info.Title != "consentd API" || !strings.Contains(doc.Info.Description, "Bearer") {
		t.Errorf("info = %+v", doc.Info)
	}
	if v := BuildVersion(); v == "" || v == "(devel)" {
		t.Errorf("BuildVersion() = %q", v)
	}
	Version = "9.9.9"
	defer func() { Version = "" }()
	if v := BuildVersion(); v != "9.9.9" {
		t.Errorf("with Version set, BuildVersion() = %q", v)
	}
}

// The 3.0 document declares an HTTP bearer scheme, which 2.0 cannot.
func TestOpenAPIv3BearerScheme(t *testing.T) {
	_, d3 := servedDocs(t, "test")
	if v, _ := d3["openapi"].(string); !strings.HasPrefix(v, "3.0") {
		t.Fatalf("openapi = %v", d3["openapi"])
	}
	if s := dig(d3, "components", "securitySchemes", "bearer", "scheme"); s != "bearer" {
		t.Errorf("bearer scheme = %v", dig(d3, "components", "securitySchemes", "bearer"))
	}
	if s := dig(d3, "components", "schemas", streamLine, "properties", "error", "$ref"); s != "#/components/schemas/rpcStatus" {
		t.Errorf("stream line's error = %v", s)
	}
}

// Both documents are served, with the build's version.
func TestOpenAPIServed(t *testing.T) {
	conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h, err := New(t.Context(), conn, Options{Metrics: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	for path, key := range map[string]string{"/openapi.json": "swagger", "/openapi.v3.json": "openapi"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		var doc map[string]any
		if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &doc) != nil || doc[key] == nil {
			t.Errorf("GET %s: %d %.100s", path, rec.Code, rec.Body.String())
			continue
		}
		if v := dig(doc, "info", "version"); v != BuildVersion() {
			t.Errorf("GET %s: info.version %v, want %q", path, v, BuildVersion())
		}
	}
}
