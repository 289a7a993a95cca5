package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/internal/eventually"
	"github.com/consentd/consentd/server/internal/redistest"
)

// The change feed end to end: watch streams over gRPC and over REST
// (newline-delimited JSON), consumers and acknowledgements, lag in
// ListFeedConsumers and /metrics, and streams ending at shutdown.

func TestFeedConsumerMissesNothingAndSeesNothingTwiceAfterAcknowledging(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	for _, transport := range []string{"gRPC", "REST"} {
		t.Run(transport, func(t *testing.T) {
			consumer := strings.ToLower(transport) + "-mailer"
			watch := func() watcher {
				if transport == "gRPC" {
					return watchGRPC(t, srv, &consentv1.WatchConsentChangesRequest{Consumer: consumer, BatchSize: 2})
				}
				return watchREST(t, srv, "consumer="+consumer+"&batch_size=2")
			}
			ack := func(changes []change) int64 {
				t.Helper()
				if transport == "gRPC" {
					resp, err := srv.grpc.AcknowledgeConsentChanges(as(ctx(t), apiKeys["watch"]),
						&consentv1.AcknowledgeConsentChangesRequest{Consumer: consumer, ChangeIds: idsOf(changes)})
					if err != nil {
						t.Fatal(err)
					}
					return resp.GetAcknowledged()
				}
				ids, _ := json.Marshal(idsOf(changes))
				code, body, _ := srv.rest(t, "POST", "/v1/consumers/"+consumer+":ack", `{"change_ids": `+string(ids)+`}`,
					"Authorization", "Bearer "+apiKeys["watch"])
				if code != 200 {
					t.Fatalf("ack = %d %v", code, body)
				}
				n, _ := strconv.ParseInt(jsonPath(body, "acknowledged"), 10, 64)
				return n
			}

			if transport == "gRPC" {
				resp, err := srv.grpc.CreateFeedConsumer(as(ctx(t), apiKeys["watch"]), &consentv1.CreateFeedConsumerRequest{Consumer: consumer})
				if err != nil || resp.GetConsumer().GetName() != consumer || resp.GetConsumer().GetUnacknowledged() != 0 {
					t.Fatalf("CreateFeedConsumer = %v, %v", resp, err)
				}
			} else {
				code, body, _ := srv.rest(t, "POST", "/v1/consumers", `{"consumer": "`+consumer+`"}`, "Authorization", "Bearer "+apiKeys["watch"])
				if code != 200 || jsonPath(body, "consumer.name") != consumer {
					t.Fatalf("POST /v1/consumers = %d %v", code, body)
				}
			}
			s := func(name string) string { return transport + "-" + name }
			for _, name := range []string{"a", "b", "c"} {
				optOut(t, srv, s(name))
			}

			// It applies a, acknowledges it, and goes away before acknowledging b and c.
			w := watch()
			got, _ := readUntil(t, w, s("a"), s("b"), s("c"))
			if !sameSubjects(got, s("a"), s("b"), s("c")) {
				t.Fatalf("first watch got %v", subjectsOf(got))
			}
			if n := ack(got[:1]); n != 1 {
				t.Errorf("acknowledged %d, want 1", n)
			}
			w.close()
			optOut(t, srv, s("d"))

			// Back: the two it had not acknowledged again, then d; it
			// acknowledges all.
			unacknowledged := subjectsOf(got[1:])
			w = watch()
			again, _ := readUntil(t, w, s("d"))
			if want := append(unacknowledged, s("d")); !slices.Equal(subjectsOf(again), want) {
				t.Fatalf("after reconnecting got %v, want %v", subjectsOf(again), want)
			}
			if n := ack(again); n != 3 {
				t.Errorf("acknowledged %d, want 3", n)
			}
			w.close()

			// Back again: nothing before the next change.
			optOut(t, srv, s("e"))
			w = watch()
			last, _ := readUntil(t, w, s("e"))
			if !sameSubjects(last, s("e")) {
				t.Fatalf("after acknowledging everything got %v, want only e", subjectsOf(last))
			}
			w.close()
		})
	}
}

