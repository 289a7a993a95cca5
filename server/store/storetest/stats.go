package storetest

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/store"
)

// statsOf is how the API counts a write: a method, and region codes the
// "policy" knows (DE, FR) counted as themselves, any other as "world".
func statsOf(m store.Method) *store.WriteStats {
	return &store.WriteStats{Method: m, Region: func(code string) string {
		if code == "DE" || code == "FR" {
			return code
		}
		return "world"
	}}
}

// day reads one day's counts.
func day(t testing.TB, s *store.Store, at time.Time) store.DayStats {
	t.Helper()
	days, err := s.Stats(ctx(t), at, at)
	if err != nil || len(days) != 1 {
		t.Fatalf("Stats: %d days, %v", len(days), err)
	}
	return days[0]
}

func testStatsCountOutcomesAndMethods(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, _ := NewStore(t, client)
	// alice in DE grants ads and analytics on the banner...
	res := write(t, s, store.Write{SubjectID: "alice", Region: "DE", Decisions: decisions(t0, "ads", true, "analytics", true),
		Stats: statsOf(store.MethodBannerAcceptAll)})
	want := &store.Counted{Region: "DE", Method: store.MethodBannerAcceptAll, Decisions: []store.CountedDecision{
		{Purpose: "ads", Outcome: store.OutcomeGranted}, {Purpose: "analytics", Outcome: store.OutcomeGranted}}}
	if !reflect.DeepEqual(res.Counted, want) {
		t.Errorf("Counted = %+v, want %+v", res.Counted, want)
	}
	// ...then, with no region (her stored one applies), withdraws ads and
	// denies functional, which she had never granted, in the preference
	// center; denying ads again is a denial, not a second withdrawal.
	write(t, s, store.Write{SubjectID: "alice", Decisions: decisions(t0, "ads", false, "functional", false), Stats: statsOf(store.MethodPreferenceCenter)})
	write(t, s, store.Write{SubjectID: "alice", Decisions: decisions(t0, "ads", false), Stats: statsOf(store.MethodAPI)})
	// bob, in a region the policy does not know, counts under its fallback;
	// a write that grants analytics again after a denial is a grant.
	write(t, s, store.Write{SubjectID: "bob", Region: "JP", Decisions: decisions(t0, "analytics", false), Stats: statsOf(store.MethodGPC)})
	write(t, s, store.Write{SubjectID: "bob", Decisions: decisions(t0, "analytics", true), Stats: statsOf(store.MethodImport)})
	// A write with no decisions (a GPC signal alone) counts nothing.
	write(t, s, store.Write{SubjectID: "bob", GPC: true, Stats: statsOf(store.MethodGPC)})

	got := day(t, s, t0)
	if !got.Day.Equal(time.Date(t0.Year(), t0.Month(), t0.Day(), 0, 0, 0, 0, time.UTC)) {
		t.Errorf("day %v", got.Day)
	}
	wantDecisions := []store.DecisionCounts{
		{Purpose: "ads", Region: "DE", Granted: 1, Denied: 1, Withdrawn: 1},
		{Purpose: "analytics", Region: "DE", Granted: 1},
		{Purpose: "analytics", Region: "world", Granted: 1, Denied: 1},
		{Purpose: "functional", Region: "DE", Denied: 1},
	}
	if !reflect.DeepEqual(got.Decisions, wantDecisions) {
		t.Errorf("decisions:\n got %+v\nwant %+v", got.Decisions, wantDecisions)
	}
	wantMethods := []store.MethodCount{
		{Region: "DE", Method: store.MethodBannerAcceptAll, Count: 1},
		{Region: "DE", Method: store.MethodPreferenceCenter, Count: 1},
		{Region: "DE", Method: store.MethodAPI, Count: 1},
		{Region: "world", Method: store.MethodGPC, Count: 1},
		{Region: "world", Method: store.MethodImport, Count: 1},
	}
	if !reflect.DeepEqual(got.Methods, wantMethods) {
		t.Errorf("methods:\n got %+v\nwant %+v", got.Methods, wantMethods)
	}
}

