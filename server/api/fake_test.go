package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/consentd/consentd/server/auth"
	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/store"
)

// fakeStore is an in-memory api.Store for handler tests: enough of the real
// store's semantics (revisions, expected revisions, following a visitor's
// link, the linked visitors an erasure reports) for the handlers' own logic
// to be tested. The store itself is tested against real Redis only.
type fakeStore struct {
	mu       sync.Mutex
	records  map[string]domain.Record
	visitors map[string][]string      // user -> visitors a link write named (Write.LinkedVisitor)
	events   map[string][]store.Event // subject -> history (not kept by Write)

	// err, when set, fails every call, as a store that cannot be reached.
	err error
	// writeErr, when set, is asked before each Write is applied; an error
	// it returns is the write's.
	writeErr func(w store.Write) error

	writes []store.Write // every Write asked for, in order
	erased []string      // every subject Erase was asked for, in order

	banner     []store.BannerStepCount // every banner event, Count 1 each
	statsAsked [][2]time.Time          // every range Stats was asked for
}

var _ Store = (*fakeStore)(nil)

func newFakeStore() *fakeStore {
	return &fakeStore{records: map[string]domain.Record{}, visitors: map[string][]string{}, events: map[string][]store.Event{}}
}

// put stores rec as subject id's record, as earlier writes would have.
func (f *fakeStore) put(id string, rec domain.Record) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.records[id] = rec
}

func (f *fakeStore) own(id string) domain.Record {
	rec := f.records[id]
	rec.Decisions = maps.Clone(rec.Decisions)
	return rec
}

func (f *fakeStore) Get(_ context.Context, id string) (domain.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return domain.Record{}, f.err
	}
	rec := f.own(id)
	if rec.LinkedTo != "" {
		rec = f.own(rec.LinkedTo)
		rec.Linked = true
	}
	return rec, nil
}

func (f *fakeStore) GetOwn(_ context.Context, id string) (domain.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return domain.Record{}, f.err
	}
	return f.own(id), nil
}

func (f *fakeStore) GetPurposes(ctx context.Context, id string, purposes []string) (domain.Record, error) {
	rec, err := f.Get(ctx, id)
	maps.DeleteFunc(rec.Decisions, func(p string, _ domain.Decision) bool { return !slices.Contains(purposes, p) })
	return rec, err
}

func (f *fakeStore) GetMany(ctx context.Context, lookups []store.Lookup) ([]domain.Record, error) {
	out := make([]domain.Record, len(lookups))
	for i, l := range lookups {
		rec, err := f.GetPurposes(ctx, l.SubjectID, l.Purposes)
		if err != nil {
			return nil, err
		}
		out[i] = rec
	}
	return out, nil
}

func (f *fakeStore) Write(_ context.Context, w store.Write) (store.WriteResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes = append(f.writes, w)
	if f.err != nil {
		return store.WriteResult{}, f.err
	}
	if f.writeErr != nil {
		if err := f.writeErr(w); err != nil {
			return store.WriteResult{}, err
		}
	}
	id, linked := w.SubjectID, false
	if to := f.records[id].LinkedTo; w.FollowLink && to != "" {
		id, linked = to, true
	}
	rec := f.own(id)
	if w.ExpectedRevision != nil && *w.ExpectedRevision != rec.Revision {
		return store.WriteResult{}, &store.ConflictError{Expected: *w.ExpectedRevision, Current: rec.Revision}
	}
	before := rec.Revision
	rec.Revision++
	for p, d := range w.Decisions {
		if rec.Decisions == nil {
			rec.Decisions = map[string]domain.Decision{}
		}
		d.Revision = rec.Revision
		rec.Decisions[p] = d
	}
	if w.Region != "" {
		rec.Region = w.Region
	}
	if w.GPC && rec.GPCSeenAt.IsZero() {
		rec.GPCSeenAt = w.Now
	}
	if !w.GPCAt.IsZero() {
		rec.GPCSeenAt = w.GPCAt
	}
	if w.Restrict != nil {
		rec.RestrictedAt = time.Time{}
		if *w.Restrict {
			rec.RestrictedAt = w.Now
		}
	}
	if w.Minor != nil {
		rec.MinorSince, rec.GuardianAt, rec.GuardianRevision = time.Time{}, time.Time{}, 0
		if *w.Minor {
			rec.MinorSince = w.Now
		}
	}
	if w.GuardianConfirmed {
		rec.GuardianAt, rec.GuardianRevision = w.Now, before
	}
	if w.LinkTo != "" {
		rec.LinkedTo = w.LinkTo
	}
	if w.LinkedVisitor != "" && !slices.Contains(f.visitors[id], w.LinkedVisitor) {
		f.visitors[id] = append(f.visitors[id], w.LinkedVisitor)
	}
	f.records[id] = rec
	rec = f.own(id)
	rec.Linked = linked
	return store.WriteResult{Record: rec}, nil
}

func (f *fakeStore) Events(_ context.Context, id string, _ int64, limit int) ([]store.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return f.events[id][:min(limit, len(f.events[id]))], nil
}

