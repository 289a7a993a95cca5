package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
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
}

// WriteResult is the outcome of a Write.
type WriteResult struct {
	// Record is the full state right after the write; for a replay, the state
	// stored with the idempotency key (later writes are not in it). Linked is
	// set when the write followed a visitor's link to its user.
	Record domain.Record
	// Replayed: the idempotency key had been used; nothing was written.
	Replayed bool
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

// readForWrite is what readForWriteScript read.
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
	keys := make([]string, 0, 3*len(known))
	for _, k := range known {
		keys = append(keys, k.state, k.history, k.idempotency)
	}
	reply, err := s.runScript(ctx, readForWriteScript, keys, idemField, known[0].base).Slice()
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

// idempotencyRecord is what writeScript stores per idempotency key.
type idempotencyRecord struct {
	Fingerprint string   `json:"f"`
	State       []string `json:"s"` // the state hash right after the write, as HGETALL returns it
	Expires     int64    `json:"x"` // unix ms, Redis' clock
}

// write computes and applies one write. link is the sealed user id when the
// subject is a linked visitor and w.FollowLink is set; nothing was written
// then.
func (s *Store) write(ctx context.Context, w Write) (res WriteResult, link string, err error) {
	if w.Now.IsZero() {
		w.Now = time.Now()
	}
	if w.SubjectID == "" {
		return WriteResult{}, "", errors.New("store: empty subject id")
	}
	if w.Event.Type == "" {
		return WriteResult{}, "", errors.New("store: event type is required")
	}
	purposes := make([]string, 0, len(w.Decisions))
	for p := range w.Decisions {
		if err := checkPurposeID(p); err != nil {
			return WriteResult{}, "", err
		}
		purposes = append(purposes, p)
	}
	slices.Sort(purposes)
	encoded := make([]string, len(purposes))
	for i, p := range purposes {
		if encoded[i], err = encodeDecision(w.Decisions[p]); err != nil {
			return WriteResult{}, "", fmt.Errorf("%w (purpose %q)", err, p)
		}
	}
	head, personal, err := s.eventParts(w)
	if err != nil {
		return WriteResult{}, "", err
	}
	known := s.knownKeysFor(w.SubjectID)
	fp, field := "", ""
	if w.IdempotencyKey != "" {
		fp, field = fingerprint(w), idempotencyField(w.IdempotencyKey)
	}
	var minID any = 0 // a feed entry, no trimming
	if !w.Event.Type.InFeed() {
		minID = ""
	} else if feedWrites.Add(1)%feedTrimEvery == 0 {
		minID = max(w.Now.UnixMilli()-s.opts.FeedRetention.Milliseconds(), 0)
	}
	stateTTL, historyTTL := s.retention(w.SubjectID)

	for attempt := 1; ; attempt++ {
		read, err := s.readForWrite(ctx, known, field)
		if err != nil {
			return WriteResult{}, "", err
		}
		if read.idem != "" {
			var rec idempotencyRecord
			if err := json.Unmarshal([]byte(read.idem), &rec); err != nil {
				return WriteResult{}, "", fmt.Errorf("%w: idempotency record: %v", errCorrupt, err)
			}
			if rec.Expires > read.now {
				if rec.Fingerprint != fp {
					return WriteResult{}, "", ErrIdempotencyMismatch
				}
				fields, err := pairsToMap(stringsToAny(rec.State))
				if err != nil {
					return WriteResult{}, "", err
				}
				r, err := decodeRecord(fields, s.opts.Sealer)
				return WriteResult{Record: r, Replayed: true}, "", err
			}
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

		dk, fresh, err := s.subjectDataKey(read, w.SubjectID)
		if err != nil {
			return WriteResult{}, "", err
		}
		// The data key's record is stored when it is new, names a new linked
		// visitor, or was wrapped with an encryption key no longer active
		// (so a rotation of the encryption key reaches every subject written
		// since).
		wrapped := ""
		if w.LinkedVisitor != "" && !slices.Contains(dk.visitors, w.LinkedVisitor) {
			dk.visitors = append(dk.visitors, w.LinkedVisitor)
			fresh = true
		}
		if !fresh && !s.opts.Sealer.SealedWithActive(read.wrapped) {
			fresh = true
		}
		if fresh {
			if wrapped, err = dk.wrap(s.opts.Sealer); err != nil {
				return WriteResult{}, "", err
			}
		}
		rev := strconv.FormatInt(current+1, 10)
		state := maps.Clone(read.state)
		// A write tags the state it leaves, so a state changed without the
		// keys would be laundered by the next write: the write records that
		// it found one instead (it still applies: an opt-out must never be
		// refused for it), and the mark stays, under the new tag.
		if _, marked := state[fieldTampered]; !marked && !s.intact(w.SubjectID, state, current, read.tail) {
			state[fieldTampered] = strconv.FormatInt(current, 10)
		}
		var set, del []any
		put := func(name, value string) {
			state[name] = value
			set = append(set, name, value)
		}
		put(fieldRevision, rev)
		old := make([]byte, len(purposes))
		decided := false
		for i, p := range purposes {
			old[i] = '-'
			if before, ok := read.state[p]; ok && before != "" {
				old[i], decided = before[0], true
			}
			put(p, encoded[i]+"|"+rev)
		}
		if w.Region != "" {
			put(fieldRegion, w.Region)
		}
		if _, seen := read.state[fieldGPC]; w.GPC && !seen {
			put(fieldGPC, strconv.FormatInt(w.Now.Unix(), 10))
		}
		if w.GuardianConfirmed && current > 0 { // at revision 0 there is nothing to cover
			put(fieldGuardianRevision, strconv.FormatInt(current, 10))
		}
		statusSet, statusDel := s.statusFields(w)
		for i := 0; i < len(statusSet); i += 2 {
			put(statusSet[i], statusSet[i+1])
		}
		for _, name := range statusDel {
			if _, ok := state[name]; ok {
				delete(state, name)
				del = append(del, name)
			}
		}
		if state[fieldDataKey] != dk.handle {
			put(fieldDataKey, dk.handle)
		}
		if v, ok := state[fieldTampered]; ok && read.state[fieldTampered] != v {
			set = append(set, fieldTampered, v)
		}
		put(fieldTag, s.stateTag(w.SubjectID, state))

		content := head + `,"rev":` + rev
		if personal != nil {
			content += `,"x":"` + dk.seal(personal) + `"`
		}
		if decided {
			content += `,"o":"` + string(old) + `"`
		}
		event := content + `,"h":"` + s.eventHash(w.SubjectID, content, read.last) + `"}`

		keys := []string{known[0].feed, known[0].state, known[0].history, known[0].idempotency, dataKeyName(known[0].base, dk.handle)}
		if read.names > 0 {
			keys = append(keys, known[read.names].state, known[read.names].history)
		}
		args := make([]any, 0, 16+len(set)+len(del))
		args = append(args, strconv.FormatInt(current, 10)+"|"+read.state[fieldDataKey], event, minID, rev, dk.handle, dk.seal([]byte(w.SubjectID)), read.last,
			stateTTL.Milliseconds(), historyTTL.Milliseconds(), wrapped, field, fp, s.opts.IdempotencyTTL.Milliseconds(), len(set)/2)
		args = append(args, set...)
		args = append(args, len(del))
		args = append(args, del...)
		reply, err := s.runScript(ctx, writeScript, keys, args...).Slice()
		if err != nil {
			return WriteResult{}, "", wrapErr("write", err)
		}
		if code, _ := reply[0].(int64); code == -1 {
			if attempt == maxWriteAttempts {
				return WriteResult{}, "", fmt.Errorf("store: write: %w: the subject changed %d times while this write was computed", ErrUnavailable, attempt)
			}
			// A random pause, growing with the attempts, spreads writers
			// that collided so the next read-and-write finds the subject
			// quiet (without it, a few dozen writers on one subject keep
			// colliding).
			pause := time.Duration(rand.Int64N(int64(min(attempt, 20)) * int64(100*time.Microsecond)))
			select {
			case <-ctx.Done():
				return WriteResult{}, "", wrapErr("write", ctx.Err())
			case <-time.After(pause):
			}
			continue
		}
		rec, err := decodeRecord(state, s.opts.Sealer)
		return WriteResult{Record: rec}, "", err
	}
}

// subjectDataKey is the data key a write seals with: the subject's own, or a
// new one (fresh: its record is to be stored) for a subject that has none
// yet: never written, written before data keys, or whose key is gone (then
// what was sealed with it stays unreadable, and `consentd verify` reports
// it).
func (s *Store) subjectDataKey(read readForWrite, subjectID string) (k dataKey, fresh bool, err error) {
	if handle := read.state[fieldDataKey]; handle != "" && read.wrapped != "" {
		k, err := openDataKey(s.opts.Sealer, handle, read.wrapped)
		return k, false, err
	}
	k, err = newDataKey(subjectID)
	return k, true, err
}

// statusFields are the internal fields a write sets (name, value pairs) and
// deletes.
func (s *Store) statusFields(w Write) (set, del []string) {
	unix := strconv.FormatInt(w.Now.Unix(), 10)
	if w.Restrict != nil {
		if *w.Restrict {
			set = append(set, fieldRestrict, unix)
		} else {
			del = append(del, fieldRestrict)
		}
	}
	if w.Minor != nil {
		if *w.Minor {
			set = append(set, fieldMinor, unix)
		} else {
			del = append(del, fieldMinor, fieldGuardian, fieldGuardianRevision)
		}
	}
	if w.GuardianConfirmed {
		set = append(set, fieldGuardian, unix)
	}
	if !w.GPCAt.IsZero() {
		set = append(set, fieldGPC, strconv.FormatInt(w.GPCAt.Unix(), 10))
	}
	if w.LinkTo != "" {
		// Sealed with the operator's key, not the data key: a check follows
		// the link, and must not unwrap a data key to do so.
		set = append(set, fieldLink, s.opts.Sealer.Seal([]byte(w.LinkTo)))
	}
	return set, del
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
	}{granted, w.Region, w.GPC, w.ExpectedRevision, w.Event.Type, w.Event.Source, w.Event.Actor}
	b, _ := json.Marshal(canonical) // cannot fail: plain strings, bools and ints
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
