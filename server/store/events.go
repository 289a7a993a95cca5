package store

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/keys"
)

// A subject's history is a Redis List of JSON events, one per write, oldest
// first (a List, not a Stream: a Stream's first node alone takes ~4.7 KB).
// Each event ends with its hash ("h"): a keyed MAC of the subject id, the
// event without its "h" and the previous event's hash (see integrity.go);
// "" is the previous hash of the first. The previous hash is hashed, not
// stored: the event before holds it. Editing, deleting or inserting an event
// breaks the chain, whoever does it without the operator's keys, and
// VerifyChain reports it.
//
// Four layouts of events are stored, and all of them read and verify;
// writes use the newest only:
//
//   - the current one: as the one before, with what is personal (reason,
//     client facts, counterpart, guardian) sealed with the subject's data
//     key into "x", and the hash a keyed MAC;
//   - the one before: an update's type left out, the channel as a letter,
//     the decisions before the write as "o", a string of one letter per
//     purpose of "n"; the hash the sha1 hex of the event followed by
//     ,"prev":"<the previous hash>"}, which anyone can recompute;
//   - the one before it: "t":"update" spelled out, the channel too, and the
//     decisions before as an object "old" (purpose -> "g" or "d"), "{}" when
//     there were none; hashed as the one before;
//   - the first: as the one before, plus "prev" stored in the event, which
//     is hashed as stored.
//
// Events of the three earlier layouts are unauthenticated: they verify as a
// chain, which shows an accidental edit, but not against someone who
// recomputes it. They can only come before the first keyed event.

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
	Reason        string   // access events: why the operator read the data
	Client        string   // the client facts recorded with the write, opened
	Counterpart   string   // link events: the other subject, opened
	Guardian      string   // guardian events: who confirmed, opened
	Minor         *bool    // minor events: the new status
	Changes       []Change // sorted by purpose
	PrevHash      string   // Hash of the previous event; "" for the first
	Hash          string
	// Keyed: the hash is a keyed MAC (the current layout); false for events
	// written before, whose hash anyone could recompute.
	Keyed bool
}

// storedEvent is the JSON of a history entry in any of its layouts: what Go
// wrote (eventHead) and what the write script appended. (It is only ever
// decoded: eventHead's MarshalJSON would write the head alone.)
type storedEvent struct {
	eventHead
	Rev  int64             `json:"rev"`
	X    string            `json:"x"`    // the sealed eventPersonal
	Old  string            `json:"o"`    // decisions before, by position in New's sorted purposes
	OldM map[string]string `json:"old"`  // the same, in the earlier layouts
	Prev *string           `json:"prev"` // only in events of the first layout
	H    string            `json:"h"`
}

// legacyHashMatches reports whether a stored event's hash is the unkeyed
// sha1 of the earlier layouts over its content and the previous event's
// hash prev.
func legacyHashMatches(entry, prev string) bool {
	n := len(entry)
	if n < hashSuffixLen+2 || entry[n-hashSuffixLen:n-42] != `,"h":"` || entry[n-2:] != `"}` {
		return false
	}
	content := entry[:n-hashSuffixLen]
	var body string
	if strings.Contains(content, `,"prev":"`) { // the first layout: prev stored, hashed as stored
		body = content + "}"
	} else {
		body = content + `,"prev":"` + prev + `"}`
	}
	sum := sha1.Sum([]byte(body))
	return hex.EncodeToString(sum[:]) == entry[n-42:n-2]
}

// keyedHashMatches reports whether a stored event's hash is the keyed MAC
// of the current layout.
func (s *Store) keyedHashMatches(subjectID, entry, prev string) bool {
	n := len(entry)
	if n < hashSuffixLen+2 || entry[n-hashSuffixLen:n-42] != `,"h":"` || entry[n-2:] != `"}` {
		return false
	}
	return s.eventHashMatches(subjectID, entry[:n-hashSuffixLen], prev, entry[n-42:n-2])
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
		if e.PrevHash == "" { // not stored (the later layouts): the event before's
			e.PrevHash = prev
		}
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

// UnreadableClient stands for a sealed event field (client facts, a link's
// counterpart, a guardian) sealed with an encryption key that is no longer in
// the key file.
const UnreadableClient = "(sealed with an encryption key no longer known)"

// UnreadablePersonal stands for an event's personal details (reason, client
// facts, counterpart, guardian) when the subject's data key is gone.
const UnreadablePersonal = "(sealed with the subject's data key, which is gone)"

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
	case domain.EventRestrict, domain.EventErase:
		return true
	case domain.EventMinor:
		return e.Minor != nil && *e.Minor
	case domain.EventLift, domain.EventGuardian, domain.EventAccess, domain.EventExport:
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

// decodeEvent reads a stored event in any layout; dk opens its personal part
// (nil: it stays unread, see UnreadableClient).
func decodeEvent(entry string, sealer *keys.Sealer, dk *dataKey) (Event, error) {
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
		e.Type = domain.EventUpdate
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
	if se.X != "" {
		var p eventPersonal
		plain, err := dk.open(se.X)
		if err == nil {
			err = json.Unmarshal(plain, &p)
		}
		if err != nil {
			p = eventPersonal{Client: UnreadablePersonal}
		}
		e.Reason, e.Client, e.Counterpart, e.Guardian = p.Reason, p.Client, p.Counterpart, p.Guardian
	}
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
