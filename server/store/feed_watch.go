package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/domain"
)

// FeedReader reads one watch, message after message. It is not safe for
// concurrent use.
type FeedReader struct {
	s        *Store
	consumer string          // "" when following a cursor
	purposes map[string]bool // nil: every change
	batch    int
	// pos is the last entry read per partition (following a cursor).
	pos []streamID
	// pending, for a consumer, is per partition the id after which its
	// pending entries are still to be redelivered; "" once all were.
	pending []string
}

// WatchFeed checks q and returns a reader positioned where q says. For a
// consumer it first counts what retention trimmed before the consumer
// acknowledged it (see collectTrimmed), so the redelivery that follows
// sees only entries that still exist or were deleted by an erasure.
func (s *Store) WatchFeed(ctx context.Context, q FeedQuery) (*FeedReader, error) {
	r := &FeedReader{s: s, consumer: q.Consumer, batch: q.BatchSize}
	if r.batch == 0 {
		r.batch = DefaultFeedBatch
	}
	if r.batch < 1 || r.batch > MaxFeedBatch {
		return nil, &BatchSizeError{Size: q.BatchSize, Reason: fmt.Sprintf("must be 0 (default %d) to %d, got %d", DefaultFeedBatch, MaxFeedBatch, q.BatchSize)}
	}
	if len(q.Purposes) > MaxFeedPurposes {
		return nil, &FeedPurposesError{Index: -1, Reason: fmt.Sprintf("at most %d, got %d", MaxFeedPurposes, len(q.Purposes))}
	}
	for i, p := range q.Purposes {
		if checkPurposeID(p) != nil {
			return nil, &FeedPurposesError{Index: i, Reason: "must be a purpose id (not empty, not starting with '_')"}
		}
		if r.purposes == nil {
			r.purposes = make(map[string]bool, len(q.Purposes))
		}
		r.purposes[p] = true
	}

	if q.Consumer != "" {
		if err := validateConsumer(q.Consumer); err != nil {
			return nil, err
		}
		// The cursor fields are ignored with a consumer, as the API says.
		if err := s.collectTrimmed(ctx, []string{q.Consumer}); err != nil {
			return nil, err
		}
		r.pending = make([]string, s.opts.Partitions)
		for i := range r.pending {
			r.pending[i] = "0"
		}
		return r, nil
	}

	if q.Cursor != "" {
		pos, err := s.decodeCursor(q.Cursor)
		if err != nil {
			return nil, err
		}
		r.pos = pos
		return r, nil
	}
	r.pos = make([]streamID, s.opts.Partitions)
	if q.FromOldest {
		return r, nil // 0-0 everywhere: before the first entry
	}
	// Now: the last entry of every partition.
	cmds := make([]*redis.XMessageSliceCmd, s.opts.Partitions)
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range cmds {
			cmds[i] = p.XRevRangeN(ctx, s.feedKey(i), "+", "-", 1)
		}
		return nil
	})
	if err != nil {
		return nil, wrapErr("watch feed", err)
	}
	for i, cmd := range cmds {
		if last := cmd.Val(); len(last) == 1 {
			id, ok := parseStreamID(last[0].ID)
			if !ok {
				return nil, fmt.Errorf("%w: feed entry id %q", errCorrupt, last[0].ID)
			}
			r.pos[i] = id
		}
	}
	return r, nil
}

// Cursor is the position after everything read so far, for a heartbeat or
// the last message; "" for a consumer.
func (r *FeedReader) Cursor() string {
	if r.consumer != "" {
		return ""
	}
	return r.s.encodeCursor(r.pos)
}

// Read returns the next changes, oldest first within each partition (a
// consumer's redelivered changes before new ones), split into batches of at
// most the batch size; none when nothing is new. more
// says that a partition may hold more right away: read again without
// waiting. A consumer's changes that do not pass the purpose filter, and
// pending entries deleted by an erasure, are acknowledged for it here.
func (r *FeedReader) Read(ctx context.Context) (batches []FeedBatch, more bool, err error) {
	if r.consumer == "" {
		return r.readCursor(ctx)
	}
	return r.readConsumer(ctx)
}

