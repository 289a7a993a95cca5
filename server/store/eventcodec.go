package store

// The stored history event: one definition, encoded and decoded here. The
// same bytes are a history list element and a change-feed entry's "ev".
//
// An event is JSON, built whole in Go (Lua stores it as it is):
//
//	{<eventHead's fields>,"rev":<revision>[,"x":"<eventPersonal sealed with the data key>"][,"o":"<decisions before>"],"h":"<hash>"}
//
// An update's type is left out, other types are spelled out; the channel is
// a letter; "o" has one letter per purpose of "n" in sorted order ("g", "d",
// or "-" for not decided), left out when none was decided. "h" is the event's
// keyed MAC over everything before it and the previous event's hash (see
// integrity.go). Events written before keyed MACs have the same shape, with
// an unkeyed sha1 "h" and the personal fields "why", "cl", "lk" and "gd" in
// the head ("cl" to "gd" sealed with the operator's key) instead of "x".

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/keys"
)

// eventHead is the plain part of a history event, built in Go. JSON keys are
// short and MarshalJSON leaves out what can be: every byte is stored once
// per event, for every subject (`make bench` aims at <= 250 B of Redis
// memory per event). What is personal goes into eventPersonal, sealed with
// the subject's data key. The fields from Why to Guard are only read, in
// events stored before data keys.
type eventHead struct {
	Type    domain.EventType  `json:"t,omitempty"` // "" in an update event (see MarshalJSON)
	At      int64             `json:"at"`          // unix ms
	Actor   string            `json:"a,omitempty"`
	Source  string            `json:"s"` // source letter, as in the state hash
	Policy  string            `json:"pv,omitempty"`
	Region  string            `json:"r,omitempty"` // region code given with the write
	Channel string            `json:"c,omitempty"` // a letter for "grpc" and "rest" (see MarshalJSON)
	GPC     bool              `json:"g,omitempty"`
	Why     string            `json:"why,omitempty"`
	Client  string            `json:"cl,omitempty"`
	Link    string            `json:"lk,omitempty"`
	Guard   string            `json:"gd,omitempty"`
	Minor   *bool             `json:"m,omitempty"` // a minor event's new status
	Signals *eventSignals     `json:"sig,omitempty"`
	New     map[string]string `json:"n"` // purpose -> "g" or "d"
}

// eventPersonal is what an event says about the person, sealed with the
// subject's data key into the event's "x": gone with the key at erasure.
type eventPersonal struct {
	Reason      string `json:"why,omitempty"` // why an operator accessed or restricted
	Client      string `json:"cl,omitempty"`  // EventInfo.Client
	Counterpart string `json:"lk,omitempty"`  // a link event's other subject
	Guardian    string `json:"gd,omitempty"`  // who confirmed a minor's decisions
}

// channelLetters stand for the channels in stored events. (A channel named
// "g" or "r" itself would read back as "grpc" or "rest": there is none.)
var channelLetters = map[string]string{"grpc": "g", "rest": "r"}

var lettersToChannel = map[string]string{"g": "grpc", "r": "rest"}

// MarshalJSON writes the head as stored: the type of the most common event,
// an update, is left out (a missing type reads as an update), and the
// channel is a letter. Other types stay spelled out: erase.lua finds link
// events by their type.
func (h eventHead) MarshalJSON() ([]byte, error) {
	type plain eventHead // the same fields without this method
	p := plain(h)
	if p.Type == domain.EventUpdate {
		p.Type = ""
	}
	if letter, ok := channelLetters[p.Channel]; ok {
		p.Channel = letter
	}
	return json.Marshal(p)
}

// eventParts are the event's plain JSON without its closing brace (write
// appends the revision, the sealed personal part, the decisions before and
// the hash) and its personal part, nil when it has none.
func (s *Store) eventParts(w Write) (head string, personal []byte, err error) {
	letter, ok := sourceLetters[w.Event.Source]
	if !ok {
		return "", nil, fmt.Errorf("store: unknown event source %q", w.Event.Source)
	}
	h := eventHead{
		Type: w.Event.Type, At: w.Now.UnixMilli(), Actor: w.Event.Actor, Source: letter,
		Policy: w.Event.PolicyVersion, Region: w.Region, Channel: w.Event.Channel, GPC: w.GPC, Minor: w.Event.Minor,
		Signals: signalsOf(w),
		New:     make(map[string]string, len(w.Decisions)),
	}
	for p, d := range w.Decisions {
		h.New[p] = grantedLetter(d.Granted)
	}
	b, err := h.MarshalJSON() // map keys come out sorted, as write's purposes
	if err != nil {
		return "", nil, err
	}
	p := eventPersonal{Reason: w.Event.Reason, Client: w.Event.Client,
		Counterpart: w.Event.Counterpart, Guardian: w.Event.Guardian}
	if p != (eventPersonal{}) {
		if personal, err = json.Marshal(p); err != nil {
			return "", nil, err
		}
	}
	return string(b[:len(b)-1]), personal, nil
}

// completeEvent is the stored event: the plain part head (eventParts), then
// what depends on the stored state: the revision, the personal part sealed
// with the data key ("" for none), the decisions before (nil when none was
// decided), and last the hash over all of it and the previous event's hash
// prev. Lua stores it as it is.
func (s *Store) completeEvent(subjectID, head, rev, sealed string, old []byte, prev string) string {
	content := head + `,"rev":` + rev
	if sealed != "" {
		content += `,"x":"` + sealed + `"`
	}
	if old != nil {
		content += `,"o":"` + string(old) + `"`
	}
	return content + `,"h":"` + s.eventHash(subjectID, content, prev) + `"}`
}

// storedEvent is a stored event as decoded: the head and what completeEvent
// adds to it. (It is only ever decoded: eventHead's MarshalJSON would write
// the head alone.)
type storedEvent struct {
	eventHead
	Rev int64  `json:"rev"`
	X   string `json:"x"` // the sealed eventPersonal
	Old string `json:"o"` // decisions before, by position in New's sorted purposes
	H   string `json:"h"`
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

// decodeEvent reads a stored event; dk opens its personal part (nil: it
// stays unread, see UnreadableClient). PrevHash is left for the caller: it
// is the event before's hash, not stored in the event.
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
	if sig := se.Signals; sig != nil {
		e.Signals = &domain.AdSignals{Region: sig.Region, Revision: sig.For, TCString: sig.TC, GPPString: sig.GPP}
	}
	for p, v := range se.New {
		e.Changes = append(e.Changes, Change{Purpose: p, New: v == "g"})
	}
	slices.SortFunc(e.Changes, func(a, b Change) int { return strings.Compare(a.Purpose, b.Purpose) })
	if se.Old != "" && len(se.Old) != len(e.Changes) {
		return Event{}, fmt.Errorf("%w: history event: %d decisions before for %d purposes", errCorrupt, len(se.Old), len(e.Changes))
	}
	if se.Old != "" {
		for i := range e.Changes {
			// In the purposes' order: the write's, sorted as here.
			if o := se.Old[i : i+1]; o == "g" || o == "d" {
				old := o == "g"
				e.Changes[i].Old = &old
			}
		}
	}
	return e, nil
}

// hashSuffixLen is the length of `,"h":"<40 hex>"}`, the end of every event.
const hashSuffixLen = len(`,"h":"`) + 40 + len(`"}`)
