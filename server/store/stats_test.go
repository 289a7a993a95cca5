package store_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/internal/redistest"
	"github.com/consentd/consentd/server/store"
	"github.com/consentd/consentd/server/store/storetest"
)

// roundTrips counts what a client sends: single commands and pipelines (and
// the commands in them).
type roundTrips struct {
	mu                   sync.Mutex
	commands, pipelines  int
	pipelinedCommands    int
	pipelinedCommandName map[string]int
}

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !connecting(cmd) {
			r.mu.Lock()
			r.commands++
			r.mu.Unlock()
		}
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		own := slices.DeleteFunc(slices.Clone(cmds), connecting)
		if len(own) == 0 {
			return next(ctx, cmds)
		}
		r.mu.Lock()
		r.pipelines++
		r.pipelinedCommands += len(own)
		for _, c := range own {
			r.pipelinedCommandName[c.Name()]++
		}
		r.mu.Unlock()
		return next(ctx, cmds)
	}
}

// connecting reports what go-redis sends to open a connection or learn a
// cluster's layout: not the store's.
func connecting(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "client", "hello", "cluster", "auth", "select", "ping":
		return true
	}
	return false
}

func (r *roundTrips) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.commands, r.pipelines, r.pipelinedCommands, r.pipelinedCommandName = 0, 0, 0, map[string]int{}
}

// Stats reads every partition's hash of every day of the range in one
// pipeline: one round trip, never one per day or per partition. On a
// cluster go-redis splits that pipeline per master, sending the parts
// together: one round trip per master.
func TestStatsReadIsOnePipeline(t *testing.T) {
	const days = store.MaxStatsDays
	check := func(t *testing.T, client redis.UniversalClient, count *roundTrips, masters int) {
		s, err := store.New(client, store.Options{Prefix: "rt", HMACKey: storetest.HMACKey, Sealer: storetest.Sealer})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
		if err := s.RecordBannerEvent(t.Context(), "DE", store.StepShown, now); err != nil {
			t.Fatal(err)
		}
		count.reset()
		got, err := s.Stats(t.Context(), now.AddDate(0, 0, 1-days), now)
		if err != nil || len(got) != days || len(got[days-1].Banner) != 1 {
			t.Fatalf("Stats: %d days, %v", len(got), err)
		}
		want := days * store.DefaultPartitions
		count.mu.Lock()
		defer count.mu.Unlock()
		if count.commands != 0 || count.pipelines < 1 || count.pipelines > masters ||
			count.pipelinedCommands != want || count.pipelinedCommandName["hgetall"] != want {
			t.Errorf("Stats sent %d commands and %d pipelines of %d commands (%v), want one pipeline (one per master: %d) of %d HGETALLs",
				count.commands, count.pipelines, count.pipelinedCommands, count.pipelinedCommandName, masters, want)
		}
	}
	t.Run("standalone", func(t *testing.T) {
		client := redistest.Start(t).Client(t)
		count := &roundTrips{pipelinedCommandName: map[string]int{}}
		client.AddHook(count)
		check(t, client, count, 1)
	})
	t.Run("cluster", func(t *testing.T) {
		client := redistest.StartCluster(t).Client(t)
		count := &roundTrips{pipelinedCommandName: map[string]int{}}
		// The nodes' hooks see the pipelines go-redis sends to each master.
		client.OnNewNode(func(node *redis.Client) { node.AddHook(count) })
		if err := client.ForEachShard(t.Context(), func(ctx context.Context, c *redis.Client) error { return c.Ping(ctx).Err() }); err != nil {
			t.Fatal(err)
		}
		check(t, client, count, 3)
	})
}