func (r *FeedReader) readCursor(ctx context.Context) ([]FeedBatch, bool, error) {
	start := slices.Clone(r.pos)
	var changes []FeedChange
	more, err := r.s.readRounds(ctx, allPartitions(r.s.opts.Partitions), r.batch,
		func(p redis.Pipeliner, partition int, count int64) func() ([]redis.XMessage, error) {
			return p.XRangeN(ctx, r.s.feedKey(partition), after(r.pos[partition]), "+", count).Result
		},
		func(partition int, msgs []redis.XMessage, _ bool, dks map[string]*dataKey) error {
			for _, m := range msgs {
				c, deleted, err := r.s.feedChange(partition, m, dks)
				if err != nil {
					return err
				}
				r.pos[partition] = c.sid
				if !deleted && r.passes(c.Event) {
					changes = append(changes, c)
				}
			}
			return nil
		})
	if err != nil {
		r.pos = start // nothing was delivered
		return nil, false, err
	}
	sortChanges(changes)
	batches := splitBatches(changes, r.batch)
	pos := slices.Clone(start)
	for i := range batches {
		if i == len(batches)-1 {
			pos = r.pos // also past the entries filtered out after the last change
		} else {
			for _, c := range batches[i].Changes {
				pos[c.partition] = c.sid
			}
		}
		batches[i].Cursor = r.s.encodeCursor(pos)
	}
	return batches, more, nil
}

func (r *FeedReader) readConsumer(ctx context.Context) ([]FeedBatch, bool, error) {
	var (
		changes []FeedChange
		acks    = map[int][]string{} // by partition: filtered out, or deleted by an erasure
	)
	keep := func(partition int, msgs []redis.XMessage, dks map[string]*dataKey) error {
		for _, m := range msgs {
			c, deleted, err := r.s.feedChange(partition, m, dks)
			if err != nil {
				return err
			}
			if deleted || !r.passes(c.Event) {
				acks[partition] = append(acks[partition], m.ID)
				continue
			}
			changes = append(changes, c)
		}
		return nil
	}
	group := func(p redis.Pipeliner, partition int, count int64, from string) func() ([]redis.XMessage, error) {
		cmd := p.XReadGroup(ctx, &redis.XReadGroupArgs{Group: r.consumer, Consumer: groupReader,
			Streams: []string{r.s.feedKey(partition), from}, Count: count, Block: -1}) // -1: never block
		return func() ([]redis.XMessage, error) {
			streams, err := cmd.Result()
			if len(streams) == 0 {
				return nil, err
			}
			return streams[0].Messages, err
		}
	}

	// What was delivered before and not acknowledged comes first.
	var pending []int
	for i, from := range r.pending {
		if from != "" {
			pending = append(pending, i)
		}
	}
	more := false
	if len(pending) > 0 {
		var err error
		more, err = r.s.readRounds(ctx, pending, r.batch,
			func(p redis.Pipeliner, partition int, count int64) func() ([]redis.XMessage, error) {
				return group(p, partition, count, r.pending[partition])
			},
			func(partition int, msgs []redis.XMessage, full bool, dks map[string]*dataKey) error {
				if len(msgs) > 0 {
					r.pending[partition] = msgs[len(msgs)-1].ID
				}
				if !full {
					r.pending[partition] = "" // all redelivered
				}
				return keep(partition, msgs, dks)
			})
		if err != nil {
			return nil, false, err
		}
	}
	// Then new changes, once every partition's pending ones were redelivered,
	// and after them in the batches.
	sortChanges(changes)
	redelivered := len(changes)
	if !more {
		var err error
		more, err = r.s.readRounds(ctx, allPartitions(r.s.opts.Partitions), r.batch,
			func(p redis.Pipeliner, partition int, count int64) func() ([]redis.XMessage, error) {
				return group(p, partition, count, ">")
			},
			func(partition int, msgs []redis.XMessage, _ bool, dks map[string]*dataKey) error {
				return keep(partition, msgs, dks)
			})
		if err != nil {
			return nil, false, err
		}
	}

	if len(acks) > 0 {
		_, err := r.s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for partition, ids := range acks {
				p.XAck(ctx, r.s.feedKey(partition), r.consumer, ids...)
			}
			return nil
		})
		if err != nil {
			return nil, false, wrapErr("watch feed: acknowledge filtered changes", err)
		}
	}
	sortChanges(changes[redelivered:])
	return splitBatches(changes, r.batch), more, nil
}

