package app

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
)

// soak is the soak's traffic. Every worker records what went wrong instead
// of failing the test from its goroutine.
type soak struct {
	srv *consentd
	web *http.Client

	restCalls, writes, feedChanges atomic.Int64
	quit, feedQuit                 chan struct{}
	workers, feed                  sync.WaitGroup
	stopOnce, feedOnce             sync.Once

	mu       sync.Mutex
	problems map[string]int    // what went wrong, by kind
	examples map[string]string // the first of each kind
	replays  int               // writes retried on purpose, answered with the first answer
}

const (
	soakSubjectsPerWriter = 200
	soakGRPCWriters       = 2
)

func newSoak(srv *consentd) *soak {
	return &soak{srv: srv, web: &http.Client{Timeout: callTimeout, Transport: &http.Transport{}},
		quit: make(chan struct{}), feedQuit: make(chan struct{}), problems: map[string]int{}, examples: map[string]string{}}
}

func (s *soak) problem(kind string, detail any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.problems[kind]++; s.problems[kind] == 1 {
		s.examples[kind] = fmt.Sprint(detail)
	}
}

func (s *soak) report(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range slices.Sorted(maps.Keys(s.problems)) {
		t.Errorf("%s: %d times, first: %s", k, s.problems[k], s.examples[k])
	}
	t.Logf("writes retried on purpose with the same idempotency key, answered with the first result: %d", s.replays)
}

// loop runs step until the soak stops, paced: a steady load that leaves the
// machine's other tests some CPU.
func (s *soak) loop(step func(i int)) {
	s.workers.Go(func() {
		pace := time.NewTicker(2 * time.Millisecond)
		defer pace.Stop()
		for i := 0; ; i++ {
			select {
			case <-s.quit:
				return
			case <-pace.C:
			}
			step(i)
		}
	})
}

func soakSubject(writer, i int) string {
	return fmt.Sprintf("soak-%d-%d", writer, i%soakSubjectsPerWriter)
}

func (s *soak) run(t *testing.T) {
	s.grpcWriters()
	s.restWriter()
	s.checks()
	s.reads(t)
	s.feedConsumer()
}

// grpcWriters run the gRPC writers: each owns its subjects, so it knows
// the revision each write must get; every tenth write is sent twice with
// its key.
func (s *soak) grpcWriters() {
	for w := range soakGRPCWriters {
		revisions := map[string]int64{}
		s.loop(func(i int) {
			subject := soakSubject(w, i)
			req := &consentv1.UpdateConsentRequest{SubjectId: subject, Region: "DE", IdempotencyKey: fmt.Sprintf("%s-%d", subject, i),
				Decisions: map[string]bool{"analytics": i%2 == 0, "marketing.email": i%3 == 0, "ads": i%5 == 0}}
			c, cancel := within(callTimeout)
			defer cancel()
			resp, err := s.srv.grpc.UpdateConsent(c, req)
			if err != nil {
				s.problem("write failed", err)
				return
			}
			s.writes.Add(1)
			rev := resp.GetConsent().GetRevision()
			if rev != revisions[subject]+1 {
				s.problem("write answered an unexpected revision", fmt.Sprintf("%s: %d after %d", subject, rev, revisions[subject]))
			}
			revisions[subject] = rev
			if i%10 == 0 {
				again, err := s.srv.grpc.UpdateConsent(c, req)
				if err != nil || again.GetConsent().GetRevision() != rev {
					s.problem("a retried write did not get the first answer", fmt.Sprintf("%v, %v", again.GetConsent().GetRevision(), err))
				} else {
					s.mu.Lock()
					s.replays++
					s.mu.Unlock()
				}
			}
			// Read your write.
			check, err := s.srv.grpc.CheckConsent(c, &consentv1.CheckConsentRequest{SubjectId: subject, Purpose: "analytics", Region: "DE", MinRevision: rev})
			if err != nil || check.GetAllowed() != (i%2 == 0) || check.GetReason() != consentv1.Reason_REASON_EXPLICIT {
				s.problem("a check after a write did not see it", fmt.Sprintf("%v, %v", check, err))
			}
		})
	}
}

// restWriter runs a REST writer, and REST checks.
func (s *soak) restWriter() {
	restRevisions := map[string]int64{}
	s.loop(func(i int) {
		subject := fmt.Sprintf("soak-rest-%d", i%soakSubjectsPerWriter)
		c, cancel := within(callTimeout)
		defer cancel()
		if i%2 == 1 {
			code, body, err := restCallContext(c, s.web, s.srv, "GET", "/v1/subjects/"+subject+"/purposes/ads:check?region=US-CA", "")
			s.restCalls.Add(1)
			if err != nil || code != 200 || jsonPath(body, "reason") == "REASON_STORE_UNAVAILABLE" {
				s.problem("REST check failed", fmt.Sprintf("%d %v %v", code, body, err))
			}
			return
		}
		code, body, err := restCallContext(c, s.web, s.srv, "PATCH", "/v1/subjects/"+subject+"/consent",
			fmt.Sprintf(`{"decisions": {"ads": %v}, "region": "US-CA", "idempotency_key": "%s-%d"}`, i%4 == 0, subject, i))
		s.restCalls.Add(1)
		if err != nil || code != 200 {
			s.problem("REST write failed", fmt.Sprintf("%d %v %v", code, body, err))
			return
		}
		s.writes.Add(1)
		if want := strconv.FormatInt(restRevisions[subject]+1, 10); jsonPath(body, "consent.revision") != want {
			s.problem("REST write answered an unexpected revision", fmt.Sprintf("%s: %s, want %s", subject, jsonPath(body, "consent.revision"), want))
		}
		restRevisions[subject]++
	})
}

