package store

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Verification of the keys a scan finds: a subject's state and history, and
// data keys (verify.go runs the scan; verifyfeed.go checks the feed).

// checkKey checks one key a scan found.
func (v *verifier) checkKey(ctx context.Context, key string) error {
	s := v.s
	pk, ok := s.parseKey(key)
	if !ok {
		return nil // not of this layout (another prefix that the pattern matched)
	}
	switch pk.kind {
	case 's', 'h':
		state, history := pk.base+":s:"+pk.rest, pk.base+":h:"+pk.rest
		view, err := s.readSubject(ctx, []string{state, history}, pk.base)
		if err != nil || view.found == subjectNone {
			return err // gone since the scan saw it: erased, or expired
		}
		if pk.kind == 'h' && len(view.state) > 0 {
			return nil // checked with its state
		}
		if len(view.state) == 0 {
			v.find(Finding{Kind: FindingMissing, Key: history, Detail: "a history without its state: the state was deleted"})
			return nil
		}
		subject, ok := v.subjectOf(pk, view)
		if !ok {
			return nil
		}
		v.checkSubject(state, history, subject, view)
	case 'k':
		return v.checkDataKey(ctx, pk, key)
	}
	return nil
}

// subjectOf learns the subject id of a state found by a scan from its data
// key record, and checks that the state's name is the subject's own under
// a known HMAC key. ok is false when what is found rules out checking
// further (reported). A state without a data key (written before them)
// gives "": its chain can still be checked, unkeyed.
func (v *verifier) subjectOf(pk parsedKey, view subjectView) (subject string, ok bool) {
	s := v.s
	state := pk.base + ":s:" + pk.rest
	handle := view.state[fieldDataKey]
	if handle == "" {
		return "", true
	}
	if view.wrapped == "" {
		v.report.Subjects++
		v.find(Finding{Kind: FindingMissing, Key: dataKeyName(pk.base, handle),
			Detail: "the state's data key is gone, but no erasure took it (an erasure deletes the state with it)"})
		return "", false
	}
	dk, err := openDataKey(s.opts.Sealer, handle, view.wrapped)
	if err != nil {
		v.report.Subjects++
		v.find(Finding{Kind: FindingForged, Key: dataKeyName(pk.base, handle), Detail: "the data key record does not open with the operator's keys: " + err.Error()})
		return "", false
	}
	if !v.ownName(pk, dk.subject) {
		v.report.Subjects++
		v.find(Finding{Kind: FindingMisplaced, Key: state,
			Detail: "the state is not under its subject's name for any known HMAC key: copied from another subject's name, or under an HMAC key removed from the key file"})
		return "", false
	}
	return dk.subject, true
}

// ownName reports whether pk (a subject's key) is named for subject under
// the active or a previous HMAC key.
func (v *verifier) ownName(pk parsedKey, subject string) bool {
	s := v.s
	if s.partitionOf(subject) != pk.partition {
		return false
	}
	if s.keyedID(s.opts.HMACKey, subject) == pk.rest {
		return true
	}
	for _, key := range s.opts.PreviousHMACKeys {
		if s.keyedID(key, subject) == pk.rest {
			return true
		}
	}
	return false
}

