package app

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/internal/redistest"
)

func TestConcurrentWritersLoseNoUpdate(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	const writers, writes = 8, 15
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range writes {
				if _, err := srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{
					SubjectId: "busy", Decisions: map[string]bool{"analytics": (w+i)%2 == 0},
				}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got, err := srv.grpc.GetConsent(ctx(t), &consentv1.GetConsentRequest{SubjectId: "busy"})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetConsent().GetRevision() != writers*writes {
		t.Fatalf("revision = %d after %d writes", got.GetConsent().GetRevision(), writers*writes)
	}
	events, err := srv.grpc.ListConsentEvents(ctx(t), &consentv1.ListConsentEventsRequest{SubjectId: "busy", Reason: "test", PageSize: 500})
	if err != nil {
		t.Fatal(err)
	}
	if len(events.GetEvents()) != writers*writes {
		t.Fatalf("%d events after %d writes", len(events.GetEvents()), writers*writes)
	}
}

func TestRetriedIdempotentWriteAppliesOnce(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	req := &consentv1.UpdateConsentRequest{SubjectId: "retry", Decisions: map[string]bool{"ads": true}, IdempotencyKey: "order-77"}
	first, err := srv.grpc.UpdateConsent(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	// Over REST too, with the same key and the same request.
	code, body, _ := srv.rest(t, "PATCH", "/v1/subjects/retry/consent", `{"decisions": {"ads": true}, "idempotency_key": "order-77"}`)
	if code != 200 || jsonPath(body, "consent.revision") != "1" {
		t.Fatalf("REST retry = %d %v", code, body)
	}
	second, err := srv.grpc.UpdateConsent(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(first, second) {
		t.Fatalf("a retry returned another result:\n%v\n%v", first, second)
	}
	events, _ := srv.grpc.ListConsentEvents(ctx(t), &consentv1.ListConsentEventsRequest{SubjectId: "retry", Reason: "test"})
	if len(events.GetEvents()) != 1 {
		t.Fatalf("%d events after one write retried twice", len(events.GetEvents()))
	}
}

func TestSecGPCHeaderOptsOutOfGPCPurposesInOptOutRegions(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	// Only the exact value "1" is a GPC signal.
	for _, v := range []string{"0", "true", "yes", "11"} {
		code, body, _ := srv.rest(t, "PATCH", "/v1/subjects/no-signal/consent", `{"decisions": {"analytics": true}, "region": "US-CA"}`, "Sec-GPC", v)
		if code != 200 || jsonPath(body, "consent.gpc_time") != "null" {
			t.Fatalf("Sec-GPC %q: %d %v", v, code, body)
		}
	}
	code, body, _ := srv.rest(t, "PATCH", "/v1/subjects/gpc-visitor/consent", `{"decisions": {"analytics": true}, "region": "US-CA"}`, "Sec-GPC", "1")
	if code != 200 {
		t.Fatalf("PATCH with Sec-GPC: %d %v", code, body)
	}
	check, err := srv.grpc.CheckConsent(ctx(t), &consentv1.CheckConsentRequest{SubjectId: "gpc-visitor", Purpose: "ads"})
	if err != nil {
		t.Fatal(err)
	}
	if check.GetAllowed() || check.GetReason() != consentv1.Reason_REASON_GPC {
		t.Fatalf("ads under GPC in California = %v, want denied for GPC", check)
	}
	events, _ := srv.grpc.ListConsentEvents(ctx(t), &consentv1.ListConsentEventsRequest{SubjectId: "gpc-visitor", Reason: "test"})
	if !events.GetEvents()[0].GetGpc() {
		t.Errorf("the event does not record the GPC signal: %v", events.GetEvents()[0])
	}
	// A browser may report its signal before choosing anything: the write
	// records the signal alone.
	code, body, _ = srv.rest(t, "PATCH", "/v1/subjects/quiet-visitor/consent", `{"decisions": {}, "gpc": true, "region": "US-CO"}`)
	if code != 200 || jsonPath(body, "consent.revision") != "1" || jsonPath(body, "consent.gpc_time") == "null" {
		t.Fatalf("a GPC-only write: %d %v", code, body)
	}
	if code, body, _ = srv.rest(t, "PATCH", "/v1/subjects/quiet-visitor/consent", `{"decisions": {}}`); code != 400 || !strings.Contains(jsonPath(body, "message"), "decisions") {
		t.Fatalf("an empty write without GPC: %d %v, want 400 naming decisions", code, body)
	}

	// An explicit later choice by the person wins.
	if _, err := srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: "gpc-visitor", Decisions: map[string]bool{"ads": true}, Gpc: true}); err != nil {
		t.Fatal(err)
	}
	check, _ = srv.grpc.CheckConsent(ctx(t), &consentv1.CheckConsentRequest{SubjectId: "gpc-visitor", Purpose: "ads"})
	if !check.GetAllowed() || check.GetReason() != consentv1.Reason_REASON_EXPLICIT {
		t.Fatalf("ads after an explicit grant = %v", check)
	}
}

func TestABrowsersWriteRecordsCoarseClientFactsSealed(t *testing.T) {
	redis := redistest.Start(t)
	srv := start(t, redis.URL())
	code, body, _ := srv.rest(t, "PATCH", "/v1/subjects/dana/consent", `{"decisions": {"ads": false}}`,
		"User-Agent", "TestBrowser/1.0 (X11; Linux x86_64)", "Sec-CH-UA-Platform", `"Linux"`, "Sec-CH-UA-Mobile", "?0")
	if code != 200 {
		t.Fatalf("PATCH: %d %v", code, body)
	}
	if _, err := srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: "dana", Decisions: map[string]bool{"ads": true}}); err != nil {
		t.Fatal(err)
	}
	events, err := srv.grpc.ListConsentEvents(as(ctx(t), tokenFor(t, "dana", time.Now(), time.Hour)), &consentv1.ListConsentEventsRequest{SubjectId: "dana"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := events.GetEvents()[1].GetClient(), `ua=TestBrowser/1.0 (X11; Linux x86_64); platform="Linux"; mobile=?0`; got != want {
		t.Errorf("client facts of the browser's write = %q, want %q", got, want)
	}
	if got := events.GetEvents()[0].GetClient(); got != "" {
		t.Errorf("a service's gRPC write recorded client facts %q", got)
	}
	// In Redis they are sealed.
	keys, _ := redis.Client(t).Keys(ctx(t), "*:h:*").Result()
	for _, k := range keys {
		for _, e := range redis.Client(t).LRange(ctx(t), k, 0, -1).Val() {
			if strings.Contains(e, "TestBrowser") || strings.Contains(e, "Linux") {
				t.Errorf("history holds client facts in the clear: %s", e)
			}
		}
	}
}

func TestFilteringASendListKeepsOnlyThoseWhoAgreed(t *testing.T) {
	srv := start(t, redistest.Start(t).URL())
	for id, granted := range map[string]bool{"u1": true, "u2": false, "u4": true} {
		if _, err := srv.grpc.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: id, Region: "DE",
			Decisions: map[string]bool{"marketing.email": granted}}); err != nil {
			t.Fatal(err)
		}
	}
	// 10,000 ids: three decided, the rest never asked (opt-in: not allowed),
	// one given twice.
	ids := []string{"u1", "u2", "u3", "u4", "u1"}
	for i := len(ids); i < 10000; i++ {
		ids = append(ids, fmt.Sprintf("nobody-%d", i))
	}
	got, err := srv.grpc.FilterSubjects(ctx(t), &consentv1.FilterSubjectsRequest{Purpose: "marketing.email", SubjectIds: ids, Region: "DE"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.GetAllowedSubjectIds(), []string{"u1", "u4"}) {
		t.Fatalf("allowed = %v, want [u1 u4]", got.GetAllowedSubjectIds())
	}
	code, body, _ := srv.rest(t, "POST", "/v1/purposes/marketing.email:filterSubjects", `{"subject_ids": ["u4", "u2", "u1"]}`)
	if code != 200 || jsonPath(body, "allowed_subject_ids") != `["u4","u1"]` {
		t.Fatalf("REST filter = %d %v", code, body)
	}

	for _, tc := range []struct {
		name  string
		req   *consentv1.FilterSubjectsRequest
		field string
	}{
		{"no ids", &consentv1.FilterSubjectsRequest{Purpose: "ads"}, "subject_ids"},
		{"10,001 ids", &consentv1.FilterSubjectsRequest{Purpose: "ads", SubjectIds: append(ids, "one-too-many")}, "subject_ids"},
		{"a bad id", &consentv1.FilterSubjectsRequest{Purpose: "ads", SubjectIds: []string{"u1", "bad id"}}, "subject_ids[1]"},
		{"an unknown purpose", &consentv1.FilterSubjectsRequest{Purpose: "telepathy", SubjectIds: []string{"u1"}}, "purpose"},
		{"a bad region", &consentv1.FilterSubjectsRequest{Purpose: "ads", SubjectIds: []string{"u1"}, Region: "de"}, "region"},
	} {
		_, err := srv.grpc.FilterSubjects(ctx(t), tc.req)
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), tc.field) {
			t.Errorf("%s: %v, want InvalidArgument naming %s", tc.name, err, tc.field)
		}
	}
}
