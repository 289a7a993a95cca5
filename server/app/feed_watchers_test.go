package app

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
)

// optOut records a denial of marketing e-mail for subject: one change in
// the feed, an opt-out.
func optOut(t *testing.T, srv *consentd, subject string) {
	t.Helper()
	_, err := srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: subject, Decisions: map[string]bool{"marketing.email": false}})
	if err != nil {
		t.Fatalf("update %s: %v", subject, err)
	}
}

// change is what the tests look at in a ConsentChange, from gRPC or REST.
type change struct{ id, subject string }

// feedMessage is one message of a watch, from gRPC or REST.
type feedMessage struct {
	changes []change
	cursor  string
}

// watcher is a watch over gRPC or REST.
type watcher interface {
	// next returns the next message; io.EOF when the stream ended cleanly.
	next(t *testing.T) (feedMessage, error)
	close()
}

type grpcWatch struct {
	stream grpc.ServerStreamingClient[consentv1.WatchConsentChangesResponse]
	cancel context.CancelFunc
}

func watchGRPC(t *testing.T, srv *consentd, req *consentv1.WatchConsentChangesRequest) *grpcWatch {
	t.Helper()
	c, cancel := context.WithCancel(ctx(t))
	stream, err := srv.grpc.WatchConsentChanges(as(c, apiKeys["watch"]), req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancel)
	return &grpcWatch{stream: stream, cancel: cancel}
}

func (w *grpcWatch) next(t *testing.T) (feedMessage, error) {
	msg, err := w.stream.Recv()
	if err != nil {
		return feedMessage{}, err
	}
	out := feedMessage{cursor: msg.GetCursor()}
	for _, c := range msg.GetChanges() {
		out.changes = append(out.changes, change{c.GetId(), c.GetSubjectId()})
	}
	return out, nil
}

func (w *grpcWatch) close() { w.cancel() }

type restWatch struct {
	status int
	header http.Header
	lines  chan []byte // closed at the end of the body
	cancel context.CancelFunc
}

// watchREST opens GET /v1/changes:watch?query and reads its lines as they
// come (each must arrive on its own: the server flushes every message).
func watchREST(t *testing.T, srv *consentd, query string) *restWatch {
	t.Helper()
	c, cancel := context.WithCancel(ctx(t))
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(c, "GET", srv.baseURL+"/v1/changes:watch?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apiKeys["watch"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	w := &restWatch{status: resp.StatusCode, header: resp.Header, lines: make(chan []byte), cancel: cancel}
	go func() {
		defer close(w.lines)
		defer resp.Body.Close()
		rd := bufio.NewReader(resp.Body)
		for {
			line, err := rd.ReadBytes('\n')
			if len(line) > 0 {
				w.lines <- line
			}
			if err != nil {
				return
			}
		}
	}()
	return w
}

// nextLine is the next line of the body, nil at its end.
func (w *restWatch) nextLine(t *testing.T) []byte {
	t.Helper()
	select {
	case line := <-w.lines:
		return line
	case <-time.After(10 * time.Second):
		t.Fatal("no line from the REST watch within 10s")
		return nil
	}
}

func (w *restWatch) next(t *testing.T) (feedMessage, error) {
	line := w.nextLine(t)
	if line == nil {
		return feedMessage{}, io.EOF
	}
	if !strings.HasSuffix(string(line), "\n") || strings.Count(string(line), "\n") != 1 {
		t.Fatalf("a watch line must be one JSON message ending in a newline: %q", line)
	}
	var msg struct {
		Result *struct {
			Changes []struct {
				ID        string `json:"id"`
				SubjectID string `json:"subject_id"`
			} `json:"changes"`
			Cursor string `json:"cursor"`
		} `json:"result"`
		Error json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(line, &msg); err != nil {
		t.Fatalf("a watch line is not JSON: %q", line)
	}
	if msg.Result == nil {
		return feedMessage{}, fmt.Errorf("error line: %s", msg.Error)
	}
	out := feedMessage{cursor: msg.Result.Cursor}
	for _, c := range msg.Result.Changes {
		out.changes = append(out.changes, change{c.ID, c.SubjectID})
	}
	return out, nil
}

func (w *restWatch) close() { w.cancel() }

// readUntil reads messages until changes of every subject given have come
// (changes written together may come in any order: partitions are merged by
// time, and a millisecond holds several), and returns every change read and
// the cursor of the last message read.
func readUntil(t *testing.T, w watcher, subjects ...string) ([]change, string) {
	t.Helper()
	var got []change
	for {
		msg, err := w.next(t)
		if err != nil {
			t.Fatalf("watch ended before changes of %v: %v (got %v)", subjects, err, got)
		}
		got = append(got, msg.changes...)
		seen := subjectsOf(got)
		if !slices.ContainsFunc(subjects, func(s string) bool { return !slices.Contains(seen, s) }) {
			return got, msg.cursor
		}
	}
}

// sameSubjects reports whether changes are exactly one of each subject.
func sameSubjects(changes []change, subjects ...string) bool {
	return slices.Equal(slices.Sorted(slices.Values(subjectsOf(changes))), slices.Sorted(slices.Values(subjects)))
}

func subjectsOf(changes []change) []string {
	var out []string
	for _, c := range changes {
		out = append(out, c.subject)
	}
	return out
}

func idsOf(changes []change) []string {
	var out []string
	for _, c := range changes {
		out = append(out, c.id)
	}
	return out
}
