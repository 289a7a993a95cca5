package store

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/keys"
)

// A subject's history is a Redis List of JSON events, one per write, oldest
// first (a List, not a Stream: a Stream's first node alone takes ~4.7 KB).
// Each event ends with its hash ("h"): the sha1 hex of the event without
// its "h" field and followed by ,"prev":"<the previous event's h>"} (empty
// for the first). The previous hash is hashed, not stored: the event before
// holds it. Editing or deleting an event breaks the chain and VerifyChain
// reports it.
//
// Three layouts of events are stored, and all three read and verify; writes
// use the newest only:
//
//   - the current one (see eventHead and writeScript): an update's type left
//     out, the channel as a letter, the decisions before the write as "o", a
//     string of one letter per purpose of "n";
//   - the one before: "t":"update" spelled out, the channel too, and the
//     decisions before as an object "old" (purpose -> "g" or "d"), "{}" when
//     there were none; hashed as the current one;
//   - the first: as the one before, plus "prev" stored in the event, which
//     is hashed as stored.
//
// This detects changes made by someone who does not recompute the chain, e.g.
// a mistaken LSET or LREM. An attacker with write access to Redis can
// recompute every hash after an edit: proving history against that needs
// anchors kept outside Redis (e.g. signed periodic exports of the last hash).

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
	Type          string
	Actor         string
	Source        domain.Source
	PolicyVersion string
	Region        string
	Channel       string
	GPC           bool
	Reason        string   // access events: why the operator read the data
	Client        string   // the client facts recorded with the write, opened
	Counterpart   string   // link events: the other subject, opened
	Guardian      string   // guardian events: who confirmed, opened
	Minor         *bool    // minor events: the new status
	Changes       []Change // sorted by purpose
	PrevHash      string   // Hash of the previous event; "" for the first
	Hash          string
}

// storedEvent is the JSON of a history entry in any of its layouts: what Go
// wrote (eventHead) and what the write script appended. (It is only ever
// decoded: eventHead's MarshalJSON would write the head alone.)
type storedEvent struct {
	eventHead
	Rev  int64             `json:"rev"`
	Old  string            `json:"o"`    // decisions before, by position in New's sorted purposes
	OldM map[string]string `json:"old"`  // the same, in the earlier layouts
	Prev *string           `json:"prev"` // only in events of the first layout
	H    string            `json:"h"`
}

// hashMatches reports whether a stored event's hash covers its content and
// the previous event's hash prev.
func hashMatches(entry, prev string) bool {
	n := len(entry)
	if n < hashSuffixLen+2 || entry[n-hashSuffixLen:n-42] != `,"h":"` || entry[n-2:] != `"}` {
		return false
	}
	content := entry[:n-hashSuffixLen]
	var body string
	if strings.Contains(content, `,"prev":"`) { // the earlier layout: prev stored, hashed as stored
		body = content + "}"
	} else {
		body = content + `,"prev":"` + prev + `"}`
	}
	sum := sha1.Sum([]byte(body))
	return hex.EncodeToString(sum[:]) == entry[n-42:n-2]
}

// eventsScript reads one page of history in one round trip. Every write
// appends exactly one event and raises the revision by one, so the element at
// index i holds revision firstRev+i, and a page is one LRANGE.
//
// KEYS the history list under each known HMAC key, the active first (just
// one when no previous key is known): the subject's history is in the first
// that is not empty (it lives under exactly one; see "Rotating the HMAC key"
// in store.go). Looking inside the script keeps that atomic.
// ARGV[1] before: only events with revision < before; <= 0 for the newest
// ARGV[2] limit (> 0)
// Returns {firstRev, {events oldest first}}; {0, {}} when there is no history.
var eventsScript = redis.NewScript(`
local list, n = nil, 0
for i = 1, #KEYS do
  n = redis.call('LLEN', KEYS[i])
  if n > 0 then
    list = KEYS[i]
    break
  end
end
if not list then return {0, {}} end
local first = cjson.decode(redis.call('LINDEX', list, 0)).rev
local stop = n - 1
local before = tonumber(ARGV[1])
if before > 0 and before - first - 1 < stop then stop = before - first - 1 end
if stop < 0 then return {first, {}} end
local start = stop - tonumber(ARGV[2]) + 1
if start < 0 then start = 0 end
return {first, redis.call('LRANGE', list, start, stop)}
`)

