package store

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/domain"
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

var consumerName = regexp.MustCompile(`^[a-z0-9._-]{1,64}$`)

func validateConsumer(name string) error {
	if !consumerName.MatchString(name) {
		return &ConsumerNameError{Reason: fmt.Sprintf("must be 1-64 characters of a-z 0-9 . _ -, got %q", cut(name, 16))}
	}
	return nil
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

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
// acknowledged it (see collectTrimmedScript), so the redelivery that follows
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

// streamID is a Redis stream entry id, <ms>-<seq>.
type streamID struct{ ms, seq uint64 }

// parseStreamID accepts only the canonical form Redis writes.
func parseStreamID(s string) (streamID, bool) {
	msPart, seqPart, ok := strings.Cut(s, "-")
	if !ok {
		return streamID{}, false
	}
	ms, err1 := strconv.ParseUint(msPart, 10, 64)
	seq, err2 := strconv.ParseUint(seqPart, 10, 64)
	id := streamID{ms, seq}
	if err1 != nil || err2 != nil || id.String() != s {
		return streamID{}, false
	}
	return id, true
}

func (id streamID) String() string {
	return strconv.FormatUint(id.ms, 10) + "-" + strconv.FormatUint(id.seq, 10)
}

func (id streamID) compare(o streamID) int {
	return cmp.Or(cmp.Compare(id.ms, o.ms), cmp.Compare(id.seq, o.seq))
}

// after is an XRANGE start just past id ("-" from the beginning).
func after(id streamID) string {
	if id == (streamID{}) {
		return "-"
	}
	return "(" + id.String()
}

// A cursor is the last entry delivered in every partition:
//
//	base64url (no padding) of
//	  version byte 1
//	  uvarint number of partitions
//	  uvarint base: the largest millisecond time among the entries
//	  per partition: uvarint 0 for "none yet", else base - ms + 1; uvarint seq
//	  4 bytes: SHA-256 of the key prefix and everything above, cut
//
// Times relative to the newest keep it short (~4 bytes per active
// partition: ~300 characters with 64 partitions). The check bytes refuse a
// damaged cursor and one from another installation's feed (another prefix).
const cursorVersion = 1

func (s *Store) encodeCursor(pos []streamID) string {
	var base uint64
	for _, id := range pos {
		base = max(base, id.ms)
	}
	b := []byte{cursorVersion}
	b = binary.AppendUvarint(b, uint64(len(pos)))
	b = binary.AppendUvarint(b, base)
	for _, id := range pos {
		if id == (streamID{}) {
			b = binary.AppendUvarint(b, 0)
		} else {
			b = binary.AppendUvarint(b, base-id.ms+1)
		}
		b = binary.AppendUvarint(b, id.seq)
	}
	b = append(b, s.cursorCheck(b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *Store) cursorCheck(body []byte) []byte {
	h := sha256.New()
	h.Write([]byte(s.opts.Prefix))
	h.Write([]byte{0})
	h.Write(body)
	return h.Sum(nil)[:4]
}

func (s *Store) decodeCursor(cursor string) ([]streamID, error) {
	bad := func(why string) error {
		return &InvalidCursorError{Reason: why}
	}
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(raw) < 5 {
		return nil, bad("malformed")
	}
	body, check := raw[:len(raw)-4], raw[len(raw)-4:]
	if !bytes.Equal(check, s.cursorCheck(body)) {
		return nil, bad("not a cursor of this change feed")
	}
	rd := bytes.NewReader(body)
	if v, _ := rd.ReadByte(); v != cursorVersion {
		return nil, bad("unknown cursor version")
	}
	n, err1 := binary.ReadUvarint(rd)
	base, err2 := binary.ReadUvarint(rd)
	if err1 != nil || err2 != nil {
		return nil, bad("malformed")
	}
	if n != uint64(s.opts.Partitions) {
		return nil, bad(fmt.Sprintf("made for %d partitions, the feed has %d", n, s.opts.Partitions))
	}
	pos := make([]streamID, n)
	for i := range pos {
		d, err1 := binary.ReadUvarint(rd)
		seq, err2 := binary.ReadUvarint(rd)
		switch {
		case err1 != nil || err2 != nil, d > base+1, d == 0 && seq != 0:
			return nil, bad("malformed")
		case d > 0:
			pos[i] = streamID{base - (d - 1), seq}
		}
	}
	if rd.Len() != 0 {
		return nil, bad("malformed")
	}
	return pos, nil
}

// parseChangeID splits "<partition>-<ms>-<seq>".
func (s *Store) parseChangeID(id string) (int, string, bool) {
	p, rest, ok := strings.Cut(id, "-")
	if !ok {
		return 0, "", false
	}
	partition, err := strconv.Atoi(p)
	if err != nil || partition < 0 || partition >= s.opts.Partitions || strconv.Itoa(partition) != p {
		return 0, "", false
	}
	if _, ok := parseStreamID(rest); !ok {
		return 0, "", false
	}
	return partition, rest, true
}

// AcknowledgeChanges marks changes as applied by the consumer: they are not
// redelivered and no longer count as lag. It returns how many of them were
// pending (delivered and not yet acknowledged).
func (s *Store) AcknowledgeChanges(ctx context.Context, consumer string, ids []string) (int64, error) {
	if err := validateConsumer(consumer); err != nil {
		return 0, err
	}
	if len(ids) == 0 || len(ids) > MaxAckIDs {
		return 0, &AckIDsError{Index: -1, Reason: fmt.Sprintf("give 1 to %d change ids, got %d", MaxAckIDs, len(ids))}
	}
	byPartition := map[int][]string{}
	for i, id := range ids {
		partition, sid, ok := s.parseChangeID(id)
		if !ok {
			return 0, &AckIDsError{Index: i,
				Reason: fmt.Sprintf("must be the id of a change, <partition>-<ms>-<seq> with a partition below %d, got %q", s.opts.Partitions, cut(id, 40))}
		}
		byPartition[partition] = append(byPartition[partition], sid)
	}
	var member *redis.BoolCmd
	acks := make([]*redis.IntCmd, 0, len(byPartition))
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		member = p.SIsMember(ctx, s.consumersKey(), consumer)
		for partition, sids := range byPartition {
			acks = append(acks, p.XAck(ctx, s.feedKey(partition), consumer, sids...))
		}
		return nil
	})
	if err != nil {
		return 0, wrapErr("acknowledge changes", err)
	}
	if !member.Val() {
		return 0, ErrConsumerNotFound
	}
	var n int64
	for _, a := range acks {
		n += a.Val()
	}
	return n, nil
}

// createGroupScript creates a consumer's group on one partition stream (and
// the stream if missing), with Redis' count of entries read set so that its
// lag is right from the start: without it Redis estimates, and could not
// tell later how many entries trimming took from a consumer that never read.
//
// KEYS[1] the partition's feed stream
// ARGV[1] consumer (group) name
// ARGV[2] "$": changes from now on; "0": also the entries kept now
// Returns 1 when created, 0 when the group existed already.
var createGroupScript = redis.NewScript(`
local added, length = 0, 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'entries-added' then added = info[i + 1] end
    if info[i] == 'length' then length = info[i + 1] end
  end
end
local read = added
if ARGV[2] == '0' then read = added - length end
local res = redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], ARGV[2], 'MKSTREAM', 'ENTRIESREAD', read)
if type(res) == 'table' and res.err then
  if string.find(res.err, 'BUSYGROUP', 1, true) then return 0 end
  return redis.error_reply(res.err)
end
return 1
`)

// CreateConsumer registers a durable consumer: changes from now on, or from
// the oldest kept with fromOldest. Creating an existing consumer changes
// nothing.
func (s *Store) CreateConsumer(ctx context.Context, name string, fromOldest bool) error {
	if err := validateConsumer(name); err != nil {
		return err
	}
	start := "$"
	if fromOldest {
		start = "0"
	}
	// Groups first, then the name: a listed consumer has its groups.
	if _, err := s.evalEach(ctx, createGroupScript, s.opts.Partitions, func(i int) ([]string, []any) {
		return []string{s.feedKey(i)}, []any{name, start}
	}); err != nil {
		return wrapErr("create feed consumer", err)
	}
	return wrapErr("create feed consumer", s.client.SAdd(ctx, s.consumersKey(), name).Err())
}

// DeleteConsumer drops a consumer's groups, its trimmed counts and its name.
// Names go last, so a delete that failed half way can be retried.
func (s *Store) DeleteConsumer(ctx context.Context, name string) error {
	if err := validateConsumer(name); err != nil {
		return err
	}
	known, err := s.client.SIsMember(ctx, s.consumersKey(), name).Result()
	if err != nil {
		return wrapErr("delete feed consumer", err)
	}
	if !known {
		return ErrConsumerNotFound
	}
	_, err = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range s.opts.Partitions {
			p.XGroupDestroy(ctx, s.feedKey(i), name)
			p.HDel(ctx, s.trimmedKey(i), name)
		}
		return nil
	})
	if err != nil {
		return wrapErr("delete feed consumer", err)
	}
	return wrapErr("delete feed consumer", s.client.SRem(ctx, s.consumersKey(), name).Err())
}

