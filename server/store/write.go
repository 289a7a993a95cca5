package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/consentd/consentd/server/domain"
)

// EventInfo describes who wrote, how and why; it goes into the history event.
type EventInfo struct {
	Type          domain.EventType
	Actor         string        // who wrote: "visitor", a service key name, "operator:<name>"
	Source        domain.Source // how the subject expressed the choice
	PolicyVersion string        // the policy file's version label
	Channel       string        // "grpc" or "rest" (stored as a letter, see eventHead)
	Reason        string        // why an operator accessed the data (access events)
	// Client is coarse facts about the client that made the choice (the
	// browser's user agent and platform hints; never an IP). It is sealed
	// with the active encryption key before it is stored.
	Client string
	// Counterpart is the other subject of a link event; sealed.
	Counterpart string
	// Guardian is who confirmed a minor's decisions; sealed.
	Guardian string
	// Minor: a mark-minor event's new status.
	Minor *bool
}

// Write is one change to a subject's decisions or statuses.
type Write struct {
	SubjectID string
	// Decisions are the purposes to set; other purposes are left as they are.
	Decisions map[string]domain.Decision
	// Region is the region code to remember on the subject; "" keeps the
	// stored one.
	Region string
	// GPC: the request carried a Global Privacy Control signal. The first
	// time one is seen is remembered and never overwritten.
	GPC bool
	// ExpectedRevision: nil accepts any; otherwise the write applies only if
	// it equals the stored revision (0: the subject was never written).
	ExpectedRevision *int64
	// IdempotencyKey: "" for none. A write retried with the same key (within
	// Options.IdempotencyTTL) applies once and returns the first result; the
	// same key with a different request is ErrIdempotencyMismatch.
	IdempotencyKey string
	Event          EventInfo
	Now            time.Time // the write's time; zero: time.Now()

	// Status changes; the zero value changes nothing.
	Restrict *bool // true: restricted from Now on; false: lifted
	Minor    *bool // true: a minor from Now on; false: the mark and any guardian confirmation cleared
	// GuardianConfirmed: a guardian confirmed the decisions at Now. The
	// confirmation covers the decisions stored when the write applies (the
	// revision before it, recorded atomically): set ExpectedRevision to the
	// revision the guardian was shown, so that it covers exactly those.
	GuardianConfirmed bool
	GPCAt             time.Time // sets the GPC time to this (a link merge), unlike GPC, even if one is stored
	LinkTo            string    // this visitor is linked to the user LinkTo: its reads and writes follow
	// LinkedVisitor: the visitor LinkedVisitor is linked to this user. The
	// user's data key record keeps it (see dataKey), so that erasing the
	// user finds the visitor whatever the history's retention.
	LinkedVisitor string
	// FollowLink: if the subject is a visitor linked to a user, write to the
	// user's record instead (decisions made through the visitor's token
	// after the link belong to the user).
	FollowLink bool
	// Signals: the IAB strings to record (a signals event); they become the
	// subject's current signals, with the revision the write gets. Region
	// and Revision are what they were made for; At is the write's Now.
	Signals *domain.AdSignals
	// Stats: how the write counts in the day's statistics (stats.go),
	// atomically with the write; nil counts nothing (writes that are not a
	// person's decisions: links, statuses, access events).
	Stats *WriteStats
}

// WriteResult is the outcome of a Write.
type WriteResult struct {
	// Record is the full state right after the write; for a replay, the state
	// stored with the idempotency key (later writes are not in it). Linked is
	// set when the write followed a visitor's link to its user.
	Record domain.Record
	// Replayed: the idempotency key had been used; nothing was written.
	Replayed bool
	// Counted is what the write counted in the day's statistics; nil when
	// it counted nothing (no Write.Stats, no decisions, or a replay).
	Counted *Counted
}

// feedTrimEvery: one write in feedTrimEvery (counted across the process)
// trims its partition's feed. The trim is approximate (MINID ~): Redis drops
// only whole stream nodes, about a dozen entries each, once all of a node is
// older than Options.FeedRetention, so a trim on every write mostly finds
// nothing to do, and looking cost ~5% of the write script's time in Redis.
// A partition's old entries now go a few of its writes later: on a busy
// partition milliseconds, on a quiet one as long as its next few writes take
// (approximate trimming already kept up to a node's worth longer).
const feedTrimEvery = 8

