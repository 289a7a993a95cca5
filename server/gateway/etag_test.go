package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
)

func purposes(pairs ...any) []*consentv1.PurposeConsent {
	var out []*consentv1.PurposeConsent
	for i := 0; i < len(pairs); i += 3 {
		out = append(out, &consentv1.PurposeConsent{Purpose: pairs[i].(string), Allowed: pairs[i+1].(bool), Reason: pairs[i+2].(consentv1.Reason)})
	}
	return out
}

func TestConsentETagIsTheSDKCookiesCompactForm(t *testing.T) {
	const (
		allowed, denied = true, false
	)
	r := func(name string) consentv1.Reason { return consentv1.Reason(consentv1.Reason_value["REASON_"+name]) }
	cases := []struct {
		name    string
		consent *consentv1.Consent
		want    string
	}{
		{"the SDK's example", &consentv1.Consent{Revision: 3, Purposes: purposes(
			"necessary", allowed, r("NECESSARY"), "functional", denied, r("EXPLICIT"), "analytics", allowed, r("EXPLICIT"), "ads", denied, r("GPC"))},
			`"3|necessary:N/functional:e/analytics:E/ads:g"`},
		{"every reason has its letter, upper case when allowed", &consentv1.Consent{Revision: 12, Purposes: purposes(
			"a", allowed, r("EXPLICIT"), "b", denied, r("DEFAULT"), "c", denied, r("GPC"), "d", allowed, r("EXPIRED"),
			"e", denied, r("POLICY_CHANGED"), "f", allowed, r("NECESSARY"), "g", denied, r("RESTRICTED"), "h", denied, r("AWAITING_GUARDIAN"))},
			`"12|a:E/b:d/c:g/d:X/e:p/f:N/g:r/h:a"`},
		{"purposes keep the answer's order, dotted ids included", &consentv1.Consent{Purposes: purposes(
			"marketing.email", denied, r("DEFAULT"), "ads", allowed, r("DEFAULT"))},
			`"0|marketing.email:d/ads:D"`},
		{"an answer without purposes", &consentv1.Consent{Revision: 1}, `"1|"`},
		{"a reason without a letter gets no ETag", &consentv1.Consent{Revision: 1, Purposes: purposes(
			"ads", denied, r("STORE_UNAVAILABLE"))}, ""},
		{"an unset reason gets no ETag", &consentv1.Consent{Revision: 1, Purposes: purposes("ads", denied, consentv1.Reason_REASON_UNSPECIFIED)}, ""},
		{"a purpose id the form cannot hold gets no ETag", &consentv1.Consent{Revision: 1, Purposes: purposes(`a"b`, denied, r("DEFAULT"))}, ""},
		{"a linked visitor's answer gets no ETag: its user's revision can equal its own", &consentv1.Consent{Revision: 1, Linked: true, Purposes: purposes(
			"ads", denied, r("DEFAULT"))}, ""},
		{"no answer gets no ETag", nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := consentETag(tc.consent); got != tc.want {
				t.Errorf("consentETag = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestIfNoneMatchComparesOpaqueTagsAndMissesOnAnythingMalformed(t *testing.T) {
	const etag = `"3|necessary:N/ads:g"`
	cases := []struct {
		name  string
		value string
		want  bool
	}{
		{"the same tag", `"3|necessary:N/ads:g"`, true},
		{"another tag", `"4|necessary:N/ads:g"`, false},
		{"a list holding it", `"1|x:e", "3|necessary:N/ads:g" ,"9|y:E"`, true},
		{"a list without it", `"1|x:e", "2|y:E"`, false},
		{"the weak form of it (weak comparison, RFC 9110 13.1.2)", `W/"3|necessary:N/ads:g"`, true},
		{"any representation", `*`, true},
		{"any representation, with spaces", ` * `, true},
		{"an empty tag", `""`, false},
		{"unquoted", `3|necessary:N/ads:g`, false},
		{"unterminated", `"3|necessary:N/ads:g`, false},
		{"two tags without a comma", `"1|x:e" "3|necessary:N/ads:g"`, false},
		{"a star in a list", `*, "3|necessary:N/ads:g"`, false},
		{"a malformed element after a match", `"3|necessary:N/ads:g", junk`, false},
		{"a space inside the tag", `"3|necessary:N/ ads:g"`, false},
		{"a lower-case weak prefix", `w/"3|necessary:N/ads:g"`, false},
		{"a weak prefix alone", `W/`, false},
		{"a weak prefix alone after a match", `"3|necessary:N/ads:g", W/`, false},
		{"a quote alone", `"`, false},
		{"only commas", ` , ,`, false},
		{"empty", ``, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := noneMatchHits(tc.value, etag); got != tc.want {
				t.Errorf("noneMatchHits(%q) = %v, want %v", tc.value, got, tc.want)
			}
		})
	}
}

// serve runs handler behind conditional, as the gateway does, for a request
// with the given method and If-None-Match ("" for none).
func serve(handler http.HandlerFunc, method, ifNoneMatch string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "/v1/anything", nil)
	if ifNoneMatch != "" {
		req.Header.Set("If-None-Match", ifNoneMatch)
	}
	rec := httptest.NewRecorder()
	conditional(handler).ServeHTTP(rec, req)
	return rec
}

// forward answers as grpc-gateway's ForwardResponseMessage does: server
// metadata as headers, the forward-response option, the body in chunks.
func forward(m proto.Message, chunks ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "req-1")
		w.Header().Set("Content-Type", "application/json")
		_ = setETag(r.Context(), w, m)
		for _, c := range chunks {
			_, _ = w.Write([]byte(c))
		}
	}
}