func testStatsReplayAndStaleCountOnce(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, _ := NewStore(t, client)
	w := store.Write{SubjectID: "alice", Region: "FR", IdempotencyKey: "k1", Decisions: decisions(t0, "ads", true), Stats: statsOf(store.MethodAPI)}
	write(t, s, w)
	if res := write(t, s, w); !res.Replayed || res.Counted != nil {
		t.Errorf("a replay: replayed %v, counted %+v; want a replay that counts nothing", res.Replayed, res.Counted)
	}
	_, err := s.Write(ctx(t), store.Write{SubjectID: "alice", ExpectedRevision: ptr(7), Event: apiEvent(), Now: t0,
		Decisions: decisions(t0, "ads", false), Stats: statsOf(store.MethodAPI)})
	var conflict *store.ConflictError
	if !errors.As(err, &conflict) {
		t.Fatalf("stale write: %v, want a conflict", err)
	}
	got := day(t, s, t0)
	if want := []store.DecisionCounts{{Purpose: "ads", Region: "FR", Granted: 1}}; !reflect.DeepEqual(got.Decisions, want) {
		t.Errorf("decisions %+v, want %+v", got.Decisions, want)
	}
	if want := []store.MethodCount{{Region: "FR", Method: store.MethodAPI, Count: 1}}; !reflect.DeepEqual(got.Methods, want) {
		t.Errorf("methods %+v, want %+v", got.Methods, want)
	}
}

func testStatsOnlyDecisionsCount(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, prefix := NewStore(t, client)
	// Writes that are not a person's decisions carry no WriteStats (the API
	// gives it to updates and withdrawals only): links, statuses, access
	// events, erasure.
	write(t, s, store.Write{SubjectID: "user-1", Decisions: decisions(t0, "ads", true)})
	write(t, s, store.Write{SubjectID: visitorA, Decisions: decisions(t0, "ads", true)})
	link(t, s, visitorA, "user-1")
	write(t, s, store.Write{SubjectID: "user-1", Restrict: boolPtr(true)})
	write(t, s, store.Write{SubjectID: "user-1", Restrict: boolPtr(false)})
	write(t, s, store.Write{SubjectID: "user-1", Minor: boolPtr(true)})
	write(t, s, store.Write{SubjectID: "user-1", GuardianConfirmed: true})
	write(t, s, store.Write{SubjectID: "user-1", Event: store.EventInfo{Type: domain.EventAccess, Actor: "operator:x", Source: domain.SourceAPI, Reason: "ticket"}})
	if _, err := s.Erase(ctx(t), store.Erasure{SubjectID: "user-1", Actor: "key:ops", Channel: "grpc", Now: t0}); err != nil {
		t.Fatal(err)
	}
	if keys := scanKeys(t, client, prefix+":*:stats:*"); len(keys) != 0 {
		t.Errorf("statistics keys %q, want none", keys)
	}
	if got := day(t, s, t0); got.Decisions != nil || got.Methods != nil || got.Banner != nil {
		t.Errorf("counts %+v, want none", got)
	}
}

func testStatsKeysExpireAndHoldNoSubject(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	prefix := newPrefix()
	retention := 30 * 24 * time.Hour
	s, err := store.New(client, store.Options{Prefix: prefix, HMACKey: HMACKey, Sealer: Sealer, Partitions: 16, StatsRetention: retention})
	if err != nil {
		t.Fatal(err)
	}
	const subject = "user-4711@example.com"
	write(t, s, store.Write{SubjectID: subject, Region: "DE", Decisions: decisions(t0, "ads", true), Stats: statsOf(store.MethodBannerOther)})
	write(t, s, store.Write{SubjectID: subject, Decisions: decisions(t0, "ads", false), Stats: statsOf(store.MethodBannerOther)})
	if err := s.RecordBannerEvent(ctx(t), "DE", store.StepShown, t0); err != nil {
		t.Fatal(err)
	}
	keys := scanKeys(t, client, prefix+":*:stats:*")
	if len(keys) == 0 {
		t.Fatal("no statistics key")
	}
	state := onlyKey(t, client, prefix, ":s:")
	tag := state[strings.IndexByte(state, '{') : strings.IndexByte(state, '}')+1]
	wantKey := prefix + ":" + tag + ":stats:" + t0.Format("20060102")
	found := false
	for _, k := range keys {
		found = found || k == wantKey
		ttl, err := client.PTTL(ctx(t), k).Result()
		if err != nil || ttl <= 0 || ttl > retention {
			t.Errorf("%s: PTTL %v (%v), want within the retention %v", k, ttl, err, retention)
		}
		fields, err := client.HGetAll(ctx(t), k).Result()
		if err != nil {
			t.Fatal(err)
		}
		for f, v := range fields {
			for _, secret := range []string{subject, "user-4711", "example.com"} {
				if strings.Contains(k, secret) || strings.Contains(f, secret) || strings.Contains(v, secret) {
					t.Errorf("%s holds %q: field %q = %q", k, secret, f, v)
				}
			}
		}
	}
	if !found {
		t.Fatalf("statistics keys %q: none is %s, in the subject's partition", keys, wantKey)
	}
	if keySlot(t, client, wantKey) != keySlot(t, client, state) {
		t.Errorf("the write's statistics key %s is not in its subject's slot (%s)", wantKey, state)
	}
}

