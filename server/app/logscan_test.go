package app

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// Every consentd a test starts has its log read when the test ends: every
// line JSON, and none holding an IP address (but the listen addresses it
// reports and Redis' own in a failure to reach it), a token, an API key or
// a subject id of the kinds the tests use.
// So the whole app test run is the scan: each error path, stream and
// shutdown the tests drive, not a sample.
var (
	anyIPv4   = regexp.MustCompile(`\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b`)
	jwt       = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{10,}`)
	visitorID = regexp.MustCompile(`\bv_[A-Za-z0-9_-]{22}\b`)
	email     = regexp.MustCompile(`[A-Za-z0-9._-]+@example\.com`)
)

// listenFields are the log fields that name consentd's own listeners.
var listenFields = map[string]bool{"grpc": true, "http": true, "public": true, "admin": true, "addr": true}

// storeErrors are the messages whose "error" is a failure to talk to Redis:
// it names the Redis server's address, which an operator needs, and no
// client's.
var storeErrors = []string{"store unavailable", "feed lag monitor"}

func addressAllowed(field string, fields map[string]any) bool {
	if listenFields[field] {
		return true
	}
	msg, _ := fields["msg"].(string)
	for _, prefix := range storeErrors {
		if field == "error" && strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}

func assertCleanLogs(t *testing.T, logs string) {
	t.Helper()
	for i, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if line == "" {
			continue
		}
		var fields map[string]any
		if err := json.Unmarshal([]byte(line), &fields); err != nil {
			t.Errorf("log line %d is not JSON: %q", i+1, line)
			continue
		}
		for k, v := range fields {
			s, ok := v.(string)
			if !ok {
				b, _ := json.Marshal(v)
				s = string(b)
			}
			what := ""
			switch {
			case anyIPv4.MatchString(s) && !addressAllowed(k, fields):
				what = "an IP address"
			case jwt.MatchString(s):
				what = "a token"
			case visitorID.MatchString(s) || email.MatchString(s):
				what = "a subject id"
			}
			for _, key := range apiKeys {
				if strings.Contains(s, key) {
					what = "an API key"
				}
			}
			if what != "" {
				t.Errorf("log line %d holds %s in %q: %s", i+1, what, k, line)
			}
		}
	}
}
