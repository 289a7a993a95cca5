package app

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/grpclog"

	"github.com/consentd/consentd/server/gateway"
	"github.com/consentd/consentd/server/internal/redistest"
)

// The subject the error paths below name: it must never reach a log line.
const contractSubject = "subject-contract-3f9a2c"

// errorCase is a request that must fail before it changes anything, and
// the answer it must get.
type errorCase struct {
	name, method, path, body string
	header                   []string
	status                   int
	code                     float64 // the gRPC code in the body
	message                  string  // the body's message, exactly
}

func errorCases() []errorCase {
	consent := "/v1/subjects/" + contractSubject + "/consent"
	return []errorCase{
		// Strict bodies: one JSON value, nothing after it.
		{"trailing data", "PATCH", consent, `{"decisions":{"analytics":true}} xyz`, nil,
			400, 3, "body: must be one JSON value with nothing after it"},
		{"two objects", "PATCH", consent, `{"decisions":{"analytics":true}}{"decisions":{"ads":true}}`, nil,
			400, 3, "body: must be one JSON value with nothing after it"},
		{"trailing data on erase", "POST", "/v1/subjects/" + contractSubject + ":erase", `{"reason":"T-1"} {"reason":"T-2"}`, nil,
			400, 3, "body: must be one JSON value with nothing after it"},
		{"trailing data on batchCheck", "POST", "/v1/consent:batchCheck", `{"checks":[{"subject_id":"` + contractSubject + `","purpose":"ads"}]} []`, nil,
			400, 3, "body: must be one JSON value with nothing after it"},
		{"a body on a GET", "GET", consent, `{"decisions":{"analytics":true}}`, nil,
			400, 3, "body: GET takes no body: send its parameters in the path and query"},
		{"not JSON", "PATCH", consent, `{"decisions":`, nil,
			400, 3, "body: not valid JSON: it ends too early"},
		{"a syntax error", "PATCH", consent, "{\n  \"decisions\" {}}", nil,
			400, 3, "body: not valid JSON (line 2, column 15)"},
		{"not an object", "PATCH", consent, `[1]`, nil,
			400, 3, "body: must be a JSON object"},
		// Field names as the API's JSON spells them, and what they must be.
		{"a map value of the wrong type", "PATCH", consent, `{"decisions":{"analytics":"yes"}}`, nil,
			400, 3, "decisions.analytics: must be true or false"},
		{"an integer of the wrong type", "PATCH", consent, `{"decisions":{},"expected_revision":"abc"}`, nil,
			400, 3, "expected_revision: must be an integer"},
		{"a map given as a list", "PATCH", consent, `{"decisions":[true]}`, nil,
			400, 3, "decisions: must be an object of true or false values"},
		{"an unknown enum value", "PATCH", consent, `{"decisions":{},"source":"fax"}`, nil,
			400, 3, `source: must be one of "SOURCE_UNSPECIFIED", "SOURCE_BANNER", "SOURCE_PREFERENCE_CENTER", "SOURCE_API", "SOURCE_GPC", "SOURCE_IMPORT", "SOURCE_LINK"`},
		{"a list element of the wrong type", "POST", "/v1/purposes/ads:filterSubjects", `{"subject_ids":["` + contractSubject + `",2]}`, nil,
			400, 3, "subject_ids[1]: must be a string"},
		{"an unknown field", "PATCH", consent, `{"decisions":{},"decision":{}}`, nil,
			400, 3, "decision: unknown field"},
		{"a field given twice", "PATCH", consent, `{"region":"DE","region":"FR"}`, nil,
			400, 3, "region: given twice"},
		{"a bad query integer", "GET", "/v1/subjects/" + contractSubject + "/purposes/ads:check?min_revision=abc", "", nil,
			400, 3, "min_revision: must be an integer"},
		{"a bad query boolean", "GET", "/v1/changes:watch?from_oldest=yes", "", nil,
			400, 3, "from_oldest: must be true or false"},
		// The status says what went wrong.
		{"too large", "PATCH", consent, `{"region":"` + strings.Repeat("x", gateway.MaxBodyBytes) + `"}`, nil,
			413, 8, fmt.Sprintf("body: larger than the limit of %d bytes", gateway.MaxBodyBytes)},
		{"not JSON by its Content-Type", "PATCH", consent, `<decisions/>`, []string{"Content-Type", "application/xml"},
			415, 3, "Content-Type: must be application/json (or none: the body is read as JSON)"},
		{"no such API path", "GET", "/v1/subjects/" + contractSubject + "/nothing", "", nil,
			404, 5, "path: no such path in the API"},
		{"no such path", "GET", "/nothing", "", nil,
			404, 5, "path: no such path in the API"},
		{"a method the API path lacks", "PUT", "/v1/policy", `{}`, nil,
			405, 12, "method: PUT is not allowed on this path"},
		{"a method the path lacks", "POST", "/healthz", "", nil,
			405, 12, "method: POST is not allowed on this path"},
	}
}

