package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The change feed, reading side. Every write appends an entry to its
// partition's stream (write.go, erase.go); a watch reads all partitions and
// merges them. Nothing here blocks in Redis and no command names keys of two
// partitions (each partition is its own cluster slot): reads are pipelines of
// one command per partition, polled by the caller.
//
// Two ways to follow the feed:
//
//   - With a cursor: the caller keeps its position, an opaque string naming
//     the last entry delivered in every partition (see encodeCursor).
//   - As a durable consumer: one Redis consumer group named after it on every
//     partition stream keeps its position and the changes delivered to it but
//     not yet acknowledged (the group's pending entries list, PEL). A watch
//     first redelivers those, then new changes. Each group has a single Redis
//     consumer (groupReader): one watch per consumer at a time is the
//     intended use; two at once split the new changes between them and both
//     redeliver the pending ones.
//
// Besides the partition streams it keeps the set of consumer names and, per
// partition, how many entries each consumer lost to trimming (keys.go).
//
// Redis 7.0 or later is required (XGROUP ... ENTRIESREAD, XINFO lag).
//
// This file holds what a feed entry is and how one is opened; the reading is
// in feed_watch.go, the cursor in feed_cursor.go, consumers' registration and
// acknowledgements in feed_consumers.go, and their lag and what trimming took
// from them in feed_lag.go.

// Limits of the feed API.
const (
	DefaultFeedBatch = 100  // changes per message when the caller does not say
	MaxFeedBatch     = 1000 // changes per message at most
	MaxAckIDs        = 1000 // change ids per acknowledgement at most
	MaxFeedPurposes  = 64   // purposes in a filter at most
	// LagScanLimit bounds the work of a lag report: per consumer and
	// partition it reads at most this many pending entries and as many
	// undelivered ones (64,000 entries per consumer with 64 partitions).
	// Beyond it the unacknowledged count comes from Redis' counters (exact,
	// except while entries an erasure deleted lie ahead of the consumer's
	// position: then a lower bound), and the opt-outs and the oldest of them
	// are looked for only among the entries read, oldest first: the opt-out
	// count is then a lower bound and the oldest may be older.
	LagScanLimit = 500
)

// ErrConsumerNotFound: no feed consumer has that name (create it first).
var ErrConsumerNotFound = errors.New("store: no such feed consumer")

// groupReader is the one Redis consumer inside each consumer group.
const groupReader = "watch"

// FeedChange is one entry of the change feed.
type FeedChange struct {
	// ID names the entry for acknowledgements: "<partition>-<stream id>".
	ID        string
	SubjectID string
	Revision  int64 // after the change; 0 for an erasure
	Event     Event

	partition int
	sid       streamID
}

// FeedBatch is what one message of a watch carries.
type FeedBatch struct {
	Changes []FeedChange
	// Cursor is the position after the batch, to resume from; "" when
	// watching as a consumer (the service keeps the position).
	Cursor string
}

// FeedQuery says where a watch starts and what it delivers.
type FeedQuery struct {
	// Consumer is a durable consumer's name; "" to follow Cursor instead.
	Consumer string
	// Cursor resumes after a position from an earlier FeedBatch; "" starts
	// now, or at the oldest entry kept with FromOldest.
	Cursor     string
	FromOldest bool
	// Purposes keeps only changes concerning one of them (see passes); empty:
	// every change. Their syntax is checked here, their existence in the
	// policy by the caller.
	Purposes []string
	// BatchSize is the most changes per FeedBatch: 1 to MaxFeedBatch; 0 means
	// DefaultFeedBatch.
	BatchSize int
}

