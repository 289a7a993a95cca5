package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/consentd/consentd/server/domain"
)

// Erasure is what erasing a subject needs to say about it.
type Erasure struct {
	SubjectID string
	Actor     string    // who erased: "visitor" or "key:<name>"
	Reason    string    // an operator's reason (e.g. a ticket number); kept in the tombstone
	Channel   string    // "grpc" or "rest"
	Now       time.Time // zero: time.Now()
}

// EraseResult says what an erasure found.
type EraseResult struct {
	// Erased: something was stored about the subject. Erasing a subject with
	// nothing stored (or erasing twice) changes nothing and is not an error.
	Erased bool
	// LinkedVisitors are the visitors that were linked to the subject (found
	// in its link events), for the caller to erase too.
	LinkedVisitors []string
	// FeedEntriesDeleted counts the subject's earlier change-feed entries
	// deleted.
	FeedEntriesDeleted int
}

// tombstone is an erased subject's only trace: when, by whom and why.
type tombstone struct {
	At      int64  `json:"at"` // unix ms
	Actor   string `json:"a"`
	Reason  string `json:"why,omitempty"`
	Channel string `json:"c,omitempty"`
}

// Erase deletes everything stored about a subject: its state, history,
// idempotency records and data key under every known HMAC key, and its
// earlier entries in the change feed. What remains is an anonymous tombstone
// and one "erase" notice in the feed carrying the subject id sealed with the
// operator's key, which tells downstream systems to delete their copies (and
// is trimmed with the feed like any entry). What the subject's earlier feed
// entries held is unreadable from the moment the script deletes the data
// key; XDEL then takes them out of every reader's view.
//
// The feed entries are found by their data key's handle; entries written
// before data keys by scanning the subject's partition stream and opening
// each entry's sealed subject id: O(entries kept in the partition), which the
// feed's retention bounds.
func (s *Store) Erase(ctx context.Context, e Erasure) (EraseResult, error) {
	if e.SubjectID == "" {
		return EraseResult{}, errors.New("store: empty subject id")
	}
	if e.Now.IsZero() {
		e.Now = time.Now()
	}
	known := s.knownKeysFor(e.SubjectID)
	event, err := json.Marshal(eventHead{Type: domain.EventErase, At: e.Now.UnixMilli(), Actor: e.Actor, Source: sourceLetters[domain.SourceAPI],
		Channel: e.Channel, New: map[string]string{}})
	if err != nil {
		return EraseResult{}, err
	}
	notice := s.completeEvent(e.SubjectID, string(event[:len(event)-1]), "0", "", nil, "")
	stone, err := json.Marshal(tombstone{At: e.Now.UnixMilli(), Actor: e.Actor, Reason: e.Reason, Channel: e.Channel})
	if err != nil {
		return EraseResult{}, err
	}
	minID := max(e.Now.UnixMilli()-s.opts.FeedRetention.Milliseconds(), 0)
	reply, err := s.runScript(ctx, eraseScript, eraseArgs{known: known,
		sealedSubject: s.opts.Sealer.Seal([]byte(e.SubjectID)), notice: notice, tombstone: string(stone), minID: minID}.call()).Slice()
	if err != nil {
		return EraseResult{}, wrapErr("erase", err)
	}
	if code, _ := reply[0].(int64); code == eraseNothing {
		return EraseResult{}, nil
	}
	if code, _ := reply[0].(int64); code != eraseErased || len(reply) != 5 {
		return EraseResult{}, errors.New("store: erase: unexpected script reply")
	}
	res := EraseResult{Erased: true}
	entryID, _ := reply[1].(string)
	links, _ := reply[2].([]any)
	handle, _ := reply[3].(string)
	wrapped, _ := reply[4].(string)
	// The data key is gone from Redis; this copy opens the linked visitors
	// and is dropped with the call.
	dk, _ := s.openSubjectKey(handle, wrapped)
	seen := map[string]bool{}
	linked := func(visitor string) {
		if visitor != "" && !seen[visitor] && domain.IsVisitorID(visitor) {
			seen[visitor] = true
			res.LinkedVisitors = append(res.LinkedVisitors, visitor)
		}
	}
	if dk != nil {
		for _, visitor := range dk.visitors {
			linked(visitor)
		}
	}
	for _, l := range links {
		raw, _ := l.(string)
		if ev, err := decodeEvent(raw, s.opts.Sealer, dk); err == nil {
			linked(ev.Counterpart)
		}
	}
	res.FeedEntriesDeleted, err = s.deleteFeedEntries(ctx, known[0].feed, e.SubjectID, handle, entryID)
	return res, err
}

// deleteFeedEntries deletes the subject's entries older than before from a
// partition's feed stream: those with its data key's handle, and those
// written before data keys whose sealed subject id opens to it.
func (s *Store) deleteFeedEntries(ctx context.Context, feed, subjectID, handle, before string) (int, error) {
	const page = 500
	deleted := 0
	start := "-"
	for {
		entries, err := s.client.XRangeN(ctx, feed, start, "("+before, page).Result()
		if err != nil {
			return deleted, wrapErr("erase feed entries", err)
		}
		var ids []string
		for _, entry := range entries {
			d, _ := entry.Values["d"].(string)
			if d != "" {
				if d == handle && handle != "" {
					ids = append(ids, entry.ID)
				}
				continue
			}
			sealed, _ := entry.Values["sub"].(string)
			if sub, err := s.opts.Sealer.Open(sealed); err == nil && string(sub) == subjectID {
				ids = append(ids, entry.ID)
			}
		}
		if len(ids) > 0 {
			n, err := s.client.XDel(ctx, feed, ids...).Result()
			if err != nil {
				return deleted, wrapErr("erase feed entries", err)
			}
			deleted += int(n)
		}
		if len(entries) < page {
			return deleted, nil
		}
		start = "(" + entries[len(entries)-1].ID
	}
}

// Tombstones returns the anonymous tombstones of a partition (0 <= partition
// < Options.Partitions), oldest first: when each erasure happened, by whom,
// and why.
func (s *Store) Tombstones(ctx context.Context, partition int) ([]Tombstone, error) {
	raw, err := s.client.LRange(ctx, subjectKeys{base: s.partitionBase(partition)}.tombstones(), 0, -1).Result()
	if err != nil {
		return nil, wrapErr("tombstones", err)
	}
	out := make([]Tombstone, 0, len(raw))
	for _, r := range raw {
		var t tombstone
		if err := json.Unmarshal([]byte(r), &t); err != nil {
			return nil, fmt.Errorf("%w: tombstone: %v", errCorrupt, err)
		}
		out = append(out, Tombstone{At: time.UnixMilli(t.At).UTC(), Actor: t.Actor, Reason: t.Reason, Channel: t.Channel})
	}
	return out, nil
}

// Tombstone is the anonymous record an erasure leaves.
type Tombstone struct {
	At      time.Time
	Actor   string
	Reason  string
	Channel string
}

// PartitionOf is the subject's partition number (an unkeyed hash of the id;
// see keys.go): where its feed entries and its tombstone go.
func (s *Store) PartitionOf(subjectID string) int { return s.partitionOf(subjectID) }