var feedWrites atomic.Uint32

// maxWriteAttempts bounds how often a write is computed again because the
// subject changed between its read and its write (concurrent writers to one
// subject): each round lets at least one of them through.
const maxWriteAttempts = 1000

// Write applies w atomically and returns the state right after it. With
// FollowLink, a write to a linked visitor is applied to its user instead.
func (s *Store) Write(ctx context.Context, w Write) (WriteResult, error) {
	res, link, err := s.write(ctx, w)
	if err != nil || link == "" {
		return res, err
	}
	user, err := s.opts.Sealer.Open(link)
	if err != nil {
		return WriteResult{}, fmt.Errorf("store: a visitor's link cannot be opened with the known encryption keys: %w", err)
	}
	w.SubjectID = string(user)
	w.FollowLink = false // users are never linked: one hop
	res, _, err = s.write(ctx, w)
	res.Record.Linked = true
	return res, err
}

// readForWrite is what read_for_write.lua read.
type readForWrite struct {
	names   int               // index in knownKeysFor of the names holding the data
	state   map[string]string // the state hash
	last    string            // the previous event's hash; "" for none
	tail    []string          // the history's last two events, or fewer
	wrapped string            // the wrapped data key; "" for none
	idem    string            // the idempotency record; "" for none
	now     int64             // Redis' clock, unix ms
}

func (s *Store) readForWrite(ctx context.Context, known []subjectKeys, idemField string) (readForWrite, error) {
	reply, err := s.runScript(ctx, readForWriteScript, readForWriteArgs{known: known, idemField: idemField}.call()).Slice()
	if err != nil {
		return readForWrite{}, wrapErr("write", err)
	}
	if len(reply) != 6 {
		return readForWrite{}, errors.New("store: write: unexpected read reply")
	}
	var r readForWrite
	names, _ := reply[0].(int64)
	r.names = int(names) - 1
	if r.names < 0 || r.names >= len(known) {
		return readForWrite{}, errors.New("store: write: unexpected read reply")
	}
	if r.state, err = pairsToMap(reply[1]); err != nil {
		return readForWrite{}, err
	}
	tail, _ := reply[2].([]any)
	for _, e := range tail {
		event, _ := e.(string)
		r.tail = append(r.tail, event)
	}
	if n := len(r.tail); n > 0 {
		r.last = hashOf(r.tail[n-1])
	}
	r.wrapped, _ = reply[3].(string)
	r.idem, _ = reply[4].(string)
	r.now, _ = reply[5].(int64)
	return r, nil
}

// idempotencyRecord is what write.lua stores per idempotency key.
type idempotencyRecord struct {
	Fingerprint string   `json:"f"`
	State       []string `json:"s"` // the state hash right after the write, as HGETALL returns it
	Expires     int64    `json:"x"` // unix ms, Redis' clock
}

// A write takes two scripts, each one round trip: read_for_write.lua reads
// what the write depends on, Go computes the write whole (the new state's
// fields, the complete history event with its hash, the feed entry, the
// integrity tag; see integrity.go) and write.lua applies it if the subject's
// revision is still the one read, else the write is computed again from a
// new read. The tags and the event hash are keyed MACs made with the
// operator's keys, which never go to Redis: that is why the write is
// computed in Go, not in a script.

// writePlan is what a write needs that does not depend on what it reads:
// computed once, before the first attempt.
type writePlan struct {
	purposes   []string // of w.Decisions, sorted (the event's "o" follows this order)
	encoded    []string // the purposes' stored values without the revision
	head       string   // the event's plain part (see eventHead)
	personal   []byte   // the event's personal part; nil for none
	known      []subjectKeys
	idemField  string // "" for none
	fp         string // the request's fingerprint, with an idempotency key
	minID      any    // write.lua's feed MINID (writeArgs.minID)
	stats      string // the day's statistics hash of the subject's partition
	stateTTL   time.Duration
	historyTTL time.Duration
}

