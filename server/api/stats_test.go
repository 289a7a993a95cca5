package api

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/store"
)

func TestGetConsentStatsRange(t *testing.T) {
	day := func(s string) time.Time { d, _ := time.Parse(time.DateOnly, s); return d }
	for _, tc := range []struct {
		name, start, end string
		first, last      string
	}{
		{"default: the 30 days up to today", "", "", "2026-10-04", "2026-11-02"},
		{"only an end: the 30 days up to it", "", "2026-01-31", "2026-01-02", "2026-01-31"},
		{"only a start: up to today", "2026-11-01", "", "2026-11-01", "2026-11-02"},
		{"one day", "2026-02-03", "2026-02-03", "2026-02-03", "2026-02-03"},
		{"400 days", "2025-10-29", "2026-12-02", "2025-10-29", "2026-12-02"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFakeStore()
			res, err := newTestServer(t, fs).GetConsentStats(asService(), &consentv1.GetConsentStatsRequest{StartDay: tc.start, EndDay: tc.end})
			if err != nil {
				t.Fatal(err)
			}
			if len(fs.statsAsked) != 1 || !fs.statsAsked[0][0].Equal(day(tc.first)) || !fs.statsAsked[0][1].Equal(day(tc.last)) {
				t.Fatalf("asked the store for %v, want %s to %s", fs.statsAsked, tc.first, tc.last)
			}
			days := res.GetDays()
			if len(days) == 0 || days[0].GetDay() != tc.first || days[len(days)-1].GetDay() != tc.last {
				t.Errorf("days %v, want %s to %s", days, tc.first, tc.last)
			}
		})
	}
}

func TestGetConsentStatsBadInputNamesItsField(t *testing.T) {
	for _, tc := range []struct {
		name, start, end, field string
	}{
		{"start not a day", "2026-13-01", "", "start_day"},
		{"start in another format", "01.02.2026", "2026-02-03", "start_day"},
		{"end not a day", "", "yesterday", "end_day"},
		{"end with a time", "", "2026-02-03T00:00:00Z", "end_day"},
		{"end before start", "2026-02-03", "2026-02-02", "end_day"},
		{"start after today, the default end", "2026-11-03", "", "start_day"},
		{"401 days", "2025-10-28", "2026-12-02", "start_day"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFakeStore()
			_, err := newTestServer(t, fs).GetConsentStats(asService(), &consentv1.GetConsentStatsRequest{StartDay: tc.start, EndDay: tc.end})
			wantField(t, err, tc.field)
			if len(fs.statsAsked) != 0 {
				t.Errorf("the store was asked: %v", fs.statsAsked)
			}
		})
	}
}

func TestStatsStoreUnavailable(t *testing.T) {
	fs := newFakeStore()
	fs.err = errUnavailable
	srv := newTestServer(t, fs)
	_, err := srv.GetConsentStats(asService(), &consentv1.GetConsentStatsRequest{})
	wantStatus(t, err, codes.Unavailable, "the consent store is unavailable; retry later")
	_, err = srv.RecordBannerEvent(asVisitor("v"), &consentv1.RecordBannerEventRequest{Step: consentv1.BannerStep_BANNER_STEP_SHOWN})
	wantStatus(t, err, codes.Unavailable, "the consent store is unavailable; retry later")
}

type observed struct {
	writes []*store.Counted
	banner []store.BannerStepCount
}

func (o *observed) WriteCounted(c *store.Counted) { o.writes = append(o.writes, c) }
func (o *observed) BannerEventCounted(region string, step store.BannerStep) {
	o.banner = append(o.banner, store.BannerStepCount{Region: region, Step: step, Count: 1})
}

