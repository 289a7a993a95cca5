package store

// A subject's history is a Redis List of events (eventcodec.go), one per
// write, oldest first (a List, not a Stream: a Stream's first node alone
// takes ~4.7 KB). Each event ends with its hash ("h"): a keyed MAC of the
// subject id, the event without its "h" and the previous event's hash (see
// integrity.go); "" is the previous hash of the first. The previous hash is
// hashed, not stored: the event before holds it. Editing, deleting or
// inserting an event breaks the chain, whoever does it without the
// operator's keys, and VerifyChain reports it.
//
// Events written before keyed MACs are unauthenticated: their unkeyed hashes
// verify as a chain, which shows an accidental edit, but not against someone
// who recomputes it. They can only come before the first keyed event.
//
// The history is read in pages (Events) or whole, verified (History).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/consentd/consentd/server/domain"
)

// Change is one purpose's change in an event.
type Change struct {
	Purpose string
	Old     *bool // nil: not decided before
	New     bool
}

// Event is one entry of a subject's history.
type Event struct {
	Revision      int64
	At            time.Time
	Type          domain.EventType
	Actor         string
	Source        domain.Source
	PolicyVersion string
	Region        string
	Channel       string
	GPC           bool
	Reason        string // access events: why the operator read the data
	Client        string // the client facts recorded with the write, opened
	Counterpart   string // link events: the other subject, opened
	Guardian      string // guardian events: who confirmed, opened
	Minor         *bool  // minor events: the new status
	// Signals: a signals event's IAB strings (Region and Revision are the
	// code and revision they were made for; At and EventRevision unset).
	Signals  *domain.AdSignals
	Changes  []Change // sorted by purpose
	PrevHash string   // Hash of the previous event; "" for the first
	Hash     string
	// Keyed: the hash is a keyed MAC (the current layout); false for events
	// written before, whose hash anyone could recompute.
	Keyed bool
}

// Events returns up to limit events newest first, only those with Revision <
// before (before <= 0: from the newest).
func (s *Store) Events(ctx context.Context, subjectID string, before int64, limit int) ([]Event, error) {
	if limit <= 0 {
		return nil, nil
	}
	// One event more than asked, when there is one: the oldest event's
	// previous hash is the hash of the event before it.
	reply, err := s.runScript(ctx, readHistoryPageScript,
		readHistoryPageArgs{known: s.knownKeysFor(subjectID), before: before, limit: limit + 1}.call()).Slice()
	if err != nil {
		return nil, wrapErr("events", err)
	}
	if len(reply) != 4 {
		return nil, fmt.Errorf("store: events: unexpected script reply")
	}
	raw, ok := reply[1].([]any)
	if !ok {
		return nil, fmt.Errorf("store: events: unexpected script reply")
	}
	handle, _ := reply[2].(string)
	wrapped, _ := reply[3].(string)
	dk, err := s.openSubjectKey(handle, wrapped)
	if err != nil {
		return nil, err
	}
	prev, start := "", 0 // fewer than asked: the oldest is the chain's head
	if len(raw) == limit+1 {
		entry, _ := raw[0].(string)
		older, err := decodeEvent(entry, s.opts.Sealer, dk)
		if err != nil {
			return nil, err
		}
		prev, start = older.Hash, 1
	}
	events := make([]Event, len(raw)-start)
	for i := start; i < len(raw); i++ {
		entry, _ := raw[i].(string)
		e, err := decodeEvent(entry, s.opts.Sealer, dk)
		if err != nil {
			return nil, err
		}
		e.PrevHash = prev
		e.Keyed = s.keyedHashMatches(subjectID, entry, prev)
		prev = e.Hash
		events[len(raw)-1-i] = e // newest first
	}
	return events, nil
}

// openSubjectKey unwraps a subject's data key read along with its data; nil
// when it has none (never written since data keys, or the key is gone).
func (s *Store) openSubjectKey(handle, wrapped string) (*dataKey, error) {
	if handle == "" || wrapped == "" {
		return nil, nil
	}
	k, err := openDataKey(s.opts.Sealer, handle, wrapped)
	if err != nil {
		return nil, err
	}
	return &k, nil
}

