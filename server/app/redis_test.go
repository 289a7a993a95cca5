//go:build unix

package app

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/internal/redistest"
)

// --redis-timeout bounds a blocking read after its block time: XREAD BLOCK
// on an empty stream waits its block time and answers nothing, however
// long the block is next to --redis-timeout; with Redis stalled it fails
// within block time plus --redis-timeout. Without BLOCK, a stalled read
// fails within --redis-timeout.
func TestRedisTimeoutBoundsABlockingReadAfterItsBlockTime(t *testing.T) {
	srv := redistest.Start(t)
	const timeout, block = 200 * time.Millisecond, 600 * time.Millisecond
	// What a call may take beyond its bound: scheduling on a busy machine.
	const slack = timeout / 2
	client, err := newRedisClient(config.Config{RedisURL: srv.URL(), RedisTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	ctx := context.Background()
	xread := func(block time.Duration) (time.Duration, error) {
		began := time.Now()
		err := client.XRead(ctx, &redis.XReadArgs{Streams: []string{"empty", "$"}, Block: block}).Err()
		return time.Since(began), err
	}
	if err := client.Ping(ctx).Err(); err != nil { // dialled and handshaken before timing
		t.Fatal(err)
	}

	took, err := xread(block)
	if !errors.Is(err, redis.Nil) || took < block || took > block+slack {
		t.Errorf("XREAD BLOCK %v on an empty stream, Redis well: %v after %v, want no entries after %v", block, err, took, block)
	}

	srv.Pause()
	t.Cleanup(srv.Resume)
	took, err = xread(block)
	if err == nil || errors.Is(err, redis.Nil) || took < block || took > block+timeout+slack {
		t.Errorf("XREAD BLOCK %v, Redis stalled: %v after %v, want an error after %v to %v", block, err, took, block, block+timeout)
	}
	took, err = xread(-1) // no BLOCK
	if err == nil || errors.Is(err, redis.Nil) || took > timeout+slack {
		t.Errorf("XREAD without BLOCK, Redis stalled: %v after %v, want an error within %v", err, took, timeout)
	}
}