// checks runs checks and batch checks of the writers' subjects.
func (s *soak) checks() {
	s.loop(func(i int) {
		c, cancel := within(callTimeout)
		defer cancel()
		if i%4 != 0 {
			r, err := s.srv.grpc.CheckConsent(c, &consentv1.CheckConsentRequest{SubjectId: soakSubject(i%soakGRPCWriters, i*7), Purpose: counterPurposes[i%len(counterPurposes)]})
			if err != nil || r.GetReason() == consentv1.Reason_REASON_STORE_UNAVAILABLE {
				s.problem("check failed", fmt.Sprintf("%v, %v", r, err))
			}
			return
		}
		var checks []*consentv1.ConsentCheck
		for j := range 100 {
			checks = append(checks, &consentv1.ConsentCheck{SubjectId: soakSubject(j%soakGRPCWriters, i+j), Purpose: counterPurposes[j%len(counterPurposes)]})
		}
		r, err := s.srv.grpc.BatchCheckConsent(c, &consentv1.BatchCheckConsentRequest{Checks: checks})
		if err != nil || len(r.GetResults()) != len(checks) {
			s.problem("batch check failed", err)
			return
		}
		for _, res := range r.GetResults() {
			if res.GetReason() == consentv1.Reason_REASON_STORE_UNAVAILABLE {
				s.problem("batch check failed closed", res)
			}
		}
	})
}

// reads runs send-list filters and history reads (as the subject: an
// operator's read would be recorded, and so count as a write).
func (s *soak) reads(t *testing.T) {
	tokens := map[string]string{}
	var ids []string
	for w := range soakGRPCWriters {
		for i := range soakSubjectsPerWriter {
			subject := soakSubject(w, i)
			ids = append(ids, subject)
			tokens[subject] = tokenFor(t, subject, time.Now(), time.Hour)
		}
	}
	s.loop(func(i int) {
		c, cancel := within(callTimeout)
		defer cancel()
		if i%3 == 0 {
			if _, err := s.srv.grpc.FilterSubjects(c, &consentv1.FilterSubjectsRequest{Purpose: "marketing.email", Region: "DE", SubjectIds: ids}); err != nil {
				s.problem("filter failed", err)
			}
			return
		}
		subject := ids[i%len(ids)]
		page, err := s.srv.grpc.ListConsentEvents(as(c, tokens[subject]), &consentv1.ListConsentEventsRequest{SubjectId: subject, PageSize: 20})
		if err != nil {
			s.problem("history read failed", err)
			return
		}
		events := page.GetEvents()
		for j := 1; j < len(events); j++ { // newest first
			if events[j].GetRevision() != events[j-1].GetRevision()-1 || events[j-1].GetPrevHash() != events[j].GetHash() {
				s.problem("history not chained", fmt.Sprintf("%s: %d after %d", subject, events[j-1].GetRevision(), events[j].GetRevision()))
			}
		}
	})
}

// feedConsumer watches, checks each subject's changes come in order and
// once, and acknowledges every message.
func (s *soak) feedConsumer() {
	s.feed.Go(func() {
		watchCtx, cancel := context.WithCancel(as(context.Background(), apiKeys["watch"]))
		defer cancel()
		go func() { <-s.feedQuit; cancel() }()
		stream, err := s.srv.grpc.WatchConsentChanges(watchCtx, &consentv1.WatchConsentChangesRequest{Consumer: "soak-mailer", BatchSize: 200})
		if err != nil {
			s.problem("watch failed", err)
			return
		}
		last := map[string]int64{}
		for {
			msg, err := stream.Recv()
			if err != nil {
				select {
				case <-s.feedQuit:
				default:
					s.problem("watch ended", err)
				}
				return
			}
			var ids []string
			for _, ch := range msg.GetChanges() {
				if ch.GetRevision() <= last[ch.GetSubjectId()] {
					s.problem("a change came twice or out of order", fmt.Sprintf("%s: revision %d after %d", ch.GetSubjectId(), ch.GetRevision(), last[ch.GetSubjectId()]))
				}
				last[ch.GetSubjectId()] = ch.GetRevision()
				ids = append(ids, ch.GetId())
			}
			if len(ids) == 0 {
				continue
			}
			c, cancelAck := within(callTimeout)
			resp, err := s.srv.grpc.AcknowledgeConsentChanges(as(c, apiKeys["watch"]), &consentv1.AcknowledgeConsentChangesRequest{Consumer: "soak-mailer", ChangeIds: ids})
			cancelAck()
			if err != nil || resp.GetAcknowledged() != int64(len(ids)) {
				s.problem("acknowledging failed", fmt.Sprintf("%v, %v", resp, err))
			}
			s.feedChanges.Add(int64(len(ids)))
		}
	})
}

// stop ends the traffic but the feed consumer, which drains what is left.
func (s *soak) stop() {
	s.stopOnce.Do(func() { close(s.quit) })
	s.workers.Wait()
	s.web.CloseIdleConnections()
}

func (s *soak) stopFeed() {
	s.feedOnce.Do(func() { close(s.feedQuit) })
	s.feed.Wait()
}
