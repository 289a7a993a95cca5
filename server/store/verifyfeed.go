package store

// The change feed's part of a verification (see verify.go): each entry kept
// must be authentic, and no subject may be behind an authentic entry of its
// own.

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// feedPage is how many feed entries one XRANGE reads.
const feedPage = 500

// feedSubject is what a feed check knows of one subject it met.
type feedSubject struct {
	view  subjectView
	rev   int64                       // the state's revision
	first int64                       // the revision of the history's first event; 0: none
	revs  map[int64][sha256.Size]byte // the events of the entries checked, by revision
}

// feedCheck is the check of one partition's change feed.
type feedCheck struct {
	v        *verifier
	ctx      context.Context
	feed     string
	base     string
	now      time.Time
	want     func(subject, handle string) bool // nil: every entry
	keys     map[string]*dataKey               // by handle; nil: gone
	subjects map[string]*feedSubject
	erased   map[string]bool // handles named by erase notices
	orphans  map[string]bool // handles of recent entries whose data key is gone
}

// checkFeed checks a partition's change feed entries after from ("-": all)
// up to the last one there when it starts. want, when not nil, keeps only
// the entries of one subject (by subject id, or by data key handle when
// the key is gone). page is called after each page with the last entry
// checked.
func (v *verifier) checkFeed(ctx context.Context, partition int, from string, want func(subject, handle string) bool, page func(last string)) error {
	s := v.s
	fc := &feedCheck{v: v, ctx: ctx, feed: s.feedKey(partition), base: s.partitionBase(partition), now: v.opts.Now(), want: want,
		keys: map[string]*dataKey{}, subjects: map[string]*feedSubject{}, erased: map[string]bool{}, orphans: map[string]bool{}}
	last, err := s.client.XRevRangeN(ctx, fc.feed, "+", "-", 1).Result()
	if err != nil {
		return wrapErr("verify", err)
	}
	if len(last) == 0 {
		return nil
	}
	end := last[0].ID
	start := from
	if start != "-" {
		start = "(" + start
	}
	for {
		entries, err := s.client.XRangeN(ctx, fc.feed, start, end, feedPage).Result()
		if err != nil {
			return wrapErr("verify", err)
		}
		for _, m := range entries {
			if err := fc.entry(m); err != nil {
				return err
			}
		}
		if len(entries) > 0 && page != nil {
			page(entries[len(entries)-1].ID)
		}
		if len(entries) < feedPage {
			break
		}
		start = "(" + entries[len(entries)-1].ID
	}
	if len(fc.orphans) == 0 {
		return nil
	}
	// An erasure that took a data key after this check began put its notice
	// after end.
	tail, err := s.client.XRange(ctx, fc.feed, "("+end, "+").Result()
	if err != nil {
		return wrapErr("verify", err)
	}
	for _, m := range tail {
		if rev, _ := m.Values["rev"].(string); rev == "0" {
			if d, _ := m.Values["d"].(string); d != "" {
				fc.erased[d] = true
			}
		}
	}
	for handle := range fc.orphans {
		if !fc.erased[handle] {
			v.find(Finding{Kind: FindingMissing, Key: dataKeyName(fc.base, handle),
				Detail: "a data key is gone while the change feed holds recent entries sealed with it, and no erasure notice names it (deleted without an erasure)"})
		}
	}
	return nil
}

// dataKey is the data key of handle; nil when it is gone (or forged:
// reported).
func (fc *feedCheck) dataKey(handle string) (*dataKey, error) {
	if dk, ok := fc.keys[handle]; ok {
		return dk, nil
	}
	s := fc.v.s
	wrapped, err := s.client.Get(fc.ctx, dataKeyName(fc.base, handle)).Result()
	if errors.Is(err, redis.Nil) {
		fc.keys[handle] = nil
		return nil, nil
	}
	if err != nil {
		return nil, wrapErr("verify", err)
	}
	dk, err := openDataKey(s.opts.Sealer, handle, wrapped)
	if err != nil {
		fc.v.find(Finding{Kind: FindingForged, Key: dataKeyName(fc.base, handle), Detail: "the data key record does not open with the operator's keys: " + err.Error()})
		fc.keys[handle] = nil
		return nil, nil
	}
	fc.keys[handle] = &dk
	return &dk, nil
}

// subjectAt is the subject as read at revision rev or later: it is read
// again when the feed is ahead of what was read of it (written since).
func (fc *feedCheck) subjectAt(subject string, rev int64) (*feedSubject, error) {
	fs := fc.subjects[subject]
	if fs != nil && fs.rev >= rev {
		return fs, nil
	}
	s := fc.v.s
	known := s.knownKeysFor(subject)
	pairs := make([]string, 0, 2*len(known))
	for _, k := range known {
		pairs = append(pairs, k.state, k.history)
	}
	view, err := s.readSubject(fc.ctx, pairs, fc.base)
	if err != nil {
		return nil, err
	}
	if fs == nil {
		fs = &feedSubject{revs: map[int64][sha256.Size]byte{}}
		fc.subjects[subject] = fs
	}
	fs.view = view
	fs.rev, _ = strconv.ParseInt(view.state[fieldRevision], 10, 64)
	fs.first = 0
	if len(view.entries) > 0 {
		var head storedEvent
		if json.Unmarshal([]byte(view.entries[0]), &head) == nil {
			fs.first = head.Rev
		}
	}
	return fs, nil
}