// write computes and applies one write. link is the sealed user id when the
// subject is a linked visitor and w.FollowLink is set; nothing was written
// then.
func (s *Store) write(ctx context.Context, w Write) (res WriteResult, link string, err error) {
	if w.Now.IsZero() {
		w.Now = time.Now()
	}
	plan, err := s.planWrite(w)
	if err != nil {
		return WriteResult{}, "", err
	}
	for attempt := 1; ; attempt++ {
		read, err := s.readForWrite(ctx, plan.known, plan.idemField)
		if err != nil {
			return WriteResult{}, "", err
		}
		if res, replayed, err := s.replay(read, plan.fp); replayed || err != nil {
			return res, "", err
		}
		if lnk := read.state[fieldLink]; w.FollowLink && lnk != "" {
			return WriteResult{}, lnk, nil
		}
		current := int64(0)
		if v, ok := read.state[fieldRevision]; ok {
			if current, err = strconv.ParseInt(v, 10, 64); err != nil {
				return WriteResult{}, "", fmt.Errorf("%w: field %q", errCorrupt, fieldRevision)
			}
		}
		if w.ExpectedRevision != nil && *w.ExpectedRevision != current {
			return WriteResult{}, "", &ConflictError{Expected: *w.ExpectedRevision, Current: current}
		}
		state, counted, applied, err := s.applyWrite(ctx, w, plan, read, current)
		if err != nil {
			return WriteResult{}, "", err
		}
		if applied {
			rec, err := decodeRecord(state, s.opts.Sealer)
			return WriteResult{Record: rec, Counted: counted}, "", err
		}
		if err := collided(ctx, attempt); err != nil {
			return WriteResult{}, "", err
		}
	}
}

// planWrite checks w and computes what does not depend on the stored state.
func (s *Store) planWrite(w Write) (writePlan, error) {
	if w.SubjectID == "" {
		return writePlan{}, errors.New("store: empty subject id")
	}
	if w.Event.Type == "" {
		return writePlan{}, errors.New("store: event type is required")
	}
	if w.Signals != nil {
		if err := checkSignals(w.Signals); err != nil {
			return writePlan{}, err
		}
	}
	var p writePlan
	p.purposes = make([]string, 0, len(w.Decisions))
	for purpose := range w.Decisions {
		if err := checkPurposeID(purpose); err != nil {
			return writePlan{}, err
		}
		p.purposes = append(p.purposes, purpose)
	}
	slices.Sort(p.purposes)
	p.encoded = make([]string, len(p.purposes))
	for i, purpose := range p.purposes {
		var err error
		if p.encoded[i], err = encodeDecision(w.Decisions[purpose]); err != nil {
			return writePlan{}, fmt.Errorf("%w (purpose %q)", err, purpose)
		}
	}
	var err error
	if p.head, p.personal, err = s.eventParts(w); err != nil {
		return writePlan{}, err
	}
	p.known = s.knownKeysFor(w.SubjectID)
	p.stats = s.statsKey(s.partitionOf(w.SubjectID), statsDay(w.Now))
	if w.IdempotencyKey != "" {
		p.fp, p.idemField = fingerprint(w), idempotencyField(w.IdempotencyKey)
	}
	p.minID = 0 // a feed entry, no trimming
	if !w.Event.Type.InFeed() {
		p.minID = ""
	} else if feedWrites.Add(1)%feedTrimEvery == 0 {
		p.minID = max(w.Now.UnixMilli()-s.opts.FeedRetention.Milliseconds(), 0)
	}
	p.stateTTL, p.historyTTL = s.retention(w.SubjectID)
	return p, nil
}

// replay answers a write whose idempotency key was used (replayed): with
// the state stored with the key, or ErrIdempotencyMismatch for another
// request. An expired record is no answer.
func (s *Store) replay(read readForWrite, fp string) (res WriteResult, replayed bool, err error) {
	if read.idem == "" {
		return WriteResult{}, false, nil
	}
	var rec idempotencyRecord
	if err := json.Unmarshal([]byte(read.idem), &rec); err != nil {
		return WriteResult{}, false, fmt.Errorf("%w: idempotency record: %v", errCorrupt, err)
	}
	if rec.Expires <= read.now {
		return WriteResult{}, false, nil
	}
	if rec.Fingerprint != fp {
		return WriteResult{}, false, ErrIdempotencyMismatch
	}
	fields, err := pairsToMap(stringsToAny(rec.State))
	if err != nil {
		return WriteResult{}, false, err
	}
	r, err := decodeRecord(fields, s.opts.Sealer)
	return WriteResult{Record: r, Replayed: true}, true, err
}

