package store

// A subject's history as one chain: read whole, at one instant with its
// state and data key, and verified (events.go reads pages of it).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

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
		if e.PrevHash == "" { // not stored (the later layouts): the event before's
			e.PrevHash = prev
		}
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
		case se.Prev != nil && *se.Prev != prev:
			broken("the previous-hash link does not match the event before it")
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