func TestEveryErrorHasOneShapeAStatusARequestIDAndALogLine(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	for _, tc := range errorCases() {
		code, raw, header := srv.restRaw(t, tc.method, tc.path, tc.body, tc.header...)
		var body map[string]any
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Errorf("%s: %d %q is not JSON", tc.name, code, raw)
			continue
		}
		if code != tc.status || body["code"] != tc.code || body["message"] != tc.message {
			t.Errorf("%s: %d %s\nwant %d {\"code\":%v,\"message\":%q}", tc.name, code, raw, tc.status, tc.code, tc.message)
		}
		id := header.Get("X-Request-Id")
		if id == "" || len(header.Values("X-Request-Id")) != 1 {
			t.Errorf("%s: X-Request-Id = %q; want one id", tc.name, header.Values("X-Request-Id"))
		} else if !strings.Contains(srv.logs.String(), `"request_id":"`+id+`"`) {
			t.Errorf("%s: no log line names request %s", tc.name, id)
		}
	}
	// Nothing of the refused bodies was stored.
	code, body, _ := srv.rest(t, "GET", "/v1/subjects/"+contractSubject+"/consent", "")
	if code != 200 || jsonPath(body, "consent.revision") != "0" {
		t.Errorf("after the refused writes: %d %v; want nothing stored", code, body)
	}
}

func TestACallerRequestIDIsKeptOnErrorsBeforeTheService(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	_, _, header := srv.restRaw(t, "PATCH", "/v1/subjects/"+contractSubject+"/consent", `{} {}`, "X-Request-Id", "caller-id-1")
	if got := header.Values("X-Request-Id"); len(got) != 1 || got[0] != "caller-id-1" {
		t.Errorf("X-Request-Id = %q; want the caller's", got)
	}
	// And on a call the service answers, the same id, once.
	_, _, header = srv.restRaw(t, "GET", "/v1/policy", "", "X-Request-Id", "caller-id-2")
	if got := header.Values("X-Request-Id"); len(got) != 1 || got[0] != "caller-id-2" {
		t.Errorf("X-Request-Id from the service = %q; want the caller's, once", got)
	}
}

func TestBodiesTheSDKAndCurlSendAreReadAsJSON(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	// No Content-Type and text/plain keep the SDK's calls CORS simple
	// requests; curl -d sends application/x-www-form-urlencoded.
	for i, contentType := range []string{"", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "application/json; charset=utf-8"} {
		code, body, _ := srv.rest(t, "PATCH", fmt.Sprintf("/v1/subjects/sdk-%d/consent", i), `{"decisions":{"analytics":true}}`, "Content-Type", contentType)
		if code != 200 {
			t.Errorf("Content-Type %q: %d %v", contentType, code, body)
		}
	}
}