// feedChange decodes a stream entry; deleted is true for an entry whose data
// is gone: a pending entry deleted by an erasure, or an entry whose data key
// is gone (its subject was erased, and XDEL has not reached it yet). dks
// holds the data keys of the entries read (feedDataKeys).
//
// An entry of the current layout must carry an authentic event (its keyed
// hash, made from the subject id, the event and "p"): a change written into
// the stream by anyone without the operator's keys is refused, loudly, like
// one that cannot be opened: a skipped opt-out would be lost, and a forged
// one acted on.
func (s *Store) feedChange(partition int, m redis.XMessage, dks map[string]*dataKey) (c FeedChange, deleted bool, err error) {
	sid, ok := parseStreamID(m.ID)
	if !ok {
		return FeedChange{}, false, fmt.Errorf("%w: feed entry id %q", errCorrupt, m.ID)
	}
	c = FeedChange{ID: strconv.Itoa(partition) + "-" + m.ID, partition: partition, sid: sid}
	if len(m.Values) == 0 {
		return c, true, nil
	}
	sealed, _ := m.Values["sub"].(string)
	handle, _ := m.Values["d"].(string)
	var dk *dataKey
	var subject []byte
	if strings.HasPrefix(sealed, dataSealed) {
		if dk = dks[handle]; dk == nil {
			return c, true, nil // shredded: its subject was erased
		}
		subject, err = dk.open(sealed)
	} else {
		subject, err = s.opts.Sealer.Open(sealed) // an erase notice, or an entry written before data keys
	}
	if err != nil {
		// Failing loudly beats skipping: a skipped opt-out would be lost.
		return FeedChange{}, false, fmt.Errorf("store: change feed entry %s: subject id: %w (keep an encryption key listed while feed entries sealed with it are kept)", c.ID, err)
	}
	c.SubjectID = string(subject)
	ev, _ := m.Values["ev"].(string)
	if prev, ok := m.Values["p"].(string); ok && !s.keyedHashMatches(c.SubjectID, ev, prev) {
		return FeedChange{}, false, fmt.Errorf("store: change feed entry %s: the event does not match its keyed hash: it was written or changed without the operator's keys", c.ID)
	}
	if c.Event, err = decodeEvent(ev, s.opts.Sealer, dk); err != nil {
		return FeedChange{}, false, fmt.Errorf("change feed entry %s: %w", c.ID, err)
	}
	rev, _ := m.Values["rev"].(string)
	if c.Revision, err = strconv.ParseInt(rev, 10, 64); err != nil {
		return FeedChange{}, false, fmt.Errorf("%w: change feed entry %s: revision %q", errCorrupt, c.ID, rev)
	}
	return c, false, nil
}

// feedDataKeys reads the data keys of the entries read from each partition,
// in one round trip (a pipeline of one MGET per partition).
func (s *Store) feedDataKeys(ctx context.Context, partitions []int, read [][]redis.XMessage) (map[string]*dataKey, error) {
	handles := make([][]string, len(partitions))
	found := false
	for i, msgs := range read {
		seen := map[string]bool{}
		for _, m := range msgs {
			h, _ := m.Values["d"].(string)
			sealed, _ := m.Values["sub"].(string)
			if h != "" && !seen[h] && strings.HasPrefix(sealed, dataSealed) {
				seen[h] = true
				handles[i] = append(handles[i], h)
				found = true
			}
		}
	}
	out := map[string]*dataKey{}
	if !found {
		return out, nil
	}
	cmds := make([]*redis.SliceCmd, len(partitions))
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, partition := range partitions {
			if len(handles[i]) == 0 {
				continue
			}
			base := s.partitionBase(partition)
			names := make([]string, len(handles[i]))
			for j, h := range handles[i] {
				names[j] = dataKeyName(base, h)
			}
			cmds[i] = p.MGet(ctx, names...)
		}
		return nil
	})
	if err != nil {
		return nil, wrapErr("read data keys", err)
	}
	for i, cmd := range cmds {
		if cmd == nil {
			continue
		}
		for j, v := range cmd.Val() {
			if wrapped, ok := v.(string); ok {
				k, err := openDataKey(s.opts.Sealer, handles[i][j], wrapped)
				if err != nil {
					return nil, err
				}
				out[handles[i][j]] = &k
			}
		}
	}
	return out, nil
}
