package store

import (
	"maps"
	"slices"
	"strconv"
)

// What a write changes, computed from what it read: the data key it seals
// with and the state hash it leaves.

// writeDataKey is the data key the write seals with, and its wrapped record
// when that is to be stored ("" otherwise): when it is new, names a new
// linked visitor, or was wrapped with an encryption key no longer active (so
// a rotation of the encryption key reaches every subject written since).
func (s *Store) writeDataKey(w Write, read readForWrite) (dk dataKey, wrapped string, err error) {
	dk, fresh, err := s.subjectDataKey(read, w.SubjectID)
	if err != nil {
		return dataKey{}, "", err
	}
	if w.LinkedVisitor != "" && !slices.Contains(dk.visitors, w.LinkedVisitor) {
		dk.visitors = append(dk.visitors, w.LinkedVisitor)
		fresh = true
	}
	if !fresh && !s.opts.Sealer.SealedWithActive(read.wrapped) {
		fresh = true
	}
	if fresh {
		if wrapped, err = dk.wrap(s.opts.Sealer); err != nil {
			return dataKey{}, "", err
		}
	}
	return dk, wrapped, nil
}

// stateChange is the state hash a write leaves and how to get there from
// the one read.
type stateChange struct {
	state    map[string]string
	set, del []any  // fields to set (name, value, ...) and delete
	old      []byte // the decisions before, one letter per purpose; nil when none was decided
}

// nextState computes the state hash the write leaves (at revision rev, with
// the data key handle).
func (s *Store) nextState(w Write, plan writePlan, read readForWrite, current int64, rev, handle string) stateChange {
	// Room for the revision, the purposes and the few internal fields a
	// write sets, so that set grows once.
	c := stateChange{state: maps.Clone(read.state), set: make([]any, 0, 2*(len(plan.purposes)+8))}
	// A write tags the state it leaves, so a state changed without the keys
	// would be laundered by the next write: the write records that it found
	// one instead (it still applies: an opt-out must never be refused for
	// it), and the mark stays, under the new tag.
	if _, marked := c.state[fieldTampered]; !marked && !s.intact(w.SubjectID, c.state, current, read.tail) {
		c.state[fieldTampered] = strconv.FormatInt(current, 10)
	}
	put := func(name, value string) {
		c.state[name] = value
		c.set = append(c.set, name, value)
	}
	put(fieldRevision, rev)
	old := make([]byte, len(plan.purposes))
	decided := false
	for i, p := range plan.purposes {
		old[i] = '-'
		if before, ok := read.state[p]; ok && before != "" {
			old[i], decided = before[0], true
		}
		put(p, plan.encoded[i]+"|"+rev)
	}
	if decided {
		c.old = old
	}
	if w.Region != "" {
		put(fieldRegion, w.Region)
	}
	if _, seen := read.state[fieldGPC]; w.GPC && !seen {
		put(fieldGPC, strconv.FormatInt(w.Now.Unix(), 10))
	}
	if w.Signals != nil {
		put(fieldSignals, encodeSignals(w.Signals, rev, w.Now))
	}
	if w.GuardianConfirmed && current > 0 { // at revision 0 there is nothing to cover
		put(fieldGuardianRevision, strconv.FormatInt(current, 10))
	}
	statusSet, statusDel := s.statusFields(w)
	for i := 0; i < len(statusSet); i += 2 {
		put(statusSet[i], statusSet[i+1])
	}
	for _, name := range statusDel {
		if _, ok := c.state[name]; ok {
			delete(c.state, name)
			c.del = append(c.del, name)
		}
	}
	if c.state[fieldDataKey] != handle {
		put(fieldDataKey, handle)
	}
	if v, ok := c.state[fieldTampered]; ok && read.state[fieldTampered] != v {
		c.set = append(c.set, fieldTampered, v)
	}
	put(fieldTag, s.stateTag(w.SubjectID, c.state))
	return c
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