// evalEach runs script n times in one pipeline, keysArgs giving each call's
// keys and arguments. A pipelined EVALSHA cannot fall back to EVAL by itself
// (see runScript): when Redis lacks the script the pipeline is sent again
// with EVAL. The scripts run this way are safe to run twice.
func (s *Store) evalEach(ctx context.Context, script *redis.Script, n int, keysArgs func(i int) ([]string, []any)) ([]*redis.Cmd, error) {
	run := func(eval func(redis.Pipeliner, []string, ...any) *redis.Cmd) ([]*redis.Cmd, error) {
		cmds := make([]*redis.Cmd, n)
		_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range cmds {
				keys, args := keysArgs(i)
				cmds[i] = eval(p, keys, args...)
			}
			return nil
		})
		return cmds, err
	}
	cmds, err := run(func(p redis.Pipeliner, keys []string, args ...any) *redis.Cmd {
		return script.EvalSha(ctx, p, keys, args...)
	})
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		cmds, err = run(func(p redis.Pipeliner, keys []string, args ...any) *redis.Cmd {
			return script.Eval(ctx, p, keys, args...)
		})
	}
	return cmds, err
}

// collectTrimmedScript finds, for one consumer on one partition, the entries
// retention trimmed before the consumer acknowledged them, adds their number
// to the consumer's count in the partition's trimmed hash, and forgets them
// so they are counted once:
//
//   - pending entries older than the first entry kept: trimming removes a
//     prefix of the stream, so their data is gone. They are acknowledged.
//     (An erasure's deletion of such an old entry cannot be told apart and
//     counts too; deleted entries newer than the first one are not counted:
//     the watch skips and acknowledges them.)
//   - entries never delivered that were trimmed: Redis' lag of the group
//     (entries added after its position, from its entries-read counter)
//     minus the entries still there after the position. The counter is then
//     set to match what is there. Redis reports no lag while an erasure has
//     deleted entries after the position; such a gap is not counted. Past
//     the scan limit of entries after the position it is not counted either
//     (a consumer that far behind shows in its unacknowledged count).
//
// KEYS[1] the partition's feed stream, KEYS[2] the partition's trimmed hash
// ARGV[1] consumer (group) name, ARGV[2] scan limit
// Returns the number newly counted; -1 when the group does not exist.
var collectTrimmedScript = redis.NewScript(`
local function fields(flat)
  local m = {}
  for i = 1, #flat, 2 do m[flat[i]] = flat[i + 1] end
  return m
end
local function before(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end

if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local group
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  g = fields(g)
  if g['name'] == ARGV[1] then
    group = g
    break
  end
end
if not group then return -1 end
local stream = fields(redis.call('XINFO', 'STREAM', KEYS[1]))
local first = stream['first-entry'] and stream['first-entry'][1]
local limit = tonumber(ARGV[2])
local trimmed = 0

local upto = '+'
if first then upto = '(' .. first end
local gone = redis.call('XPENDING', KEYS[1], ARGV[1], '-', upto, limit)
if #gone > 0 then
  local ids = {}
  for i, p in ipairs(gone) do ids[i] = p[1] end
  trimmed = redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
end

local lag, last = group['lag'], group['last-delivered-id']
if lag and lag > 0 then
  local kept
  if not first or before(last, first) then
    kept = stream['length']
  else
    local rest = redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', limit + 1)
    if #rest <= limit then kept = #rest end
  end
  if kept and lag > kept then
    trimmed = trimmed + lag - kept
    redis.call('XGROUP', 'SETID', KEYS[1], ARGV[1], last, 'ENTRIESREAD', stream['entries-added'] - kept)
  end
end
if trimmed > 0 then redis.call('HINCRBY', KEYS[2], ARGV[1], trimmed) end
return trimmed
`)