func TestRecordBannerEvent(t *testing.T) {
	fs := newFakeStore()
	obs := &observed{}
	srv := newTestServer(t, fs)
	WithStatsObserver(obs)(srv)
	for _, req := range []*consentv1.RecordBannerEventRequest{
		{Step: consentv1.BannerStep_BANNER_STEP_SHOWN, Region: "DE"},
		{Step: consentv1.BannerStep_BANNER_STEP_ACCEPT_ALL, Region: "DE-BY"}, // its country is listed
		{Step: consentv1.BannerStep_BANNER_STEP_CLOSED, Region: "JP"},        // unknown: the default region
		{Step: consentv1.BannerStep_BANNER_STEP_CUSTOMISED},                  // none: the default region
	} {
		if _, err := srv.RecordBannerEvent(asVisitor("v"), req); err != nil {
			t.Fatalf("%v: %v", req, err)
		}
	}
	want := []store.BannerStepCount{
		{Region: "DE", Step: store.StepShown, Count: 1}, {Region: "DE", Step: store.StepAcceptAll, Count: 1},
		{Region: "world", Step: store.StepClosed, Count: 1}, {Region: "world", Step: store.StepCustomised, Count: 1},
	}
	if !slices.Equal(fs.banner, want) || !slices.Equal(obs.banner, want) {
		t.Errorf("stored %v, observed %v; want %v", fs.banner, obs.banner, want)
	}
	res, err := srv.GetConsentStats(asService(), &consentv1.GetConsentStatsRequest{StartDay: "2026-11-02"})
	if err != nil || len(res.GetDays()) != 1 || len(res.GetDays()[0].GetBanner()) != 4 ||
		res.GetDays()[0].GetBanner()[2].GetStep() != consentv1.BannerStep_BANNER_STEP_CLOSED {
		t.Errorf("GetConsentStats = %v, %v", res, err)
	}

	for _, tc := range []struct {
		name  string
		req   *consentv1.RecordBannerEventRequest
		field string
	}{
		{"no step", &consentv1.RecordBannerEventRequest{Region: "DE"}, "step"},
		{"unknown step", &consentv1.RecordBannerEventRequest{Step: 99}, "step"},
		{"lower-case region", &consentv1.RecordBannerEventRequest{Step: consentv1.BannerStep_BANNER_STEP_SHOWN, Region: "de"}, "region"},
		{"region with a separator", &consentv1.RecordBannerEventRequest{Step: consentv1.BannerStep_BANNER_STEP_SHOWN, Region: "DE|x"}, "region"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(fs.banner)
			_, err := srv.RecordBannerEvent(asVisitor("v"), tc.req)
			wantField(t, err, tc.field)
			if len(fs.banner) != before {
				t.Error("a refused event was stored")
			}
		})
	}
}

func TestWritesCountUnderTheirMethodAndRegion(t *testing.T) {
	p, err := domain.ParsePolicy([]byte(testPolicy))
	if err != nil {
		t.Fatal(err)
	}
	all := func(granted bool) map[string]domain.Decision {
		return map[string]domain.Decision{"ads": {Granted: granted}, "analytics": {Granted: granted}}
	}
	mixed := map[string]domain.Decision{"ads": {Granted: true}, "analytics": {Granted: false}}
	some := map[string]domain.Decision{"ads": {Granted: true}}
	for _, tc := range []struct {
		source    domain.Source
		decisions map[string]domain.Decision
		want      store.Method
	}{
		{domain.SourceBanner, all(true), store.MethodBannerAcceptAll},
		{domain.SourceBanner, all(false), store.MethodBannerRejectAll},
		{domain.SourceBanner, mixed, store.MethodBannerOther},
		{domain.SourceBanner, some, store.MethodBannerAcceptAll}, // every purpose the banner asked about
		{domain.SourcePreferenceCenter, all(true), store.MethodPreferenceCenter},
		{domain.SourceAPI, all(true), store.MethodAPI},
		{"", some, store.MethodAPI},
		{domain.SourceGPC, all(false), store.MethodGPC},
		{domain.SourceImport, mixed, store.MethodImport},
	} {
		if got := writeStats(p, tc.source, tc.decisions); got.Method != tc.want || got.Region("DE") != "DE" || got.Region("FR") != "world" {
			t.Errorf("%s %v: method %s, want %s", tc.source, tc.decisions, got.Method, tc.want)
		}
	}

	// Updates and withdrawals carry it; statuses and links do not.
	fs := newFakeStore()
	srv := newTestServer(t, fs)
	if _, err := srv.UpdateConsent(asService(), &consentv1.UpdateConsentRequest{SubjectId: "alice", Source: consentv1.Source_SOURCE_BANNER,
		Decisions: map[string]bool{"ads": true, "analytics": true, "necessary": true}}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.WithdrawConsent(asService(), &consentv1.WithdrawConsentRequest{SubjectId: "alice", Source: consentv1.Source_SOURCE_BANNER}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.RestrictProcessing(asService(), &consentv1.RestrictProcessingRequest{SubjectId: "alice", Reason: "ticket"}); err != nil {
		t.Fatal(err)
	}
	var methods []store.Method
	for _, w := range fs.writesTo("alice") {
		if w.Stats != nil {
			methods = append(methods, w.Stats.Method)
		}
	}
	if !slices.Equal(methods, []store.Method{store.MethodBannerAcceptAll, store.MethodBannerRejectAll}) {
		t.Errorf("writes counted %v, want accept all then reject all, and the restriction nothing", methods)
	}
}
