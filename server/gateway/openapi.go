package gateway

import (
	"encoding/json"
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
)

// Version is the version the OpenAPI documents' info.version shows. A
// release build sets it with
//
//	-ldflags "-X github.com/consentd/consentd/server/gateway.Version=1.2.0"
//
// Without it, the version Go stamped into the binary is used (a module
// version, or a pseudo-version from the git commit it was built from), and
// "dev" when there is none: "dev+<commit>" when Go recorded the commit
// (".dirty" with uncommitted changes), plain "dev" outside a git checkout.
var Version = ""

// BuildVersion is the version the served documents carry (see Version).
func BuildVersion() string {
	if Version != "" {
		return Version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	// A build from a checkout Go did not give a version: its commit.
	version := "dev"
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision" && len(s.Value) >= 12:
			version = "dev+" + s.Value[:12] + strings.TrimPrefix(version, "dev")
		case s.Key == "vcs.modified" && s.Value == "true":
			version += ".dirty"
		}
	}
	return version
}

// streamLine is the schema of one line of the watch stream, a definition of
// its own so the stream's error answers can name it.
const streamLine = "v1WatchConsentChangesStreamLine"

const watchPath = "/v1/changes:watch"

// openAPIDocs returns the OpenAPI 2.0 document (/openapi.json) and its
// OpenAPI 3.0 conversion (/openapi.v3.json) for a version. Both start from
// what protoc-gen-openapiv2 generated from the protos and
// proto/consent/v1/openapi.yaml; this adds what its configuration cannot say:
//   - info.version, which is the build's, not the source's;
//   - the watch stream's line ({"result": …} or {"error": Status}) as a named
//     definition, and its error answers pointed at it: the gateway writes a
//     stream's error as such a line, with the status's HTTP code when no line
//     was sent yet, never as a bare Status (the plugin cannot add definitions
//     or inline object schemas to a response);
//   - in 3.0, an HTTP bearer scheme for the Authorization header, which
//     OpenAPI 2.0 cannot declare (it has only an API key in a header), and
//     the server: the origin the document is served from.
func openAPIDocs(generated []byte, version string) (v2, v3 []byte, err error) {
	var doc map[string]any
	if err := json.Unmarshal(generated, &doc); err != nil {
		return nil, nil, fmt.Errorf("openapi: %w", err)
	}
	info, _ := doc["info"].(map[string]any)
	if info == nil {
		return nil, nil, fmt.Errorf("openapi: no info")
	}
	info["version"] = version

	watch, _ := dig(doc, "paths", watchPath, "get", "responses").(map[string]any)
	line, _ := dig(watch, "200", "schema").(map[string]any)
	defs, _ := doc["definitions"].(map[string]any)
	if watch == nil || line == nil || defs == nil {
		return nil, nil, fmt.Errorf("openapi: no schema for the lines of %s", watchPath)
	}
	line["title"] = "One line of the watch stream: a result, or the error that ended the stream."
	defs[streamLine] = line
	for code, r := range watch {
		if resp, ok := r.(map[string]any); ok && resp["schema"] != nil {
			resp["schema"] = map[string]any{"$ref": "#/definitions/" + streamLine}
			if code != "200" {
				resp["description"] = fmt.Sprint(resp["description"], ` The body is a stream line, {"error": google.rpc.Status}.`)
			}
		}
	}
	if v2, err = json.MarshalIndent(doc, "", "  "); err != nil {
		return nil, nil, err
	}

	var d2 openapi2.T
	if err := json.Unmarshal(v2, &d2); err != nil {
		return nil, nil, fmt.Errorf("openapi: reading 2.0: %w", err)
	}
	d3, err := openapi2conv.ToV3(&d2)
	if err != nil {
		return nil, nil, fmt.Errorf("openapi: converting to 3.0: %w", err)
	}
	bearer := d3.Components.SecuritySchemes["bearer"]
	if bearer == nil || bearer.Value == nil {
		return nil, nil, fmt.Errorf("openapi: no bearer security scheme")
	}
	bearer.Value = &openapi3.SecurityScheme{
		Type:        "http",
		Scheme:      "bearer",
		Description: "An API key (a backend) or a subject token (a visitor, from CreateVisitor or IssueSubjectToken).",
	}
	// Relative to the document: the consentd that serves it serves the API.
	d3.Servers = openapi3.Servers{{URL: "/", Description: "the consentd serving this document"}}
	if v3, err = json.MarshalIndent(d3, "", "  "); err != nil {
		return nil, nil, err
	}
	return append(v2, '\n'), append(v3, '\n'), nil
}

func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}
