package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

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

// eraseScript deletes a subject's state hash, history list, idempotency
// hash and data key under every known HMAC key's names, and, if anything was
// there, adds an "erase" notice to the change feed (so downstream systems
// delete what they hold) and an anonymous tombstone (time, actor, reason; no
// subject id, no key name) to the partition's tombstone list. One slot, so
// atomic on a cluster too. Deleting the data key is the erasure of
// everything sealed with it, wherever a copy is (see datakey.go).
//
// KEYS[1] the partition's change feed, KEYS[2] its tombstone list, then per
// known HMAC key: state hash, history list, idempotency hash.
// ARGV[1] the subject id sealed with the operator's key, the notice's "sub"
// ARGV[2] the notice's event JSON
// ARGV[3] the tombstone JSON
// ARGV[4] feed MINID (unix ms), as in writeScript
// ARGV[5] the partition's key prefix, to name the data key (see
// readForWriteScript)
//
// Returns {0} if nothing was stored; otherwise {1, notice id, {link events},
// data key handle, wrapped data key}: the history's link events (from
// before users' data keys kept their linked visitors) and the data key's
// record as it was, "" for none: the caller reads the linked visitors from
// them.
var eraseScript = redis.NewScript(`
local existed = false
local links, handle, wrapped = {}, '', ''
for i = 3, #KEYS, 3 do
  if redis.call('EXISTS', KEYS[i], KEYS[i + 1]) > 0 then
    existed = true
    handle = redis.call('HGET', KEYS[i], '_dk') or ''
    for _, e in ipairs(redis.call('LRANGE', KEYS[i + 1], 0, -1)) do
      if string.find(e, '"t":"link"', 1, true) then links[#links + 1] = e end
    end
  end
  redis.call('DEL', KEYS[i], KEYS[i + 1], KEYS[i + 2])
end
if not existed then return {0} end
if handle ~= '' then
  local key = ARGV[5] .. ':k:' .. handle
  wrapped = redis.call('GET', key) or ''
  redis.call('DEL', key)
end
local id = redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[4], '*', 'd', handle, 'sub', ARGV[1], 'rev', 0, 'p', '', 'ev', ARGV[2])
redis.call('RPUSH', KEYS[2], ARGV[3])
return {1, id, links, handle, wrapped}
`)

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
	keys := []string{known[0].feed, known[0].tombstones()}
	for _, k := range known {
		keys = append(keys, k.state, k.history, k.idempotency)
	}
	event, err := json.Marshal(eventHead{Type: domain.EventErase, At: e.Now.UnixMilli(), Actor: e.Actor, Source: sourceLetters[domain.SourceAPI],
		Channel: e.Channel, New: map[string]string{}})
	if err != nil {
		return EraseResult{}, err
	}
	content := string(event[:len(event)-1]) + `,"rev":0`
	notice := content + `,"h":"` + s.eventHash(e.SubjectID, content, "") + `"}`
	stone, err := json.Marshal(tombstone{At: e.Now.UnixMilli(), Actor: e.Actor, Reason: e.Reason, Channel: e.Channel})
	if err != nil {
		return EraseResult{}, err
	}
	minID := max(e.Now.UnixMilli()-s.opts.FeedRetention.Milliseconds(), 0)
	reply, err := s.runScript(ctx, eraseScript, keys, s.opts.Sealer.Seal([]byte(e.SubjectID)), notice, stone, minID, known[0].base).Slice()
	if err != nil {
		return EraseResult{}, wrapErr("erase", err)
	}
	if code, _ := reply[0].(int64); code == 0 {
		return EraseResult{}, nil
	}
	if len(reply) != 5 {
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