func testStatsDaysAndBannerEvents(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, _ := NewStore(t, client)
	next := t0.Add(24 * time.Hour)
	write(t, s, store.Write{SubjectID: "alice", Region: "DE", Decisions: decisions(t0, "ads", true), Stats: statsOf(store.MethodAPI)})
	write(t, s, store.Write{SubjectID: "alice", Decisions: decisions(next, "ads", false), Stats: statsOf(store.MethodAPI), Now: next})
	for range 3 {
		if err := s.RecordBannerEvent(ctx(t), "DE", store.StepShown, t0); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range []struct {
		region string
		step   store.BannerStep
	}{{"world", store.StepClosed}, {"DE", store.StepAcceptAll}, {"DE", store.StepCustomised}} {
		if err := s.RecordBannerEvent(ctx(t), e.region, e.step, t0); err != nil {
			t.Fatal(err)
		}
	}
	days, err := s.Stats(ctx(t), t0.Add(-24*time.Hour), next.Add(24*time.Hour))
	if err != nil || len(days) != 4 {
		t.Fatalf("Stats: %d days, %v; want 4", len(days), err)
	}
	for i, d := range days {
		if want := midnightOf(t0).AddDate(0, 0, i-1); !d.Day.Equal(want) {
			t.Errorf("day %d is %v, want %v", i, d.Day, want)
		}
	}
	if d := days[0]; d.Decisions != nil || d.Methods != nil || d.Banner != nil {
		t.Errorf("the day before: %+v, want nothing", d)
	}
	if want := []store.DecisionCounts{{Purpose: "ads", Region: "DE", Granted: 1}}; !reflect.DeepEqual(days[1].Decisions, want) {
		t.Errorf("first day's decisions %+v, want %+v", days[1].Decisions, want)
	}
	wantBanner := []store.BannerStepCount{
		{Region: "DE", Step: store.StepShown, Count: 3}, {Region: "DE", Step: store.StepAcceptAll, Count: 1},
		{Region: "DE", Step: store.StepCustomised, Count: 1}, {Region: "world", Step: store.StepClosed, Count: 1},
	}
	if !reflect.DeepEqual(days[1].Banner, wantBanner) {
		t.Errorf("banner:\n got %+v\nwant %+v", days[1].Banner, wantBanner)
	}
	if want := []store.DecisionCounts{{Purpose: "ads", Region: "DE", Withdrawn: 1}}; !reflect.DeepEqual(days[2].Decisions, want) {
		t.Errorf("second day's decisions %+v, want %+v", days[2].Decisions, want)
	}
	if d := days[3]; d.Decisions != nil || d.Methods != nil || d.Banner != nil {
		t.Errorf("the day after: %+v, want nothing", d)
	}
	if _, err := s.Stats(ctx(t), next, t0); err == nil {
		t.Error("a range ending before it starts: no error")
	}
	if _, err := s.Stats(ctx(t), t0, t0.AddDate(0, 0, store.MaxStatsDays)); err == nil {
		t.Error("a range one day too long: no error")
	}
}

func midnightOf(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

func testStatsFailedIncrementFailsTheWholeWrite(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, prefix := NewStore(t, client)
	write(t, s, store.Write{SubjectID: "alice", Region: "DE", Decisions: decisions(t0, "ads", true), Stats: statsOf(store.MethodAPI)})
	before := get(t, s, "alice")
	// A field the next write raises holds no number (nothing consentd
	// writes; an operator's mistake): the write fails, and writes nothing.
	keys := scanKeys(t, client, prefix+":*:stats:*")
	if len(keys) != 1 {
		t.Fatalf("statistics keys %q, want one", keys)
	}
	if err := client.HSet(ctx(t), keys[0], store.DecisionField("ads", "DE", store.OutcomeWithdrawn), "x").Err(); err != nil {
		t.Fatal(err)
	}
	_, err := s.Write(ctx(t), store.Write{SubjectID: "alice", Event: apiEvent(), Now: t0,
		Decisions: decisions(t0, "ads", false), Stats: statsOf(store.MethodAPI)})
	if err == nil {
		t.Fatal("a write whose count cannot be raised: no error")
	}
	assertUnchanged(t, s, "alice", before, 1)
	if got := client.HGet(ctx(t), keys[0], store.MethodField("DE", store.MethodAPI)).Val(); got != "1" {
		t.Errorf("the method's count is %q after the failed write, want 1", got)
	}
}
