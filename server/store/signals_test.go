package store_test

import (
	"testing"
	"time"

	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/internal/redistest"
	"github.com/consentd/consentd/server/store"
	"github.com/consentd/consentd/server/store/storetest"
)

// Strings of the shape the IAB's libraries make (see server/domain's
// tests for how): the store keeps them byte for byte.
const (
	testTC  = "CQukyOAQukyOAEsABAENCWFgAMAAAAAAAAYgF5wAgAAgLzAAAAAA.IAAA.YAAAAAAAAAAA"
	testGPP = "DBABMA~CQukyOAQukyOAEsABAENCWFgAMAAAAAAAAYgF5wAgAAgLzAAAAAA.IAAA.YAAAAAAAAAAA"
)

func signalsWrite(subject string, forRevision int64, key string) store.Write {
	return store.Write{
		SubjectID: subject, ExpectedRevision: &forRevision, IdempotencyKey: key,
		Signals: &domain.AdSignals{Region: "DE", Revision: forRevision, TCString: testTC, GPPString: testGPP},
		Event:   store.EventInfo{Type: domain.EventSignals, Actor: "visitor", Source: domain.SourceAPI, Channel: "rest"},
	}
}

func TestSignalsEventsAreStoredChainedAndLeftOutOfTheFeed(t *testing.T) {
	client := redistest.Start(t).Client(t)
	s, prefix := storetest.NewStore(t, client)
	ctx := t.Context()
	if _, err := s.Write(ctx, update("sig", true)); err != nil {
		t.Fatal(err)
	}
	_, before := feedEntries(t, client, prefix)

	res, err := s.Write(ctx, signalsWrite("sig", 1, "k1"))
	if err != nil {
		t.Fatal(err)
	}
	sig := res.Record.Signals
	if res.Record.Revision != 2 || sig == nil || sig.Revision != 1 || sig.EventRevision != 2 || sig.Region != "DE" ||
		sig.TCString != testTC || sig.GPPString != testGPP || sig.At.IsZero() || res.Counted != nil {
		t.Fatalf("after the signals write: revision %d, signals %+v, counted %v", res.Record.Revision, sig, res.Counted)
	}
	// Read back: Get holds them; a check's read only when asked.
	rec, err := s.Get(ctx, "sig")
	if err != nil || rec.Signals == nil || *rec.Signals != *sig {
		t.Fatalf("Get: %+v %v", rec.Signals, err)
	}
	if rec, _ := s.GetPurposes(ctx, "sig", []string{"analytics"}); rec.Signals != nil {
		t.Errorf("a check's read got the signals unasked: %+v", rec.Signals)
	}
	recs, err := s.GetMany(ctx, []store.Lookup{{SubjectID: "sig", Purposes: []string{"analytics"}, Signals: true}, {SubjectID: "sig", Purposes: []string{"analytics"}}})
	if err != nil || recs[0].Signals == nil || recs[0].Signals.TCString != testTC || recs[1].Signals != nil {
		t.Errorf("GetMany: %+v %v", recs, err)
	}

	// A retry with the key replays; another request with it is refused.
	if again, err := s.Write(ctx, signalsWrite("sig", 1, "k1")); err != nil || !again.Replayed || again.Record.Revision != 2 {
		t.Errorf("retry: %+v %v", again, err)
	}
	other := signalsWrite("sig", 1, "k1")
	other.Signals.TCString = "CQ"
	if _, err := s.Write(ctx, other); err != store.ErrIdempotencyMismatch {
		t.Errorf("another request with the key: %v", err)
	}
	// The subject's revision moved on: a conflict.
	var conflict *store.ConflictError
	if _, err := s.Write(ctx, signalsWrite("sig", 1, "")); !asConflict(err, &conflict) || conflict.Current != 2 {
		t.Errorf("stale revision: %v", err)
	}

	// The history has the strings, in the hash chain.
	events, err := s.Events(ctx, "sig", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	e := events[0]
	if e.Type != domain.EventSignals || e.Revision != 2 || e.Signals == nil || e.Signals.TCString != testTC || e.Signals.GPPString != testGPP ||
		e.Signals.Revision != 1 || e.Signals.Region != "DE" || !e.Keyed || e.OptOut() {
		t.Errorf("signals event: %+v", e)
	}
	if err := s.VerifyChain(ctx, "sig"); err != nil {
		t.Errorf("chain: %v", err)
	}
	if all, one, _ := verified(t, s, "sig", true); len(all)+len(one) != 0 {
		t.Errorf("verify: %v %v", all, one)
	}
	// Not in the change feed.
	if _, after := feedEntries(t, client, prefix); len(after) != len(before) {
		t.Errorf("feed entries %d -> %d: a signals event went to the feed", len(before), len(after))
	}

	// A later write leaves them in place, with their old event revision:
	// stale (domain.Policy.CurrentAdSignals says so).
	w := update("sig", false)
	w.Now = time.Now()
	res, err = s.Write(ctx, w)
	if err != nil || res.Record.Revision != 3 || res.Record.Signals == nil || res.Record.Signals.EventRevision != 2 {
		t.Errorf("after a later write: %+v %v", res.Record, err)
	}
	// A string holding '|' would break the state field: refused.
	bad := signalsWrite("sig", 3, "")
	bad.Signals.GPPString = "a|b"
	if _, err := s.Write(ctx, bad); err == nil {
		t.Error("a '|' in a string was written")
	}
}

func asConflict(err error, target **store.ConflictError) bool {
	c, ok := err.(*store.ConflictError)
	if ok {
		*target = c
	}
	return ok
}
