package storetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/store"
)

func testFeedBadInput(t *testing.T, client redis.UniversalClient) {
	t.Parallel()
	s, prefix := NewStore(t, client)
	createConsumer(t, s, "mailer", false)
	good := watch(t, s, store.FeedQuery{}).Cursor()
	other, _ := NewStore(t, client)
	foreign := watch(t, other, store.FeedQuery{}).Cursor()
	eight, err := store.New(client, store.Options{Prefix: prefix, HMACKey: HMACKey, Sealer: Sealer, Partitions: 8})
	if err != nil {
		t.Fatal(err)
	}
	otherCount := watch(t, eight, store.FeedQuery{}).Cursor()
	tampered := []byte(good)
	tampered[len(tampered)/2] ^= 1
	tooMany := make([]string, store.MaxAckIDs+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("0-1-%d", i)
	}
	manyPurposes := make([]string, store.MaxFeedPurposes+1)
	for i := range manyPurposes {
		manyPurposes[i] = fmt.Sprintf("p%d", i)
	}
	watchErr := func(q store.FeedQuery) error { _, err := s.WatchFeed(ctx(t), q); return err }
	ackErr := func(consumer string, ids ...string) error {
		_, err := s.AcknowledgeChanges(ctx(t), consumer, ids)
		return err
	}
	for name, tc := range map[string]struct {
		err  error
		want errCheck
	}{
		"malformed cursor":                 {watchErr(store.FeedQuery{Cursor: "not a cursor"}), cursorErr},
		"truncated cursor":                 {watchErr(store.FeedQuery{Cursor: good[:len(good)-3]}), cursorErr},
		"tampered cursor":                  {watchErr(store.FeedQuery{Cursor: string(tampered)}), cursorErr},
		"cursor of another feed":           {watchErr(store.FeedQuery{Cursor: foreign}), cursorErr},
		"cursor of other partitions":       {watchErr(store.FeedQuery{Cursor: otherCount}), cursorErr},
		"batch size below 0":               {watchErr(store.FeedQuery{BatchSize: -1}), batchErr},
		"batch size above the maximum":     {watchErr(store.FeedQuery{BatchSize: store.MaxFeedBatch + 1}), batchErr},
		"empty purpose":                    {watchErr(store.FeedQuery{Purposes: []string{"ads", ""}}), purposeAt(1)},
		"internal field as purpose":        {watchErr(store.FeedQuery{Purposes: []string{"_rev"}}), purposeAt(0)},
		"too many purposes":                {watchErr(store.FeedQuery{Purposes: manyPurposes}), purposeAt(-1)},
		"watch: bad consumer name":         {watchErr(store.FeedQuery{Consumer: "Mailer!"}), nameErr},
		"watch: unknown consumer":          {watchErr(store.FeedQuery{Consumer: "nobody"}), notFound},
		"create: empty name":               {s.CreateConsumer(ctx(t), "", false), nameErr},
		"create: name too long":            {s.CreateConsumer(ctx(t), strings.Repeat("a", 65), false), nameErr},
		"create: upper case":               {s.CreateConsumer(ctx(t), "Mailer", false), nameErr},
		"delete: bad name":                 {s.DeleteConsumer(ctx(t), "a b"), nameErr},
		"delete: unknown consumer":         {s.DeleteConsumer(ctx(t), "nobody"), notFound},
		"ack: bad consumer name":           {ackErr("a/b", "0-1-0"), nameErr},
		"ack: unknown consumer":            {ackErr("nobody", "0-1-0"), notFound},
		"ack: no ids":                      {ackErr("mailer"), ackIDAt(-1)},
		"ack: too many ids":                {ackErr("mailer", tooMany...), ackIDAt(-1)},
		"ack: not an id":                   {ackErr("mailer", "0-1-0", "x"), ackIDAt(1)},
		"ack: stream id without partition": {ackErr("mailer", "1750000000000-0"), ackIDAt(0)},
		"ack: partition out of range":      {ackErr("mailer", "0-1-0", "0-1-1", "16-1-0"), ackIDAt(2)},
		"ack: not canonical":               {ackErr("mailer", "01-1-0"), ackIDAt(0)},
		"lag: unknown consumer":            {func() error { _, err := s.ConsumerLag(ctx(t), "nobody"); return err }(), notFound},
	} {
		if !tc.want.ok(tc.err) {
			t.Errorf("%s: %v, want %s", name, tc.err, tc.want.desc)
		}
	}
	if all, err := s.Consumers(ctx(t)); err != nil || len(all) != 1 {
		t.Errorf("after refused calls, Consumers = %+v, %v; want mailer only", all, err)
	}
}

// errCheck says what error a refused call must return. The store's input
// errors know nothing of the API's field names (api's toStatus adds them), so
// the suite checks their types and, for lists, the index of the bad item.
type errCheck struct {
	desc string
	ok   func(error) bool
}

func isErr[E error](desc string) errCheck {
	return errCheck{desc, func(err error) bool { var e E; return errors.As(err, &e) }}
}

var (
	cursorErr = isErr[*store.InvalidCursorError]("an InvalidCursorError")
	batchErr  = isErr[*store.BatchSizeError]("a BatchSizeError")
	nameErr   = isErr[*store.ConsumerNameError]("a ConsumerNameError")
	notFound  = errCheck{"ErrConsumerNotFound", func(err error) bool { return errors.Is(err, store.ErrConsumerNotFound) }}
)

// purposeAt and ackIDAt: the error of a bad list, about its item i (-1: the
// list as a whole).
func purposeAt(i int) errCheck {
	return errCheck{fmt.Sprintf("a FeedPurposesError about item %d", i), func(err error) bool {
		var e *store.FeedPurposesError
		return errors.As(err, &e) && e.Index == i
	}}
}

func ackIDAt(i int) errCheck {
	return errCheck{fmt.Sprintf("an AckIDsError about item %d", i), func(err error) bool {
		var e *store.AckIDsError
		return errors.As(err, &e) && e.Index == i
	}}
}
