package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// collectTrimmed counts, for each consumer on every partition (one
// collect_trimmed.lua each, in one pipeline), the entries retention trimmed
// before the consumer acknowledged them, adds their number to the consumer's
// count in the partition's trimmed hash, and forgets them so they are
// counted once:
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
// The scripts' replies are not needed: the counts stay in Redis, and a
// partition without the consumer's group (a create or delete cut short) has
// nothing to count. A consumer that is not registered is
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
	_, err := s.evalEach(ctx, collectTrimmedScript, len(consumers)*P, func(i int) scriptCall {
		return collectTrimmedArgs{feed: s.feedKey(i % P), trimmed: s.trimmedKey(i % P), consumer: consumers[i/P], limit: LagScanLimit}.call()
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
