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
		err   error
		field string // "" for ErrConsumerNotFound
	}{
		"malformed cursor":                 {watchErr(store.FeedQuery{Cursor: "not a cursor"}), "cursor"},
		"truncated cursor":                 {watchErr(store.FeedQuery{Cursor: good[:len(good)-3]}), "cursor"},
		"tampered cursor":                  {watchErr(store.FeedQuery{Cursor: string(tampered)}), "cursor"},
		"cursor of another feed":           {watchErr(store.FeedQuery{Cursor: foreign}), "cursor"},
		"cursor of other partitions":       {watchErr(store.FeedQuery{Cursor: otherCount}), "cursor"},
		"batch size below 0":               {watchErr(store.FeedQuery{BatchSize: -1}), "batch_size"},
		"batch size above the maximum":     {watchErr(store.FeedQuery{BatchSize: store.MaxFeedBatch + 1}), "batch_size"},
		"empty purpose":                    {watchErr(store.FeedQuery{Purposes: []string{"ads", ""}}), "purposes[1]"},
		"internal field as purpose":        {watchErr(store.FeedQuery{Purposes: []string{"_rev"}}), "purposes[0]"},
		"too many purposes":                {watchErr(store.FeedQuery{Purposes: manyPurposes}), "purposes"},
		"watch: bad consumer name":         {watchErr(store.FeedQuery{Consumer: "Mailer!"}), "consumer"},
		"watch: unknown consumer":          {watchErr(store.FeedQuery{Consumer: "nobody"}), ""},
		"create: empty name":               {s.CreateConsumer(ctx(t), "", false), "consumer"},
		"create: name too long":            {s.CreateConsumer(ctx(t), strings.Repeat("a", 65), false), "consumer"},
		"create: upper case":               {s.CreateConsumer(ctx(t), "Mailer", false), "consumer"},
		"delete: bad name":                 {s.DeleteConsumer(ctx(t), "a b"), "consumer"},
		"delete: unknown consumer":         {s.DeleteConsumer(ctx(t), "nobody"), ""},
		"ack: bad consumer name":           {ackErr("a/b", "0-1-0"), "consumer"},
		"ack: unknown consumer":            {ackErr("nobody", "0-1-0"), ""},
		"ack: no ids":                      {ackErr("mailer"), "change_ids"},
		"ack: too many ids":                {ackErr("mailer", tooMany...), "change_ids"},
		"ack: not an id":                   {ackErr("mailer", "0-1-0", "x"), "change_ids[1]"},
		"ack: stream id without partition": {ackErr("mailer", "1750000000000-0"), "change_ids[0]"},
		"ack: partition out of range":      {ackErr("mailer", "0-1-0", "0-1-1", "16-1-0"), "change_ids[2]"},
		"ack: not canonical":               {ackErr("mailer", "01-1-0"), "change_ids[0]"},
		"lag: unknown consumer":            {func() error { _, err := s.ConsumerLag(ctx(t), "nobody"); return err }(), ""},
	} {
		if tc.field == "" {
			if !errors.Is(tc.err, store.ErrConsumerNotFound) {
				t.Errorf("%s: %v, want ErrConsumerNotFound", name, tc.err)
			}
			continue
		}
		if got := inputField(tc.err); got != tc.field {
			t.Errorf("%s: %v, want an input error of %q, got one of %q", name, tc.err, tc.field, got)
		}
	}
	if all, err := s.Consumers(ctx(t)); err != nil || len(all) != 1 {
		t.Errorf("after refused calls, Consumers = %+v, %v; want mailer only", all, err)
	}
}

// inputField is the request field the API names for a store input error
// (as api's toStatus maps them); "" for any other error.
func inputField(err error) string {
	var (
		batch    *store.BatchSizeError
		purposes *store.FeedPurposesError
		consumer *store.ConsumerNameError
		cursor   *store.InvalidCursorError
		ack      *store.AckIDsError
	)
	indexed := func(field string, i int) string {
		if i < 0 {
			return field
		}
		return fmt.Sprintf("%s[%d]", field, i)
	}
	switch {
	case errors.As(err, &batch):
		return "batch_size"
	case errors.As(err, &purposes):
		return indexed("purposes", purposes.Index)
	case errors.As(err, &consumer):
		return "consumer"
	case errors.As(err, &cursor):
		return "cursor"
	case errors.As(err, &ack):
		return indexed("change_ids", ack.Index)
	}
	return ""
}
