package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/consentd/consentd/server/domain"
	"github.com/redis/go-redis/v9"
)

var consumerName = regexp.MustCompile(`^[a-z0-9._-]{1,64}$`)

func validateConsumer(name string) error {
	if !consumerName.MatchString(name) {
		return &ConsumerNameError{Reason: fmt.Sprintf("must be 1-64 characters of a-z 0-9 . _ -, got %s", domain.Quote(name, 16))}
	}
	return nil
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
				Reason: fmt.Sprintf("must be the id of a change, <partition>-<ms>-<seq> with a partition below %d, got %s", s.opts.Partitions, domain.Quote(id, 40))}
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
	cmds, err := s.evalEach(ctx, createGroupScript, s.opts.Partitions, func(i int) scriptCall {
		return createGroupArgs{feed: s.feedKey(i), consumer: name, start: start}.call()
	})
	if err != nil {
		return wrapErr("create feed consumer", err)
	}
	for _, cmd := range cmds {
		if n, _ := cmd.Int64(); n != groupCreated && n != groupExisted {
			return errors.New("store: create feed consumer: unexpected script reply")
		}
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