// entry checks one change-feed entry.
func (fc *feedCheck) entry(m redis.XMessage) error {
	v, s := fc.v, fc.v.s
	at := fc.feed + " " + m.ID
	forged := func(why string) {
		v.find(Finding{Kind: FindingForged, Key: at, Detail: why})
	}
	sealed, _ := m.Values["sub"].(string)
	handle, _ := m.Values["d"].(string)
	ev, _ := m.Values["ev"].(string)
	revField, _ := m.Values["rev"].(string)
	prev, hasPrev := m.Values["p"].(string)
	byDataKey := strings.HasPrefix(sealed, dataSealed)
	var subject string
	if byDataKey {
		if handle == "" {
			if fc.want == nil {
				v.report.FeedEntries++
				forged("sealed with a data key, but names none")
			}
			return nil
		}
		dk, err := fc.dataKey(handle)
		if err != nil {
			return err
		}
		if dk == nil {
			if fc.want != nil && !fc.want("", handle) {
				return nil
			}
			v.report.FeedEntries++
			// A visitor's data key expires with its record, which every
			// write renews: the key of an entry younger than the retention
			// must exist, unless an erasure took it.
			if sid, ok := parseStreamID(m.ID); ok && fc.now.Sub(time.UnixMilli(int64(sid.ms))) < s.opts.VisitorRetention {
				fc.orphans[handle] = true
			}
			return nil
		}
		plain, err := dk.open(sealed)
		if err != nil {
			v.report.FeedEntries++
			forged("its subject id is not sealed with the data key it names")
			return nil
		}
		subject = string(plain)
	} else {
		plain, err := s.opts.Sealer.Open(sealed)
		if err != nil {
			v.report.FeedEntries++
			forged("its subject id does not open with the operator's keys (forged, or sealed with an encryption key removed from the key file): " + err.Error())
			return nil
		}
		subject = string(plain)
	}
	if fc.want != nil && !fc.want(subject, handle) {
		return nil
	}
	v.report.FeedEntries++
	var se storedEvent
	if err := json.Unmarshal([]byte(ev), &se); err != nil {
		forged("its event is not valid JSON")
		return nil
	}
	if revField != strconv.FormatInt(se.Rev, 10) {
		forged(fmt.Sprintf("its revision %q is not its event's, %d", revField, se.Rev))
		return nil
	}
	switch {
	case !hasPrev && !byDataKey:
		// Written before keyed MACs: the subject id is authentic (sealed),
		// the event is not.
		if v.opts.Strict {
			v.find(Finding{Kind: FindingUnauthenticated, Key: at, Revision: se.Rev, Detail: "a change-feed entry written before keyed MACs: its event is not authenticated"})
		}
	case !hasPrev || !s.keyedHashMatches(subject, ev, prev):
		forged("its event does not match its keyed hash: written or changed without the operator's keys")
		return nil
	}
	if se.Rev == 0 { // an erase notice
		if handle != "" {
			fc.erased[handle] = true
		}
		return nil
	}
	fs, err := fc.subjectAt(subject, se.Rev)
	if err != nil {
		return err
	}
	if fs.view.found == subjectNone {
		// Nothing under any of its names: erased or expired (then its data
		// key went at the same instant, and the entry waits for XDEL or its
		// retention), or deleted.
		if !byDataKey {
			return nil
		}
		still, err := s.client.Exists(fc.ctx, dataKeyName(fc.base, handle)).Result()
		if err != nil {
			return wrapErr("verify", err)
		}
		if still == 0 {
			fc.orphans[handle] = true
			return nil
		}
		v.find(Finding{Kind: FindingMissing, Key: dataKeyName(fc.base, handle),
			Detail: "a data key whose subject has no state naming it: the state was deleted (an erasure deletes both)"})
		return nil
	}
	stateKey := s.knownKeysFor(subject)[fs.view.found-1].state
	if fs.rev < se.Rev {
		v.find(Finding{Kind: FindingRollback, Key: stateKey, Revision: se.Rev,
			Detail: fmt.Sprintf("the change feed holds an authentic change at revision %d, but the state is at revision %d: rolled back", se.Rev, fs.rev)})
		return nil
	}
	if i := se.Rev - fs.first; fs.first > 0 && i >= 0 && i < int64(len(fs.view.entries)) && fs.view.entries[i] != ev {
		v.find(Finding{Kind: FindingRollback, Key: stateKey, Revision: se.Rev,
			Detail: fmt.Sprintf("the change feed's authentic event for revision %d is not the history's: rolled back and written again", se.Rev)})
		return nil
	}
	sum := sha256.Sum256([]byte(ev))
	if seen, ok := fs.revs[se.Rev]; ok && seen == sum {
		forged(fmt.Sprintf("the authentic entry of revision %d a second time: copied, or the subject was rolled back and the same change written again", se.Rev))
		return nil
	}
	fs.revs[se.Rev] = sum
	return nil
}
