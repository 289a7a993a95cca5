package api

import (
	"reflect"
	"testing"

	"google.golang.org/grpc/metadata"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/store"
)

// An update through the gateway records the GPC header and the browser's
// coarse facts, and grants of the necessary purpose are dropped (no-ops).
func TestUpdateConsentWrites(t *testing.T) {
	fs := newFakeStore()
	s := newTestServer(t, fs)
	ctx := metadata.NewIncomingContext(asVisitor("alice"), metadata.Pairs(
		ChannelMetadataKey, "rest", GPCMetadataKey, "1", "grpcgateway-user-agent", "Mozilla/5.0\x07"))
	_, err := s.UpdateConsent(ctx, &consentv1.UpdateConsentRequest{
		SubjectId: "alice", Decisions: map[string]bool{"necessary": true, "ads": true, "analytics": false},
		Source: consentv1.Source_SOURCE_BANNER, Region: "DE", ExpectedRevision: ptr(int64(0)), IdempotencyKey: "k1",
	})
	if err != nil {
		t.Fatal(err)
	}
	ads := domain.Decision{Granted: true, DecidedAt: testNow, ExpiresAt: testNow.AddDate(0, 0, 30), Source: domain.SourceBanner, PolicyVersion: 1, Region: "DE"}
	analytics := domain.Decision{Granted: false, DecidedAt: testNow, Source: domain.SourceBanner, PolicyVersion: 1, Region: "DE"}
	want := []store.Write{{
		SubjectID: "alice", Decisions: map[string]domain.Decision{"ads": ads, "analytics": analytics},
		Region: "DE", GPC: true, ExpectedRevision: ptr(int64(0)), IdempotencyKey: "k1", FollowLink: true, Now: testNow,
		Event: store.EventInfo{Type: domain.EventUpdate, Actor: "visitor", Source: domain.SourceBanner,
			PolicyVersion: "test-1", Channel: "rest", Client: "ua=Mozilla/5.0"},
	}}
	wantStats(t, fs.writes, store.MethodBannerOther)
	if !reflect.DeepEqual(fs.writes, want) {
		t.Errorf("writes\n%+v\nwant\n%+v", fs.writes, want)
	}
}

// Withdrawing without a list denies every non-necessary purpose.
func TestWithdrawConsentWrites(t *testing.T) {
	fs := newFakeStore()
	s := newTestServer(t, fs)
	if _, err := s.WithdrawConsent(asService(), &consentv1.WithdrawConsentRequest{SubjectId: "alice"}); err != nil {
		t.Fatal(err)
	}
	denied := func(lifetimeDays int) domain.Decision {
		d := domain.Decision{DecidedAt: testNow, Source: domain.SourceAPI, PolicyVersion: 1}
		if lifetimeDays > 0 {
			d.ExpiresAt = testNow.AddDate(0, 0, lifetimeDays)
		}
		return d
	}
	want := []store.Write{{
		SubjectID: "alice", Decisions: map[string]domain.Decision{"ads": denied(30), "analytics": denied(0)},
		FollowLink: true, Now: testNow,
		Event: store.EventInfo{Type: domain.EventWithdraw, Actor: "key:backend", Source: domain.SourceAPI, PolicyVersion: "test-1", Channel: "grpc"},
	}}
	wantStats(t, fs.writes, store.MethodAPI)
	if !reflect.DeepEqual(fs.writes, want) {
		t.Errorf("writes\n%+v\nwant\n%+v", fs.writes, want)
	}
}

// wantStats checks that the one write counts under method, with the
// policy's region labels, and clears its Stats (a func cannot be compared).
func wantStats(t *testing.T, writes []store.Write, method store.Method) {
	t.Helper()
	if len(writes) != 1 || writes[0].Stats == nil {
		t.Fatalf("writes %+v, want one with Stats", writes)
	}
	if st := writes[0].Stats; st.Method != method || st.Region("DE") != "DE" || st.Region("") != "world" {
		t.Errorf("stats: method %s, want %s", st.Method, method)
	}
	writes[0].Stats = nil
}

func TestWritesNameTheBadField(t *testing.T) {
	s := newTestServer(t, newFakeStore())
	cases := []struct {
		name  string
		call  func() error
		field string
	}{
		{"an unknown purpose", func() error {
			_, err := s.UpdateConsent(asService(), &consentv1.UpdateConsentRequest{SubjectId: "alice", Decisions: map[string]bool{"nope": true}})
			return err
		}, `decisions["nope"]`},
		{"denying the necessary purpose", func() error {
			_, err := s.UpdateConsent(asService(), &consentv1.UpdateConsentRequest{SubjectId: "alice", Decisions: map[string]bool{"necessary": false}})
			return err
		}, `decisions["necessary"]`},
		{"a negative expected revision", func() error {
			_, err := s.UpdateConsent(asService(), &consentv1.UpdateConsentRequest{SubjectId: "alice", Decisions: map[string]bool{"ads": true}, ExpectedRevision: ptr(int64(-1))})
			return err
		}, "expected_revision"},
		{"withdrawing the necessary purpose", func() error {
			_, err := s.WithdrawConsent(asService(), &consentv1.WithdrawConsentRequest{SubjectId: "alice", Purposes: []string{"ads", "necessary"}})
			return err
		}, "purposes[1]"},
		{"an idempotency key with a space", func() error {
			_, err := s.WithdrawConsent(asService(), &consentv1.WithdrawConsentRequest{SubjectId: "alice", IdempotencyKey: "a b"})
			return err
		}, "idempotency_key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantField(t, tc.call(), tc.field) })
	}
}