// OptOut reports whether the event stops some processing, which downstream
// systems must apply within a legal deadline: a purpose denied, a GPC
// signal, a restriction, a minor mark or an erasure.
func (e Event) OptOut() bool {
	switch e.Type {
	case domain.EventRestrict, domain.EventErase:
		return true
	case domain.EventMinor:
		return e.Minor != nil && *e.Minor
	case domain.EventLift, domain.EventGuardian, domain.EventAccess, domain.EventExport, domain.EventSignals:
		return false
	}
	if e.GPC {
		return true
	}
	for _, c := range e.Changes {
		if !c.New {
			return true
		}
	}
	return false
}

// VerifyChain checks a subject's whole stored history and state: each
// event's hash matches its content and links to the previous event's hash,
// revisions run 1, 2, 3, ... without gaps, the last one is the state's
// revision, and the state matches its integrity tag. The error
// (ErrChainBroken) names the first bad revision.
func (s *Store) VerifyChain(ctx context.Context, subjectID string) error {
	h, err := s.History(ctx, subjectID)
	if err != nil {
		return err
	}
	return h.Chain
}

// ChainError says where and how a history's hash chain, or the state it ends
// in, does not check out. It is ErrChainBroken.
type ChainError struct {
	Revision int64  // the first revision that does not check out
	Problem  string // what is wrong, for a person to read
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("%v at revision %d: %s", ErrChainBroken, e.Revision, e.Problem)
}

func (e *ChainError) Is(target error) bool { return target == ErrChainBroken }

// History is a subject's whole stored history and what verifying it found,
// both from one read.
type History struct {
	Events  []Event // oldest first
	Checked int     // events that verified before the first bad one (all, when Chain is nil)
	Chain   error   // nil, or a *ChainError (ErrChainBroken) naming the first bad revision
	// Unauthenticated counts the events that verified only as an unkeyed
	// chain (written before keyed MACs); StateUntagged: the state has no
	// integrity tag (not written since). Neither is a finding by itself.
	Unauthenticated int
	StateUntagged   bool
}

// History reads the subject's whole history and state at one instant and
// verifies them, so the events listed are the events verified (what an
// export needs: reading the list twice would let a write in between make the
// two disagree).
func (s *Store) History(ctx context.Context, subjectID string) (History, error) {
	entries, state, dk, err := s.readChain(ctx, subjectID)
	if err != nil {
		return History{}, err
	}
	h := History{Events: make([]Event, len(entries))}
	prev := ""
	for i, entry := range entries {
		e, err := decodeEvent(entry, s.opts.Sealer, dk)
		if err != nil {
			return History{}, err
		}
		e.PrevHash = prev
		prev = e.Hash
		h.Events[i] = e
	}
	s.verifyHistory(subjectID, entries, state, &h)
	return h, nil
}

// readChain reads the subject's history, its state and its data key (nil
// when it has none).
func (s *Store) readChain(ctx context.Context, subjectID string) (entries []string, state map[string]string, dk *dataKey, err error) {
	reply, err := s.runScript(ctx, readHistoryScript, readHistoryArgs{known: s.knownKeysFor(subjectID)}.call()).Slice()
	if err != nil {
		return nil, nil, nil, wrapErr("read history", err)
	}
	if len(reply) != 3 {
		return nil, nil, nil, errors.New("store: read history: unexpected script reply")
	}
	if state, err = pairsToMap(reply[0]); err != nil {
		return nil, nil, nil, err
	}
	list, _ := reply[1].([]any)
	entries = make([]string, len(list))
	for i, e := range list {
		entries[i], _ = e.(string)
	}
	wrapped, _ := reply[2].(string)
	dk, err = s.openSubjectKey(state[fieldDataKey], wrapped)
	return entries, state, dk, err
}