// applyWrite computes the write on what was read (at revision current) and
// runs write.lua. applied is false when the subject changed since the read;
// state is the state hash the write leaves, counted what it counted in the
// day's statistics (in the same script).
func (s *Store) applyWrite(ctx context.Context, w Write, plan writePlan, read readForWrite, current int64) (state map[string]string, counted *Counted, applied bool, err error) {
	dk, wrapped, err := s.writeDataKey(w, read)
	if err != nil {
		return nil, nil, false, err
	}
	statsFields, counted := countWrite(w, plan, read)
	rev := strconv.FormatInt(current+1, 10)
	next := s.nextState(w, plan, read, current, rev, dk.handle)
	sealed := ""
	if plan.personal != nil {
		sealed = dk.seal(plan.personal)
	}
	args := writeArgs{
		to: plan.known[0], dataKey: dataKeyName(plan.known[0].base, dk.handle),
		expected: strconv.FormatInt(current, 10) + "|" + read.state[fieldDataKey],
		event:    s.completeEvent(w.SubjectID, plan.head, rev, sealed, next.old, read.last),
		minID:    plan.minID, rev: rev, handle: dk.handle, sealedSubject: dk.seal([]byte(w.SubjectID)), prevHash: read.last,
		stateTTL: plan.stateTTL.Milliseconds(), historyTTL: plan.historyTTL.Milliseconds(), wrapped: wrapped,
		idemField: plan.idemField, fingerprint: plan.fp, idemTTL: s.opts.IdempotencyTTL.Milliseconds(),
		set: next.set, del: next.del,
		stats: plan.stats, statsTTL: s.opts.StatsRetention.Milliseconds(), statsFields: statsFields,
	}
	if read.names > 0 {
		args.from = &plan.known[read.names]
	}
	reply, err := s.runScript(ctx, writeScript, args.call()).Slice()
	if err != nil {
		return nil, nil, false, wrapErr("write", err)
	}
	switch code, _ := reply[0].(int64); code {
	case writeApplied:
		return next.state, counted, true, nil
	case writeStale:
		return nil, nil, false, nil
	}
	return nil, nil, false, errors.New("store: write: unexpected script reply")
}

// collided waits before a write is computed again after the subject changed
// under it, or gives up after maxWriteAttempts. A random pause, growing with
// the attempts, spreads writers that collided so the next read-and-write
// finds the subject quiet (without it, a few dozen writers on one subject
// keep colliding).
func collided(ctx context.Context, attempt int) error {
	if attempt == maxWriteAttempts {
		return fmt.Errorf("store: write: %w: the subject changed %d times while this write was computed", ErrUnavailable, attempt)
	}
	pause := time.Duration(rand.Int64N(int64(min(attempt, 20)) * int64(100*time.Microsecond)))
	select {
	case <-ctx.Done():
		return wrapErr("write", ctx.Err())
	case <-time.After(pause):
		return nil
	}
}

// retention is how long a subject's state hash and history list live after
// its last write; 0: no expiry. Anonymous visitors' records expire after
// Options.VisitorRetention; users' records are kept until erased, and their
// history for Options.HistoryRetention (0: as long as the record).
func (s *Store) retention(subjectID string) (state, history time.Duration) {
	history = s.opts.HistoryRetention
	if domain.IsVisitorID(subjectID) {
		state = s.opts.VisitorRetention
		if history == 0 || history > state {
			history = state
		}
	}
	return state, history
}

// fingerprint identifies a request for its idempotency key: what it asks to
// change, not when (a retry comes later) nor through which channel.
func fingerprint(w Write) string {
	granted := make(map[string]bool, len(w.Decisions))
	for p, d := range w.Decisions {
		granted[p] = d.Granted
	}
	canonical := struct {
		Decisions map[string]bool  `json:"d"` // encoded with sorted keys
		Region    string           `json:"r"`
		GPC       bool             `json:"g"`
		Expected  *int64           `json:"e"`
		Type      domain.EventType `json:"t"`
		Source    domain.Source    `json:"s"`
		Actor     string           `json:"a"`
		Signals   *eventSignals    `json:"sig,omitempty"` // absent but for signals events: older keys keep their fingerprints
	}{granted, w.Region, w.GPC, w.ExpectedRevision, w.Event.Type, w.Event.Source, w.Event.Actor, signalsOf(w)}
	b, _ := json.Marshal(canonical) // cannot fail: plain strings, bools and ints
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