// Events returns up to limit events newest first, only those with Revision <
// before (before <= 0: from the newest).
func (s *Store) Events(ctx context.Context, subjectID string, before int64, limit int) ([]Event, error) {
	if limit <= 0 {
		return nil, nil
	}
	known := s.knownKeysFor(subjectID)
	lists := make([]string, len(known))
	for i, k := range known {
		lists[i] = k.history
	}
	// One event more than asked, when there is one: the oldest event's
	// previous hash is the hash of the event before it.
	reply, err := s.runScript(ctx, eventsScript, lists, before, limit+1).Slice()
	if err != nil {
		return nil, wrapErr("events", err)
	}
	if len(reply) != 2 {
		return nil, fmt.Errorf("store: events: unexpected script reply")
	}
	raw, ok := reply[1].([]any)
	if !ok {
		return nil, fmt.Errorf("store: events: unexpected script reply")
	}
	prev, start := "", 0 // fewer than asked: the oldest is the chain's head
	if len(raw) == limit+1 {
		entry, _ := raw[0].(string)
		older, err := decodeEvent(entry, s.opts.Sealer)
		if err != nil {
			return nil, err
		}
		prev, start = older.Hash, 1
	}
	events := make([]Event, len(raw)-start)
	for i := start; i < len(raw); i++ {
		entry, _ := raw[i].(string)
		e, err := decodeEvent(entry, s.opts.Sealer)
		if err != nil {
			return nil, err
		}
		if e.PrevHash == "" { // not stored (the current layout): the event before's
			e.PrevHash = prev
		}
		prev = e.Hash
		events[len(raw)-1-i] = e // newest first
	}
	return events, nil
}

// UnreadableClient stands for a sealed event field (client facts, a link's
// counterpart, a guardian) sealed with an encryption key that is no longer in
// the key file.
const UnreadableClient = "(sealed with an encryption key no longer known)"

func openField(sealer *keys.Sealer, sealed string) string {
	if sealed == "" {
		return ""
	}
	plain, err := sealer.Open(sealed)
	if err != nil {
		return UnreadableClient
	}
	return string(plain)
}