func TestFeedCursorResumesWithoutAMissOrADuplicate(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	// Started before the writes: no cursor means "from now".
	first := watchGRPC(t, srv, &consentv1.WatchConsentChangesRequest{BatchSize: 2})
	opening, err := first.next(t)
	if err != nil || len(opening.changes) != 0 || opening.cursor == "" {
		t.Fatalf("the first message = %+v, %v; want no changes and a cursor, at once", opening, err)
	}
	var written []string
	for i := range 7 {
		written = append(written, fmt.Sprintf("s%d", i))
		optOut(t, srv, written[i])
	}

	// One message over gRPC, then the rest over REST from its cursor.
	var got []change
	var cursor string
	for len(got) == 0 {
		msg, err := first.next(t)
		if err != nil {
			t.Fatal(err)
		}
		if len(msg.changes) > 2 {
			t.Fatalf("a message of %d changes, the batch size is 2", len(msg.changes))
		}
		got, cursor = msg.changes, msg.cursor
	}
	first.close()
	remaining := slices.DeleteFunc(slices.Clone(written), func(s string) bool { return slices.Contains(subjectsOf(got), s) })
	rest, _ := readUntil(t, watchREST(t, srv, "batch_size=2&cursor="+url.QueryEscape(cursor)), remaining...)
	if all := append(got, rest...); !sameSubjects(all, written...) {
		t.Fatalf("changes %v, want each of %v once", subjectsOf(all), written)
	}

	// from_oldest without a cursor starts at the first change kept.
	if oldest, _ := readUntil(t, watchREST(t, srv, "from_oldest=true&batch_size=1000"), written...); !sameSubjects(oldest, written...) {
		t.Errorf("from_oldest got %v, want each of %v once", subjectsOf(oldest), written)
	}
}

func TestFeedLagShowsUnacknowledgedOptOutsInListAndMetrics(t *testing.T) {
	srv := start(t, redistest.Start(t).URL(), func(c *config.Config) { c.FeedMonitorInterval = 20 * time.Millisecond })
	if _, err := srv.grpc.CreateFeedConsumer(ctx(t), &consentv1.CreateFeedConsumerRequest{Consumer: "mailer"}); err != nil {
		t.Fatal(err)
	}
	before := time.Now().Truncate(time.Millisecond)
	optOut(t, srv, "alice")
	after := time.Now()
	if _, err := srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: "bob", Decisions: map[string]bool{"analytics": true}}); err != nil {
		t.Fatal(err)
	}

	list, err := srv.grpc.ListFeedConsumers(as(ctx(t), apiKeys["watch"]), &consentv1.ListFeedConsumersRequest{})
	if err != nil || len(list.GetConsumers()) != 1 {
		t.Fatalf("ListFeedConsumers = %v, %v", list, err)
	}
	mailer := list.GetConsumers()[0]
	oldest := mailer.GetOldestUnacknowledgedOptOutTime().AsTime()
	if mailer.GetName() != "mailer" || mailer.GetUnacknowledged() != 2 || mailer.GetUnacknowledgedOptOuts() != 1 ||
		oldest.Before(before) || oldest.After(after) || mailer.GetTrimmedUnacknowledged() != 0 {
		t.Fatalf("mailer = %v; want 2 unacknowledged, 1 opt-out from between %v and %v", mailer, before, after)
	}
	code, body, _ := srv.rest(t, "GET", "/v1/consumers", "", "Authorization", "Bearer "+apiKeys["watch"])
	restOldest, _ := time.Parse(time.RFC3339Nano, jsonPath(body, "consumers.0.oldest_unacknowledged_opt_out_time"))
	if code != 200 || jsonPath(body, "consumers.0.unacknowledged_opt_outs") != "1" || !restOldest.Equal(oldest) {
		t.Fatalf("GET /v1/consumers = %d %v", code, body)
	}

	metric := func(name string) (float64, bool) {
		resp, err := http.Get(srv.baseURL + "/metrics")
		if err != nil {
			return 0, false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name+`{consumer="mailer"}`) + ` (\S+)$`).FindSubmatch(b)
		if m == nil {
			return 0, false
		}
		v, err := strconv.ParseFloat(string(m[1]), 64)
		return v, err == nil
	}
	eventually.True(t, "the monitor to publish mailer's opt-out", func() bool {
		v, ok := metric("consentd_feed_unacked_opt_outs")
		return ok && v == 1
	})
	if v, ok := metric("consentd_feed_unacked"); !ok || v != 2 {
		t.Errorf("consentd_feed_unacked = %v (%v), want 2", v, ok)
	}
	if v, ok := metric("consentd_feed_trimmed_unacked"); !ok || v != 0 {
		t.Errorf("consentd_feed_trimmed_unacked = %v (%v), want 0", v, ok)
	}
	// The age grows while the opt-out waits.
	age, ok := metric("consentd_feed_oldest_unacked_opt_out_age_seconds")
	if !ok || age < 0 {
		t.Fatalf("consentd_feed_oldest_unacked_opt_out_age_seconds = %v (%v)", age, ok)
	}
	eventually.True(t, "the opt-out's age to grow", func() bool {
		v, ok := metric("consentd_feed_oldest_unacked_opt_out_age_seconds")
		return ok && v > age
	})

	// Applied and acknowledged: no lag left, in the list and the metrics.
	w := watchGRPC(t, srv, &consentv1.WatchConsentChangesRequest{Consumer: "mailer"})
	got, _ := readUntil(t, w, "bob")
	if _, err := srv.grpc.AcknowledgeConsentChanges(ctx(t), &consentv1.AcknowledgeConsentChangesRequest{Consumer: "mailer", ChangeIds: idsOf(got)}); err != nil {
		t.Fatal(err)
	}
	list, err = srv.grpc.ListFeedConsumers(ctx(t), &consentv1.ListFeedConsumersRequest{})
	if err != nil || list.GetConsumers()[0].GetUnacknowledged() != 0 || list.GetConsumers()[0].GetOldestUnacknowledgedOptOutTime() != nil {
		t.Fatalf("after acknowledging: %v, %v", list, err)
	}
	eventually.True(t, "the metrics to show no lag", func() bool {
		opt, ok1 := metric("consentd_feed_unacked_opt_outs")
		age, ok2 := metric("consentd_feed_oldest_unacked_opt_out_age_seconds")
		return ok1 && ok2 && opt == 0 && age == 0
	})

	// A deleted consumer leaves the list and the metrics.
	if _, err := srv.grpc.DeleteFeedConsumer(ctx(t), &consentv1.DeleteFeedConsumerRequest{Consumer: "mailer"}); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, "the metrics to drop mailer", func() bool {
		_, ok := metric("consentd_feed_unacked")
		return !ok
	})
}