func TestASlowBodyIsARequestTimeout(t *testing.T) {
	cfg := testConfig(t, redistest.Start(t).URL())
	logs := &syncBuffer{}
	a, err := New(cfg, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	a.http.ReadTimeout = time.Second
	runInBackground(t, a)

	conn, err := net.Dial("tcp", a.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Half the body promised, then nothing.
	fmt.Fprintf(conn, "PATCH /v1/subjects/%s/consent HTTP/1.1\r\nHost: consentd\r\nAuthorization: Bearer %s\r\nContent-Length: 100\r\n\r\n{\"decisions\":", contractSubject, apiKeys["admin"])
	// Bounded by the configured timeout, not by how fast this machine is.
	_ = conn.SetReadDeadline(time.Now().Add(a.http.ReadTimeout + 10*time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a slow body: %v", err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	want := "body: not received in time: the whole request must arrive within the server's read timeout"
	if resp.StatusCode != 408 || body["code"] != 4.0 || body["message"] != want || resp.Header.Get("X-Request-Id") == "" {
		t.Errorf("a slow body: %d %v %v; want 408 {code 4, %q} with an X-Request-Id", resp.StatusCode, resp.Header, body, want)
	}
	checkLogs(t, logs.String())
}

func TestGRPCAndGatewayMessagesAreJSONLinesWithoutAddresses(t *testing.T) {
	logs := &syncBuffer{}
	routeGRPCLog(slog.New(slog.NewJSONHandler(logs, nil)))
	// What grpc-gateway prints when a watch client goes away mid-answer.
	grpclog.Errorf("Failed to flush response to client: write tcp 127.0.0.1:8080->127.0.0.1:51234: write: broken pipe")
	grpclog.Errorf("transport: http2Server.HandleStreams failed to read frame: read tcp [::1]:9090->[::1]:40222: use of closed network connection")
	out := logs.String()
	if strings.Count(out, "\n") != 2 || !strings.Contains(out, `"detail":"Failed to flush response to client: write tcp <client>-><client>: write: broken pipe"`) {
		t.Errorf("grpclog lines: %s", out)
	}
	checkLogs(t, out)
}

func TestTheLogsOfFailedRequestsAndAWatchDisconnectHoldNoIPTokenOrSubject(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	for _, tc := range errorCases() {
		srv.restRaw(t, tc.method, tc.path, tc.body, tc.header...)
	}
	// A subject token, refused for another subject, and a bad one.
	code, body, _ := srv.rest(t, "POST", "/v1/subjects/"+contractSubject+":issueToken", `{}`, "Authorization", "Bearer "+apiKeys["token"])
	if code != 200 {
		t.Fatalf("issueToken: %d %v", code, body)
	}
	token := jsonPath(body, "token.token")
	srv.rest(t, "GET", "/v1/subjects/someone-else/consent", "", "Authorization", "Bearer "+token)
	srv.rest(t, "GET", "/v1/subjects/"+contractSubject+"/consent", "", "Authorization", "Bearer "+token+"x")
	srv.rest(t, "GET", "/v1/subjects/"+contractSubject+"/consent", "", "Authorization", "Bearer "+apiKeys["admin"]+"x")
	// A watch client that goes away while changes are written.
	w := watchREST(t, srv, "from_oldest=true")
	update(t, srv, contractSubject, map[string]bool{"ads": true})
	w.nextLine(t)
	w.cancel()
	for range 5 {
		update(t, srv, contractSubject, map[string]bool{"ads": false})
	}
	srv.stop()
	logs := srv.logs.String()
	checkLogs(t, logs, token, apiKeys["admin"], apiKeys["token"], "someone-else")
}

var ipAddress = regexp.MustCompile(`\b\d{1,3}(\.\d{1,3}){3}\b|\[[0-9a-fA-F:]+\]|::1`)

// checkLogs fails unless every line of logs is a JSON object holding no IP
// address, no contract subject id and none of secrets.
func checkLogs(t *testing.T, logs string, secrets ...string) {
	t.Helper()
	for line := range strings.Lines(logs) {
		var entry map[string]any
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			t.Errorf("not a JSON line: %q", line)
			continue
		}
		// The startup line names the addresses consentd listens on: its
		// own, from its configuration, not a client's.
		if entry["msg"] != "consentd serving" && ipAddress.MatchString(line) {
			t.Errorf("an IP address in the logs: %s", line)
		}
		for _, s := range append(secrets, contractSubject) {
			if strings.Contains(line, s) {
				t.Errorf("%.12q... in the logs: %s", s, line)
			}
		}
	}
}