// OptOut reports whether the event stops some processing, which downstream
// systems must apply within a legal deadline: a purpose denied, a GPC
// signal, a restriction, a minor mark or an erasure.
func (e Event) OptOut() bool {
	switch e.Type {
	case EventRestrict, EventErase:
		return true
	case EventMinor:
		return e.Minor != nil && *e.Minor
	case EventLift, EventGuardian, EventAccess, EventExport:
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

func decodeEvent(entry string, sealer *keys.Sealer) (Event, error) {
	var se storedEvent
	if err := json.Unmarshal([]byte(entry), &se); err != nil {
		return Event{}, fmt.Errorf("%w: history event: %v", errCorrupt, err)
	}
	e := Event{
		Revision: se.Rev, At: time.UnixMilli(se.At).UTC(), Type: se.Type, Actor: se.Actor,
		Source: lettersToSource[se.Source], PolicyVersion: se.Policy, Region: se.Region,
		Channel: se.Channel, GPC: se.GPC, Reason: se.Why, Hash: se.H,
	}
	if e.Type == "" {
		e.Type = EventUpdate
	}
	if name, ok := lettersToChannel[e.Channel]; ok {
		e.Channel = name
	}
	if se.Prev != nil {
		e.PrevHash = *se.Prev
	}
	e.Client = openField(sealer, se.Client)
	e.Counterpart = openField(sealer, se.Link)
	e.Guardian = openField(sealer, se.Guard)
	e.Minor = se.Minor
	for p, v := range se.New {
		e.Changes = append(e.Changes, Change{Purpose: p, New: v == "g"})
	}
	slices.SortFunc(e.Changes, func(a, b Change) int { return strings.Compare(a.Purpose, b.Purpose) })
	if se.Old != "" && len(se.Old) != len(e.Changes) {
		return Event{}, fmt.Errorf("%w: history event: %d decisions before for %d purposes", errCorrupt, len(se.Old), len(e.Changes))
	}
	for i := range e.Changes {
		var o string
		if se.Old != "" {
			o = se.Old[i : i+1] // in the purposes' order: the write script's, sorted as here
		} else {
			o = se.OldM[e.Changes[i].Purpose]
		}
		if o == "g" || o == "d" {
			old := o == "g"
			e.Changes[i].Old = &old
		}
	}
	return e, nil
}

// hashSuffixLen is the length of `,"h":"<40 hex>"}`, the end of every event.
const hashSuffixLen = len(`,"h":"`) + 40 + len(`"}`)

// VerifyChain checks a subject's whole stored history: each event's hash
// matches its content, links to the previous event's hash, revisions run
// 1, 2, 3, ... without gaps, and the last one is the state's revision. The
// error (ErrChainBroken) names the first bad revision.
func (s *Store) VerifyChain(ctx context.Context, subjectID string) error {
	entries, stateRev, err := s.readChain(ctx, subjectID)
	if err != nil {
		return err
	}
	_, err = verifyChain(entries, stateRev)
	return err
}

// ChainError says where and how a history's hash chain is broken. It is
// ErrChainBroken.
type ChainError struct {
	Revision int64  // the first revision that does not check out
	Problem  string // what is wrong, for a person to read
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("%v at revision %d: %s", ErrChainBroken, e.Revision, e.Problem)
}

func (e *ChainError) Is(target error) bool { return target == ErrChainBroken }

// History is a subject's whole stored history and what verifying its hash
// chain found, both from one read.
type History struct {
	Events  []Event // oldest first
	Checked int     // events that verified before the first bad one (all, when Chain is nil)
	Chain   error   // nil, or a *ChainError (ErrChainBroken) naming the first bad revision
}

// History reads the subject's whole history at one instant and verifies it,
// so the events listed are the events verified (what an export needs: reading
// the list twice would let a write in between make the two disagree).
func (s *Store) History(ctx context.Context, subjectID string) (History, error) {
	entries, stateRev, err := s.readChain(ctx, subjectID)
	if err != nil {
		return History{}, err
	}
	h := History{Events: make([]Event, len(entries))}
	h.Checked, h.Chain = verifyChain(entries, stateRev)
	prev := ""
	for i, entry := range entries {
		e, err := decodeEvent(entry, s.opts.Sealer)
		if err != nil {
			return History{}, err
		}
		if e.PrevHash == "" { // not stored (the current layout): the event before's
			e.PrevHash = prev
		}
		prev = e.Hash
		h.Events[i] = e
	}
	return h, nil
}

// readChain reads the subject's history list and the state's revision.
func (s *Store) readChain(ctx context.Context, subjectID string) (entries []string, stateRev int64, err error) {
	// MULTI/EXEC: the state's revision and the list are read at one instant,
	// under every known HMAC key's names (one slot, so one transaction on a
	// cluster too); the subject's data is under the first that has any.
	known := s.knownKeysFor(subjectID)
	revCmds := make([]*redis.StringCmd, len(known))
	listCmds := make([]*redis.StringSliceCmd, len(known))
	_, err = s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range known {
			revCmds[i] = p.HGet(ctx, k.state, fieldRevision)
			listCmds[i] = p.LRange(ctx, k.history, 0, -1)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) { // Nil: no state under a name
		// A Redis over maxmemory refuses every command queued in a MULTI,
		// reads too (queuing takes memory), and EXEC answers EXECABORT; the
		// commands' own error says why (OOM: ErrStorageFull, not a bug).
		for _, cmd := range revCmds {
			if redis.IsOOMError(cmd.Err()) {
				err = cmd.Err()
			}
		}
		return nil, 0, wrapErr("read history", err)
	}
	for i := range known {
		v, err := revCmds[i].Result()
		hasState := err == nil
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, 0, wrapErr("read history", err)
		}
		list, err := listCmds[i].Result()
		if err != nil {
			return nil, 0, wrapErr("read history", err)
		}
		if !hasState && len(list) == 0 {
			continue // nothing under this key's names
		}
		if hasState {
			if stateRev, err = strconv.ParseInt(v, 10, 64); err != nil {
				return nil, 0, fmt.Errorf("%w: field %q", errCorrupt, fieldRevision)
			}
		}
		return list, stateRev, nil
	}
	return nil, 0, nil
}

// verifyChain checks a history (oldest first) against the state's revision,
// and says how many events checked out before the first bad one.
func verifyChain(entries []string, stateRev int64) (checked int, err error) {
	// The chain starts at revision 1, or later when the history expired
	// (Options.HistoryRetention) while the state stayed: the next write then
	// started a new chain (hashed with an empty previous hash) at the state's
	// next revision. A head whose older events were deleted does not hash
	// with an empty previous hash.
	first := int64(1)
	if len(entries) > 0 {
		var head storedEvent
		if json.Unmarshal([]byte(entries[0]), &head) == nil && head.Rev > 1 && hashMatches(entries[0], "") {
			first = head.Rev
		}
	}
	prev := ""
	for i, entry := range entries {
		rev := first + int64(i) // the revision this position must hold
		broken := func(why string) (int, error) {
			return i, &ChainError{Revision: rev, Problem: why}
		}
		n := len(entry)
		if n < hashSuffixLen+2 || entry[n-hashSuffixLen:n-42] != `,"h":"` || entry[n-2:] != `"}` {
			return broken("no hash at the end of the event")
		}
		var se storedEvent
		if err := json.Unmarshal([]byte(entry), &se); err != nil {
			return broken("the event is not valid JSON")
		}
		if se.Rev != rev {
			return broken(fmt.Sprintf("found revision %d in its place (events missing or reordered)", se.Rev))
		}
		if se.Prev != nil && *se.Prev != prev {
			return broken("the previous-hash link does not match the event before it")
		}
		if !hashMatches(entry, prev) {
			return broken("the event's content, or its link to the event before, does not match its hash")
		}
		prev = se.H
	}
	if last := first + int64(len(entries)) - 1; last != stateRev {
		return len(entries), &ChainError{Revision: min(last, stateRev) + 1,
			Problem: fmt.Sprintf("the state has revision %d but the history ends at %d (events missing)", stateRev, last)}
	}
	return len(entries), nil
}
