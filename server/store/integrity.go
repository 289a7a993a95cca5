package store

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"slices"
)

// Tamper evidence. Whoever can write to Redis can change anything in it; what
// they cannot do without the operator's key file is make the keyed MACs
// (keys.Sealer.MAC) that consentd writes along with the data:
//
//   - every history event ends with "h": a MAC of the subject id, the event
//     and the previous event's hash. Editing, deleting, reordering or
//     inserting events, or moving a history to another subject, breaks it.
//   - the state hash holds _tag: a MAC of the subject id and every other
//     field of the hash, which includes _rev. Flipping a decision, dropping
//     a status or lowering the revision breaks it, and since the last event's
//     revision must equal _rev, so does dropping the last event.
//   - each change-feed entry carries the event and the previous hash ("p"),
//     so a reader checks the event's MAC, and a verifier finds a rollback: a
//     state put back to an earlier revision with its earlier tag (taken from
//     a copy) is still contradicted by the feed's later entries for it.
//
// What the MACs cannot show: a subject rolled back to an earlier authentic
// state (state, tag and history together) once the feed no longer holds its
// later entries, or a whole database put back to an earlier copy. Only
// something kept outside Redis can (a consumer's own record of the changes
// it applied, a signed export).
//
// Events and states written before keyed MACs carry a sha1 chain and no
// _tag: `consentd verify` counts them as unauthenticated, not as tampered.
// Their next write tags the state and chains on from their last event.

// Internal fields of the state hash kept for erasure and integrity (see
// statecodec.go for the others).
const (
	fieldDataKey = "_dk"  // the handle of the subject's data key (datakey.go)
	fieldTag     = "_tag" // the state's MAC
	// fieldTampered: a write found the state not matching its tag; the
	// value is the revision it found. See write.
	fieldTampered = "_tam"
)

// eventHashHex is the length of an event's hash: 40 hex digits (160 bits),
// the length of the sha1 of events written before keyed MACs.
const eventHashHex = 40

// eventHash is an event's "h": the MAC of the subject id, the event's content
// (everything before its "h") and the previous event's hash.
func (s *Store) eventHash(subjectID, content, prev string) string {
	mac := s.opts.Sealer.MAC([]byte("event"), []byte(subjectID), []byte(content), []byte(prev))
	return hex.EncodeToString(mac[:eventHashHex/2])
}

// eventHashMatches reports whether an event's hash is the MAC of its content
// and prev.
func (s *Store) eventHashMatches(subjectID, content, prev, h string) bool {
	tag, err := hex.DecodeString(h)
	if err != nil || len(h) != eventHashHex {
		return false
	}
	return s.opts.Sealer.VerifyMAC(tag, []byte("event"), []byte(subjectID), []byte(content), []byte(prev))
}

// stateTag is the state's _tag: a MAC of the subject id and every field but
// _tag, in name order, 128 bits in base64url (22 characters: the state hash
// is stored once per subject).
func (s *Store) stateTag(subjectID string, state map[string]string) string {
	return base64.RawURLEncoding.EncodeToString(s.opts.Sealer.MAC(stateTagParts(subjectID, state)...)[:16])
}

func (s *Store) stateTagMatches(subjectID string, state map[string]string) bool {
	tag, err := base64.RawURLEncoding.DecodeString(state[fieldTag])
	if err != nil || len(tag) != 16 {
		return false
	}
	return s.opts.Sealer.VerifyMAC(tag, stateTagParts(subjectID, state)...)
}

// intact reports whether what a write read is as consentd left it: a state
// matching its tag, at the revision of the history's last event, which is
// keyed; or a state last written before tags (no tag and no data key); or
// nothing. tail is the history's last two events, or fewer.
func (s *Store) intact(subjectID string, state map[string]string, rev int64, tail []string) bool {
	switch {
	case len(state) == 0:
		return true
	case state[fieldTag] == "":
		return state[fieldDataKey] == ""
	case !s.stateTagMatches(subjectID, state):
		return false
	}
	if len(tail) == 0 {
		return true // the history expired (Options.HistoryRetention); the next write starts a new chain
	}
	last, prev := tail[len(tail)-1], ""
	if len(tail) == 2 {
		prev = hashOf(tail[0])
	}
	var e storedEvent
	return json.Unmarshal([]byte(last), &e) == nil && e.Rev == rev && s.keyedHashMatches(subjectID, last, prev)
}

// hashOf is a stored event's hash: the 40 characters before its closing "}.
func hashOf(event string) string {
	if len(event) < hashSuffixLen {
		return ""
	}
	return event[len(event)-42 : len(event)-2]
}

func stateTagParts(subjectID string, state map[string]string) [][]byte {
	names := make([]string, 0, len(state))
	for name := range state {
		if name != fieldTag {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	parts := make([][]byte, 0, 2+2*len(names))
	parts = append(parts, []byte("state"), []byte(subjectID))
	for _, name := range names {
		parts = append(parts, []byte(name), []byte(state[name]))
	}
	return parts
}

// legacyHashMatches reports whether a stored event's hash is the unkeyed
// sha1 of events written before keyed MACs: over its content followed by
// ,"prev":"<prev>"}, prev being the previous event's hash.
func legacyHashMatches(entry, prev string) bool {
	n := len(entry)
	if n < hashSuffixLen+2 || entry[n-hashSuffixLen:n-42] != `,"h":"` || entry[n-2:] != `"}` {
		return false
	}
	sum := sha1.Sum([]byte(entry[:n-hashSuffixLen] + `,"prev":"` + prev + `"}`))
	return hex.EncodeToString(sum[:]) == entry[n-42:n-2]
}

// keyedHashMatches reports whether a stored event's hash is its keyed MAC
// (eventHash).
func (s *Store) keyedHashMatches(subjectID, entry, prev string) bool {
	n := len(entry)
	if n < hashSuffixLen+2 || entry[n-hashSuffixLen:n-42] != `,"h":"` || entry[n-2:] != `"}` {
		return false
	}
	return s.eventHashMatches(subjectID, entry[:n-hashSuffixLen], prev, entry[n-42:n-2])
}