func (f *fakeStore) History(_ context.Context, id string) (store.History, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return store.History{}, f.err
	}
	return store.History{Events: f.events[id], Checked: len(f.events[id])}, nil
}

func (f *fakeStore) VerifySubject(context.Context, string, store.VerifyOptions) (store.VerifyReport, error) {
	return store.VerifyReport{}, f.err
}

func (f *fakeStore) Erase(_ context.Context, e store.Erasure) (store.EraseResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.erased = append(f.erased, e.SubjectID)
	if f.err != nil {
		return store.EraseResult{}, f.err
	}
	_, existed := f.records[e.SubjectID]
	res := store.EraseResult{Erased: existed, LinkedVisitors: f.visitors[e.SubjectID]}
	delete(f.records, e.SubjectID)
	delete(f.visitors, e.SubjectID)
	return res, nil
}

// writesTo returns the writes asked for subject id, in order.
func (f *fakeStore) RecordBannerEvent(_ context.Context, region string, step store.BannerStep, _ time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.banner = append(f.banner, store.BannerStepCount{Region: region, Step: step, Count: 1})
	return nil
}

// Stats answers every day of the range empty, but for the banner events
// recorded, counted on the first day.
func (f *fakeStore) Stats(_ context.Context, first, last time.Time) ([]store.DayStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statsAsked = append(f.statsAsked, [2]time.Time{first, last})
	if f.err != nil {
		return nil, f.err
	}
	var out []store.DayStats
	for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
		out = append(out, store.DayStats{Day: d})
	}
	if len(out) > 0 {
		out[0].Banner = slices.Clone(f.banner)
	}
	return out, nil
}

func (f *fakeStore) writesTo(id string) []store.Write {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []store.Write
	for _, w := range f.writes {
		if w.SubjectID == id {
			out = append(out, w)
		}
	}
	return out
}

// testPolicy: a necessary purpose, a GPC purpose and a plain one; an opt-in
// region (DE) and an opt-out default.
const testPolicy = `
version: test-1
default_region: world
purposes:
  - {id: necessary, version: 1, necessary: true, legal_basis: contract, titles: {en: N}, descriptions: {en: N}}
  - {id: ads, version: 1, gpc: true, legal_basis: consent, lifetime: 30d, titles: {en: A}, descriptions: {en: A}}
  - {id: analytics, version: 1, legal_basis: consent, titles: {en: S}, descriptions: {en: S}}
regions:
  - {id: eea, mechanism: opt_in, codes: [DE]}
  - {id: world, mechanism: opt_out}
`

// testNow is the fixed clock of every test server.
var testNow = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

func newTestServer(t *testing.T, fs *fakeStore) *Server {
	t.Helper()
	p, err := domain.ParsePolicy([]byte(testPolicy))
	if err != nil {
		t.Fatalf("test policy: %v", err)
	}
	return New(fs, func() *domain.Policy { return p },
		WithClock(func() time.Time { return testNow }),
		WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
}

// asService is the context of a call made with API key "backend", as the
// auth interceptor leaves it for the handler.
func asService() context.Context {
	return auth.WithPrincipal(context.Background(), auth.Principal{
		Kind: auth.Service, Name: "backend", Scopes: map[auth.Scope]bool{auth.ScopeAdmin: true},
	})
}

// asVisitor is the context of a call made with subject's token.
func asVisitor(subject string) context.Context {
	return auth.WithPrincipal(context.Background(), auth.Principal{Kind: auth.Visitor, Name: "visitor", Subject: subject})
}

// errUnavailable is what the store returns when Redis cannot serve: wrapped,
// as the store wraps it.
var errUnavailable = fmt.Errorf("store: get: %w: %w", store.ErrUnavailable, errors.New("dial tcp: connection refused"))

// wantStatus fails unless err is a status with code and message.
func wantStatus(t *testing.T, err error, code codes.Code, msg string) *status.Status {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("error %v is not a gRPC status", err)
	}
	if st.Code() != code || st.Message() != msg {
		t.Errorf("status = %s %q, want %s %q", st.Code(), st.Message(), code, msg)
	}
	return st
}

// wantField fails unless err is InvalidArgument with one field violation
// naming field.
func wantField(t *testing.T, err error, field string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("status = %s %q, want InvalidArgument", st.Code(), st.Message())
	}
	if got := violations(st); len(got) != 1 || got[0].GetField() != field {
		t.Errorf("field violations = %v, want one on %q", got, field)
	}
}

func violations(st *status.Status) []*errdetails.BadRequest_FieldViolation {
	var out []*errdetails.BadRequest_FieldViolation
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			out = append(out, br.GetFieldViolations()...)
		}
	}
	return out
}

func errorInfos(st *status.Status) []*errdetails.ErrorInfo {
	var out []*errdetails.ErrorInfo
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			out = append(out, info)
		}
	}
	return out
}

func ptr[T any](v T) *T { return &v }