func TestWatchEndsWithAResumableCursorWhenConsentdShutsDown(t *testing.T) {
	redis := redistest.Start(t)
	srv := start(t, redis.URL())
	watches := map[string]watcher{
		"gRPC": watchGRPC(t, srv, &consentv1.WatchConsentChangesRequest{}),
		"REST": watchREST(t, srv, ""),
	}
	// A watch without a cursor starts from when consentd has read the
	// request, which the call's return does not say; its opening message (no
	// changes, a cursor) does. Only then is the write below after the start.
	for name, w := range watches {
		if opening, err := w.next(t); err != nil || len(opening.changes) != 0 || opening.cursor == "" {
			t.Fatalf("%s: the opening message = %+v, %v; want no changes and a cursor", name, opening, err)
		}
	}
	optOut(t, srv, "before-shutdown")
	for name, w := range watches {
		if got, _ := readUntil(t, w, "before-shutdown"); len(got) != 1 {
			t.Fatalf("%s: got %v", name, got)
		}
	}

	stopped := make(chan struct{})
	go func() { srv.stop(); close(stopped) }()
	cursors := map[string]string{}
	for name, w := range watches {
		last, err := w.next(t)
		if err != nil || len(last.changes) != 0 || last.cursor == "" {
			t.Fatalf("%s: the last message = %+v, %v; want no changes and a cursor", name, last, err)
		}
		if _, err := w.next(t); !errors.Is(err, io.EOF) {
			t.Fatalf("%s: after the last message: %v, want the stream to end cleanly", name, err)
		}
		cursors[name] = last.cursor
	}
	<-stopped
	if !strings.Contains(srv.logs.String(), `"msg":"consentd shutting down`) {
		t.Error("no shutdown in the logs")
	}

	// The next consentd on the same Redis resumes from it.
	next := start(t, redis.URL())
	optOut(t, next, "after-restart")
	for name, cursor := range cursors {
		got, _ := readUntil(t, watchGRPC(t, next, &consentv1.WatchConsentChangesRequest{Cursor: cursor}), "after-restart")
		if !slices.Equal(subjectsOf(got), []string{"after-restart"}) {
			t.Errorf("resuming from %s's last cursor got %v, want only the change after it", name, subjectsOf(got))
		}
	}
}