func TestThePolicysETagIsItsBodysHash(t *testing.T) {
	policy := &consentv1.GetPolicyResponse{Policy: &consentv1.Policy{Version: "v1"}}
	body := `{"policy":{"version":"v1","purposes":[{"id":"ads","titles":{"en":"Ads"}}]}}`
	rec := serve(forward(policy, body[:20], body[20:]), http.MethodGet, "")
	etag := rec.Header().Get("ETag")
	if rec.Code != 200 || rec.Body.String() != body || etag != bodyETag([]byte(body)) || len(etag) != 34 {
		t.Fatalf("GET: %d %q, ETag %s; want 200 with the body and its hash", rec.Code, rec.Body, etag)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("Cache-Control %q, want no-cache", cc)
	}
	rec = serve(forward(policy, body), http.MethodGet, etag)
	if rec.Code != http.StatusNotModified || rec.Body.Len() != 0 || rec.Header().Get("ETag") != etag ||
		rec.Header().Get("X-Request-Id") != "req-1" || rec.Header().Get("Content-Type") != "" {
		t.Fatalf("GET with its ETag: %d %q, headers %v; want 304 without a body", rec.Code, rec.Body, rec.Header())
	}
	changed := strings.Replace(body, "Ads", "Adverts", 1)
	rec = serve(forward(policy, changed), http.MethodGet, etag)
	if rec.Code != 200 || rec.Body.String() != changed || rec.Header().Get("ETag") == etag {
		t.Fatalf("another policy with the first one's ETag: %d %q, ETag %s; want 200 with a new one", rec.Code, rec.Body, rec.Header().Get("ETag"))
	}
}

func TestConditionalTurnsOnlyAMatchingGETInto304(t *testing.T) {
	consent := &consentv1.GetConsentResponse{Consent: &consentv1.Consent{Revision: 2, Purposes: purposes("ads", true, consentv1.Reason_REASON_EXPLICIT)}}
	const etag, body = `"2|ads:E"`, `{"consent":{}}`
	for _, tc := range []struct {
		name, method, ifNoneMatch string
		want                      int
	}{
		{"a GET without If-None-Match", http.MethodGet, "", 200},
		{"a GET with the ETag", http.MethodGet, etag, 304},
		{"a GET with another ETag", http.MethodGet, `"1|ads:e"`, 200},
		{"a GET with a malformed If-None-Match", http.MethodGet, `"2|ads:E`, 200},
		{"a PATCH with the ETag", http.MethodPatch, etag, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := serve(forward(consent, body), tc.method, tc.ifNoneMatch)
			if rec.Code != tc.want || rec.Header().Get("ETag") != etag || rec.Header().Get("Cache-Control") != "private, no-cache" {
				t.Fatalf("%d, headers %v; want %d with ETag %s", rec.Code, rec.Header(), tc.want, etag)
			}
			if wantBody := map[int]string{200: body, 304: ""}[tc.want]; rec.Body.String() != wantBody {
				t.Errorf("body %q, want %q", rec.Body, wantBody)
			}
		})
	}
	// An error keeps its status whatever If-None-Match says.
	rec := serve(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("ETag", etag)
		w.WriteHeader(http.StatusPreconditionFailed)
		_, _ = w.Write([]byte(`{"code":9}`))
	}, http.MethodGet, "*")
	if rec.Code != http.StatusPreconditionFailed || rec.Body.String() != `{"code":9}` {
		t.Errorf("an error with If-None-Match: *: %d %q", rec.Code, rec.Body)
	}
	// A stream (the change feed) still streams.
	rec = serve(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("{}\n"))
		w.(http.Flusher).Flush()
	}, http.MethodGet, "*")
	if rec.Code != 200 || !rec.Flushed || rec.Body.String() != "{}\n" {
		t.Errorf("a flushed stream: %d %q flushed %v", rec.Code, rec.Body, rec.Flushed)
	}
}