// collectTrimmed runs collectTrimmedScript for the consumers on every
// partition, in one pipeline. A consumer that is not registered is
// ErrConsumerNotFound.
func (s *Store) collectTrimmed(ctx context.Context, consumers []string) error {
	var members *redis.BoolSliceCmd
	if _, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		members = p.SMIsMember(ctx, s.consumersKey(), stringsToAny(consumers)...)
		return nil
	}); err != nil {
		return wrapErr("feed consumer", err)
	}
	for _, known := range members.Val() {
		if !known {
			return ErrConsumerNotFound
		}
	}
	P := s.opts.Partitions
	_, err := s.evalEach(ctx, collectTrimmedScript, len(consumers)*P, func(i int) ([]string, []any) {
		return []string{s.feedKey(i % P), s.trimmedKey(i % P)}, []any{consumers[i/P], LagScanLimit}
	})
	return wrapErr("feed consumer: count trimmed entries", err)
}

// ConsumerLag is how far a consumer is behind.
type ConsumerLag struct {
	Name string
	// Unacknowledged: entries kept in the feed it has not acknowledged
	// (pending, or not delivered yet).
	Unacknowledged int64
	// UnacknowledgedOptOuts are the opt-outs among them (Event.OptOut), within
	// LagScanLimit entries per partition.
	UnacknowledgedOptOuts int64
	// OldestUnacknowledgedOptOut is when the oldest of those happened; zero
	// if none.
	OldestUnacknowledgedOptOut time.Time
	// TrimmedUnacknowledged counts entries retention trimmed before it
	// acknowledged them, since it was created. Should stay 0.
	TrimmedUnacknowledged int64
}

