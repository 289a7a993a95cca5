package store

// A history event as a write builds it (events.go reads every layout).

import (
	"encoding/json"
	"fmt"

	"github.com/consentd/consentd/server/domain"
)

// eventHead is the plain part of a history event, built in Go. JSON keys are
// short and MarshalJSON leaves out what can be: every byte is stored once
// per event, for every subject (`make bench` aims at <= 250 B of Redis
// memory per event). What is personal goes into eventPersonal, sealed with
// the subject's data key. The fields from Why to Guard are only in events
// stored before data keys, Client to Guard sealed with the operator's key.
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
	New     map[string]string `json:"n"`           // purpose -> "g" or "d"
}

// eventPersonal is what an event says about the person, sealed with the
// subject's data key into the event's "x": gone with the key at erasure.
type eventPersonal struct {
	Reason      string `json:"why,omitempty"` // why an operator accessed or restricted
	Client      string `json:"cl,omitempty"`  // EventInfo.Client
	Counterpart string `json:"lk,omitempty"`  // a link event's other subject
	Guardian    string `json:"gd,omitempty"`  // who confirmed a minor's decisions
}

// channelLetters stand for the channels in stored events. Events of the
// earlier layouts spell them out; decodeEvent reads both. (A channel named
// "g" or "r" itself would read back as "grpc" or "rest": there is none.)
var channelLetters = map[string]string{"grpc": "g", "rest": "r"}

var lettersToChannel = map[string]string{"g": "grpc", "r": "rest"}

// MarshalJSON writes the head in the stored layout: the type of the most
// common event, an update, is left out (a missing type reads as an update),
// and the channel is a letter. Other types stay spelled out: eraseScript
// finds link events of earlier versions by "t":"link".
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
		New: make(map[string]string, len(w.Decisions)),
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