// checkSubject verifies one subject's state and history (found under the
// names state and history; subject "" when unknown: a state from before
// data keys found by a scan).
func (v *verifier) checkSubject(state, history, subject string, view subjectView) {
	s := v.s
	v.report.Subjects++
	if len(view.state) == 0 {
		v.find(Finding{Kind: FindingMissing, Key: history, Detail: "a history without its state: the state was deleted"})
		return
	}
	if handle := view.state[fieldDataKey]; handle != "" && subject != "" && view.wrapped == "" {
		v.find(Finding{Kind: FindingMissing, Key: dataKeyName(state[:strings.LastIndex(state, ":s:")], handle),
			Detail: "the state's data key is gone, but no erasure took it (an erasure deletes the state with it)"})
		return
	}
	var h History
	rev, _ := strconv.ParseInt(view.state[fieldRevision], 10, 64)
	if len(view.entries) == 0 && rev > 0 && s.opts.HistoryRetention > 0 {
		// The history expired (Options.HistoryRetention): the state stands
		// alone until the next write starts a new chain.
		switch {
		case view.state[fieldTag] != "":
			if !s.stateTagMatches(subject, view.state) {
				h.Chain = &ChainError{Revision: rev, Problem: "the state's fields do not match its integrity tag (changed without the operator's keys)"}
			}
		case view.state[fieldDataKey] != "":
			h.Chain = &ChainError{Revision: rev, Problem: "the state has no integrity tag, though it was written with one"}
		default:
			h.StateUntagged = true
		}
	} else {
		s.verifyHistory(subject, view.entries, view.state, &h)
	}
	var chain *ChainError
	switch {
	case errors.As(h.Chain, &chain) && len(view.entries) == 0 && rev > 0:
		v.find(Finding{Kind: FindingMissing, Key: history, Revision: rev,
			Detail: "the history is gone while the state remains, and histories are kept as long as their state (history retention 0)"})
	case errors.As(h.Chain, &chain) && h.Checked < len(view.entries):
		v.find(Finding{Kind: FindingHistory, Key: history, Revision: chain.Revision, Detail: chain.Problem})
	case errors.As(h.Chain, &chain):
		v.find(Finding{Kind: FindingState, Key: state, Revision: chain.Revision, Detail: chain.Problem})
	case h.StateUntagged:
		v.report.Unauthenticated++
		if v.opts.Strict {
			v.find(Finding{Kind: FindingUnauthenticated, Key: state, Revision: rev,
				Detail: "written before keyed MACs and not since: its unkeyed chain verifies, which anyone could recompute"})
		}
	default:
		v.report.Verified++
	}
}

// checkDataKey checks a data key a scan found: its record opens, names a
// subject of this partition, and that subject's state names it.
func (v *verifier) checkDataKey(ctx context.Context, pk parsedKey, key string) error {
	s := v.s
	wrapped, err := s.client.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		return nil // erased or expired since the scan saw it
	}
	if err != nil {
		return wrapErr("verify", err)
	}
	dk, err := openDataKey(s.opts.Sealer, pk.rest, wrapped)
	if err != nil {
		v.find(Finding{Kind: FindingForged, Key: key, Detail: "the data key record does not open with the operator's keys: " + err.Error()})
		return nil
	}
	if s.partitionOf(dk.subject) != pk.partition {
		v.find(Finding{Kind: FindingMisplaced, Key: key, Detail: "the data key record names a subject of another partition"})
		return nil
	}
	known := s.knownKeysFor(dk.subject)
	states := make([]string, len(known))
	for i, k := range known {
		states[i] = k.state
	}
	orphan, err := s.runScript(ctx, dataKeyOrphanScript, dataKeyOrphanArgs{dataKey: key, handle: pk.rest, states: states}.call()).Int()
	if err != nil {
		return wrapErr("verify", err)
	}
	switch orphan {
	case dataKeyHeld:
		return nil
	case dataKeyOrphan:
		v.find(Finding{Kind: FindingMissing, Key: key, Detail: "a data key whose subject has no state naming it: the state was deleted (an erasure deletes both)"})
		return nil
	}
	return errors.New("store: verify: unexpected script reply")
}

// subjectView is what readSubjectScript read.
type subjectView struct {
	found   int // 1-based index of the pair holding the data; 0: none
	state   map[string]string
	entries []string
	wrapped string
	others  int
}

func (s *Store) readSubject(ctx context.Context, pairs []string, base string) (subjectView, error) {
	reply, err := s.runScript(ctx, readSubjectScript, readSubjectArgs{pairs: pairs, base: base}.call()).Slice()
	if err != nil {
		return subjectView{}, wrapErr("verify", err)
	}
	if len(reply) != 5 {
		return subjectView{}, errors.New("store: verify: unexpected script reply")
	}
	var view subjectView
	found, _ := reply[0].(int64)
	view.found = int(found)
	if view.state, err = pairsToMap(reply[1]); err != nil {
		return subjectView{}, err
	}
	list, _ := reply[2].([]any)
	view.entries = make([]string, len(list))
	for i, e := range list {
		view.entries[i], _ = e.(string)
	}
	view.wrapped, _ = reply[3].(string)
	others, _ := reply[4].(int64)
	view.others = int(others)
	return view, nil
}