// ConsumerLag reports one consumer.
func (s *Store) ConsumerLag(ctx context.Context, name string) (ConsumerLag, error) {
	if err := validateConsumer(name); err != nil {
		return ConsumerLag{}, err
	}
	lags, err := s.lags(ctx, []string{name})
	if err != nil {
		return ConsumerLag{}, err
	}
	return lags[0], nil
}

// Consumers reports every consumer, by name.
func (s *Store) Consumers(ctx context.Context) ([]ConsumerLag, error) {
	names, err := s.client.SMembers(ctx, s.consumersKey()).Result()
	if err != nil {
		return nil, wrapErr("list feed consumers", err)
	}
	if len(names) == 0 {
		return nil, nil
	}
	slices.Sort(names)
	return s.lags(ctx, names)
}

// lags computes the lag of consumers in two round trips after counting what
// was trimmed: the groups of every partition with the pending entries' ids,
// then those entries and the ones after each group's position (at most
// LagScanLimit of each per consumer and partition).
func (s *Store) lags(ctx context.Context, names []string) ([]ConsumerLag, error) {
	if err := s.collectTrimmed(ctx, names); err != nil {
		return nil, err
	}
	P := s.opts.Partitions
	groups := make([]*redis.XInfoGroupsCmd, P)
	trimmed := make([]*redis.MapStringStringCmd, P)
	pending := make([][]*redis.XPendingExtCmd, len(names)) // [consumer][partition]
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range P {
			groups[i] = p.XInfoGroups(ctx, s.feedKey(i))
			trimmed[i] = p.HGetAll(ctx, s.trimmedKey(i))
		}
		for c, name := range names {
			pending[c] = make([]*redis.XPendingExtCmd, P)
			for i := range P {
				pending[c][i] = p.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: s.feedKey(i), Group: name,
					Start: "-", End: "+", Count: LagScanLimit})
			}
		}
		return nil
	})
	if err != nil && unavailable(err) {
		return nil, wrapErr("feed consumer lag", err)
	}
	// A partition without a stream, or without the consumer's group (a
	// delete or create cut short), has nothing of it: skip it.
	absent := func(err error) bool {
		return err == nil || redis.HasErrorPrefix(err, "NOGROUP") || redis.HasErrorPrefix(err, "ERR no such key")
	}
	for i := range P {
		if err := groups[i].Err(); !absent(err) {
			return nil, wrapErr("feed consumer lag", err)
		}
		if err := trimmed[i].Err(); err != nil {
			return nil, wrapErr("feed consumer lag", err)
		}
		for c := range names {
			if err := pending[c][i].Err(); !absent(err) {
				return nil, wrapErr("feed consumer lag", err)
			}
		}
	}

	lags := make([]ConsumerLag, len(names))
	type scan struct {
		info    redis.XInfoGroup
		ok      bool
		entries []*redis.XMessageSliceCmd // the pending entries, one XRANGE each
		later   *redis.XMessageSliceCmd   // entries after the group's position
	}
	scans := make([][]scan, len(names))
	for c, name := range names {
		lags[c].Name = name
		scans[c] = make([]scan, P)
		for i := range P {
			for _, g := range groups[i].Val() {
				if g.Name == name {
					scans[c][i] = scan{info: g, ok: true}
				}
			}
			if n, err := strconv.ParseInt(trimmed[i].Val()[name], 10, 64); err == nil {
				lags[c].TrimmedUnacknowledged += n
			}
		}
	}
	_, err = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for c := range names {
			for i := range P {
				sc := &scans[c][i]
				if !sc.ok {
					continue
				}
				for _, pe := range pending[c][i].Val() {
					sc.entries = append(sc.entries, p.XRangeN(ctx, s.feedKey(i), pe.ID, pe.ID, 1))
				}
				sc.later = p.XRangeN(ctx, s.feedKey(i), "("+sc.info.LastDeliveredID, "+", LagScanLimit)
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrapErr("feed consumer lag", err)
	}

	for c := range names {
		lag := &lags[c]
		for i := range P {
			sc := scans[c][i]
			if !sc.ok {
				continue
			}
			var seen []redis.XMessage
			deleted := int64(0)
			for _, cmd := range sc.entries {
				if found := cmd.Val(); len(found) == 1 {
					seen = append(seen, found[0])
				} else {
					deleted++ // by an erasure; the next watch acknowledges it
				}
			}
			later := sc.later.Val()
			seen = append(seen, later...)
			undelivered := int64(len(later))
			if len(later) == LagScanLimit && sc.info.Lag > undelivered {
				undelivered = sc.info.Lag // Redis counted them; -1 when it cannot
			}
			lag.Unacknowledged += sc.info.Pending - deleted + undelivered
			for _, m := range seen {
				ev, _ := m.Values["ev"].(string)
				e, err := decodeEvent(ev, s.opts.Sealer, nil) // opting out or not is in the plain part
				if err != nil {
					return nil, fmt.Errorf("change feed entry %d-%s: %w", i, m.ID, err)
				}
				if e.OptOut() {
					lag.UnacknowledgedOptOuts++
					if lag.OldestUnacknowledgedOptOut.IsZero() || e.At.Before(lag.OldestUnacknowledgedOptOut) {
						lag.OldestUnacknowledgedOptOut = e.At
					}
				}
			}
		}
	}
	return lags, nil
}