// verifyHistory checks a history (oldest first) and the state it ends in,
// and fills h's Checked, Chain, Unauthenticated and StateUntagged.
func (s *Store) verifyHistory(subjectID string, entries []string, state map[string]string, h *History) {
	stateRev := int64(0)
	if v, ok := state[fieldRevision]; ok {
		var err error
		if stateRev, err = strconv.ParseInt(v, 10, 64); err != nil {
			h.Chain = &ChainError{Revision: 0, Problem: "the state's revision is not a number"}
			return
		}
	}
	// The chain starts at revision 1, or later when the history expired
	// (Options.HistoryRetention) while the state stayed: the next write then
	// started a new chain (hashed with an empty previous hash) at the state's
	// next revision. A head whose older events were deleted does not hash
	// with an empty previous hash, and without the keys nobody can make one
	// that does.
	first := int64(1)
	if len(entries) > 0 {
		var head storedEvent
		if json.Unmarshal([]byte(entries[0]), &head) == nil && head.Rev > 1 &&
			(s.keyedHashMatches(subjectID, entries[0], "") || legacyHashMatches(entries[0], "")) {
			first = head.Rev
		}
	}
	prev, keyed := "", false
	for i, entry := range entries {
		rev := first + int64(i) // the revision this position must hold
		broken := func(why string) {
			h.Checked, h.Chain = i, &ChainError{Revision: rev, Problem: why}
		}
		n := len(entry)
		if n < hashSuffixLen+2 || entry[n-hashSuffixLen:n-42] != `,"h":"` || entry[n-2:] != `"}` {
			broken("no hash at the end of the event")
			return
		}
		var se storedEvent
		if err := json.Unmarshal([]byte(entry), &se); err != nil {
			broken("the event is not valid JSON")
			return
		}
		if se.Rev != rev {
			broken(fmt.Sprintf("found revision %d in its place (events missing or reordered)", se.Rev))
			return
		}
		switch {
		case s.keyedHashMatches(subjectID, entry, prev):
			keyed = true
			if i < len(h.Events) {
				h.Events[i].Keyed = true
			}
		case keyed:
			broken("the event's content, or its link to the event before, does not match its keyed hash (changed without the operator's keys)")
			return
		case legacyHashMatches(entry, prev):
			h.Unauthenticated++
		default:
			broken("the event's content, or its link to the event before, does not match its hash")
			return
		}
		prev = se.H
	}
	h.Checked = len(entries)
	if len(entries) > 0 && !keyed && state[fieldTag] != "" {
		// A tagged state was left by a write that also appended a keyed
		// event, so an unkeyed history under it was rewritten: an unkeyed
		// chain is anyone's to recompute, and only a keyed event after it
		// vouches for it.
		h.Checked, h.Chain = 0, &ChainError{Revision: first,
			Problem: "the history holds no keyed event though the state was written with the keys (the history was rewritten)"}
		return
	}
	if last := first + int64(len(entries)) - 1; last != stateRev {
		h.Chain = &ChainError{Revision: min(last, stateRev) + 1,
			Problem: fmt.Sprintf("the state has revision %d but the history ends at %d (events missing, or the state rolled back)", stateRev, last)}
		return
	}
	switch {
	case len(state) == 0:
	case state[fieldTampered] != "":
		h.Chain = &ChainError{Revision: stateRev, Problem: fmt.Sprintf(
			"the state at revision %s had been changed without the operator's keys; the write after it found it so and was applied on top of it", state[fieldTampered])}
	case state[fieldTag] != "":
		if !s.stateTagMatches(subjectID, state) {
			h.Chain = &ChainError{Revision: stateRev, Problem: "the state's fields do not match its integrity tag (changed without the operator's keys)"}
		}
	case state[fieldDataKey] != "" || keyed:
		// Written since tags were, so its tag was removed.
		h.Chain = &ChainError{Revision: stateRev, Problem: "the state has no integrity tag, though it was written with one"}
	default:
		h.StateUntagged = true
	}
}