func TestFeedBadInputGetsAClearErrorOverGRPCAndREST(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	if _, err := srv.grpc.CreateFeedConsumer(ctx(t), &consentv1.CreateFeedConsumerRequest{Consumer: "mailer"}); err != nil {
		t.Fatal(err)
	}

	// Errors of a watch come before its first message, so REST answers
	// with the status; the body is the gateway's stream error line.
	for _, tc := range []struct {
		name  string
		req   *consentv1.WatchConsentChangesRequest
		query string
		code  codes.Code
		http  int
		field string
	}{
		{"bad cursor", &consentv1.WatchConsentChangesRequest{Cursor: "garbage"}, "cursor=garbage", codes.InvalidArgument, 400, "cursor"},
		{"unknown consumer", &consentv1.WatchConsentChangesRequest{Consumer: "nobody"}, "consumer=nobody", codes.NotFound, 404, "consumer"},
		{"bad consumer name", &consentv1.WatchConsentChangesRequest{Consumer: "No Body"}, "consumer=No+Body", codes.InvalidArgument, 400, "consumer"},
		{"unknown purpose", &consentv1.WatchConsentChangesRequest{Purposes: []string{"ads", "nope"}}, "purposes=ads&purposes=nope", codes.InvalidArgument, 400, "purposes[1]"},
		{"batch size too large", &consentv1.WatchConsentChangesRequest{BatchSize: 1001}, "batch_size=1001", codes.InvalidArgument, 400, "batch_size"},
		{"negative batch size", &consentv1.WatchConsentChangesRequest{BatchSize: -1}, "batch_size=-1", codes.InvalidArgument, 400, "batch_size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := watchGRPC(t, srv, tc.req).next(t)
			if status.Code(err) != tc.code || fieldOf(err) != tc.field {
				t.Errorf("gRPC: %v, want %v naming %s", err, tc.code, tc.field)
			}
			w := watchREST(t, srv, tc.query)
			line := w.nextLine(t)
			var body map[string]any
			_ = json.Unmarshal(line, &body)
			if w.status != tc.http || jsonPath(body, "error.details.0.field_violations.0.field") != tc.field ||
				!strings.HasPrefix(jsonPath(body, "error.message"), tc.field+": ") {
				t.Errorf("REST: %d %s, want %d naming %s", w.status, line, tc.http, tc.field)
			}
			if end := w.nextLine(t); end != nil {
				t.Errorf("REST: more after the error: %s", end)
			}
		})
	}
	// A query the gateway cannot parse fails before the stream opens.
	if w := watchREST(t, srv, "batch_size=many"); w.status != 400 {
		t.Errorf("batch_size=many: %d, want 400", w.status)
	}

	for _, tc := range []struct {
		name, method, path, body string
		http                     int
		field                    string
	}{
		{"create: bad name", "POST", "/v1/consumers", `{"consumer": "Mailer!"}`, 400, "consumer"},
		{"ack: not a change id", "POST", "/v1/consumers/mailer:ack", `{"change_ids": ["0-1-0", "x"]}`, 400, "change_ids[1]"},
		{"ack: no ids", "POST", "/v1/consumers/mailer:ack", `{"change_ids": []}`, 400, "change_ids"},
		{"ack: unknown consumer", "POST", "/v1/consumers/nobody:ack", `{"change_ids": ["0-1-0"]}`, 404, "consumer"},
		{"delete: unknown consumer", "DELETE", "/v1/consumers/nobody", "", 404, "consumer"},
	} {
		code, body, _ := srv.rest(t, tc.method, tc.path, tc.body)
		if code != tc.http || jsonPath(body, "details.0.field_violations.0.field") != tc.field {
			t.Errorf("%s: %d %v, want %d naming %s", tc.name, code, body, tc.http, tc.field)
		}
	}
	code, body, _ := srv.rest(t, "DELETE", "/v1/consumers/mailer", "")
	if code != 200 {
		t.Errorf("deleting mailer: %d %v", code, body)
	}
}

func fieldOf(err error) string {
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			return br.GetFieldViolations()[0].GetField()
		}
	}
	return ""
}

func TestNormalOperationCountsNoRedisErrors(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	update(t, srv, "quiet", map[string]bool{"ads": true})
	must(srv.grpc.CreateFeedConsumer(ctx(t), &consentv1.CreateFeedConsumerRequest{Consumer: "quiet"})).ok(t)
	must(srv.grpc.ListFeedConsumers(ctx(t), &consentv1.ListFeedConsumersRequest{})).ok(t)
	must(srv.grpc.ExportSubject(ctx(t), &consentv1.ExportSubjectRequest{SubjectId: "quiet", Reason: "test"})).ok(t)
	must(srv.grpc.EraseSubject(ctx(t), &consentv1.EraseSubjectRequest{SubjectId: "quiet", Reason: "test"})).ok(t)
	resp, err := http.Get(srv.baseURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, kind := range []string{"timeout", "connection", "reply"} {
		if line := `consentd_redis_errors_total{kind="` + kind + `"} 0`; !strings.Contains(string(b), line) {
			t.Errorf("want %s; /metrics has:\n%s", line, grepLines(string(b), "consentd_redis_errors_total"))
		}
	}
}

func grepLines(text, substr string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