// passes reports whether a change concerns one of the purposes asked for.
// A change that concerns every purpose always passes: a restriction or its
// lift, a minor mark, a guardian's confirmation, an erasure, a GPC signal
// (it opts out every GPC purpose, whatever the change lists), and any change
// that lists no purpose (e.g. a link that merged nothing: the visitor now
// follows the user's record). A link that merged decisions passes like an
// update: if it changed one of the purposes.
func (r *FeedReader) passes(e Event) bool {
	if r.purposes == nil {
		return true
	}
	switch e.Type {
	case domain.EventRestrict, domain.EventLift, domain.EventMinor, domain.EventGuardian, domain.EventErase:
		return true
	}
	if e.GPC || len(e.Changes) == 0 {
		return true
	}
	for _, c := range e.Changes {
		if r.purposes[c.Purpose] {
			return true
		}
	}
	return false
}

// readRounds reads about n entries from the partitions in at most two round
// trips (each a pipeline of one read per partition), handing each
// partition's entries to got. The first round asks every partition for an
// equal share; the second asks again only those that filled their share, for
// the rest of n split between them. So a backlog in a few partitions still
// fills a batch, and the entries read stay near n (a little more in total
// is fine: the caller splits them into batches). full tells got that the
// partition gave as many as asked (it may hold more); more reports that some
// partition did so in the last round.
func (s *Store) readRounds(ctx context.Context, partitions []int, n int,
	read func(p redis.Pipeliner, partition int, count int64) func() ([]redis.XMessage, error),
	got func(partition int, msgs []redis.XMessage, full bool, dks map[string]*dataKey) error,
) (more bool, err error) {
	count := int64(max(1, (n+len(partitions)-1)/len(partitions)))
	total := 0
	for round := 0; round < 2 && len(partitions) > 0; round++ {
		results := make([]func() ([]redis.XMessage, error), len(partitions))
		_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, partition := range partitions {
				results[i] = read(p, partition, count)
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) { // Nil: a group read found nothing
			return false, feedErr(err)
		}
		var full []int
		read := make([][]redis.XMessage, len(partitions))
		for i := range partitions {
			msgs, err := results[i]()
			if err != nil && !errors.Is(err, redis.Nil) {
				return false, feedErr(err)
			}
			read[i] = msgs
		}
		dks, err := s.feedDataKeys(ctx, partitions, read)
		if err != nil {
			return false, err
		}
		for i, partition := range partitions {
			msgs := read[i]
			isFull := int64(len(msgs)) == count
			if isFull {
				full = append(full, partition)
			}
			total += len(msgs)
			if err := got(partition, msgs, isFull, dks); err != nil {
				return false, err
			}
		}
		partitions = full
		if total >= n || len(full) == 0 {
			break
		}
		count = int64(max(1, (n-total+len(full)-1)/len(full)))
	}
	return len(partitions) > 0, nil
}

func feedErr(err error) error {
	if redis.HasErrorPrefix(err, "NOGROUP") {
		return fmt.Errorf("%w (its consumer group is missing)", ErrConsumerNotFound)
	}
	return wrapErr("watch feed", err)
}

// sortChanges orders changes by time; ids grow within a partition, so each
// partition's entries keep their order.
func sortChanges(changes []FeedChange) {
	slices.SortFunc(changes, func(a, b FeedChange) int {
		return cmp.Or(a.sid.compare(b.sid), cmp.Compare(a.partition, b.partition))
	})
}

func splitBatches(changes []FeedChange, size int) []FeedBatch {
	var batches []FeedBatch
	for chunk := range slices.Chunk(changes, size) {
		batches = append(batches, FeedBatch{Changes: chunk})
	}
	return batches
}

func allPartitions(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
