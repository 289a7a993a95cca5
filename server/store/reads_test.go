package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/internal/eventually"
	"github.com/consentd/consentd/server/internal/redistest"
	"github.com/consentd/consentd/server/store"
	"github.com/consentd/consentd/server/store/storetest"
)

// Concurrent checks share round trips: while one batch of HMGETs is in
// flight, the checks that arrive queue and go out together as the next
// pipeline. Each still gets its own subject's answer.
func TestConcurrentChecksShareRoundTripsAndEachGetsItsOwnAnswer(t *testing.T) {
	srv := redistest.Start(t)
	client := srv.Client(t)
	s, _ := storetest.NewStore(t, client)
	const subjects = 64
	for i := range subjects {
		if _, err := s.Write(t.Context(), update(fmt.Sprint("subject-", i), i%2 == 0)); err != nil {
			t.Fatal(err)
		}
	}
	log := &commandLog{}
	client.AddHook(log)

	// Redis stalls for 300 ms (DEBUG SLEEP on a connection of its own), so
	// the first check's batch is in flight while the others queue behind it.
	stall := redis.NewClient(&redis.Options{Addr: srv.Addr(), ReadTimeout: 5 * time.Second})
	t.Cleanup(func() { _ = stall.Close() })
	stalled := make(chan error, 1)
	go func() { stalled <- stall.Do(t.Context(), "debug", "sleep", "0.3").Err() }()
	waitUntilStalled(t, srv.Addr())

	var wg sync.WaitGroup
	for i := range subjects {
		wg.Go(func() {
			rec, err := s.GetPurposes(t.Context(), fmt.Sprint("subject-", i), []string{"analytics"})
			if err != nil {
				t.Errorf("subject-%d: %v", i, err)
				return
			}
			if got, want := rec.Decisions["analytics"].Granted, i%2 == 0; got != want || rec.Revision != 1 {
				t.Errorf("subject-%d: granted %v revision %d, want granted %v revision 1: another subject's answer", i, got, rec.Revision, want)
			}
		})
	}
	wg.Wait()
	if err := <-stalled; err != nil {
		t.Fatal(err)
	}

	log.mu.Lock()
	defer log.mu.Unlock()
	largest := 0
	for _, sent := range log.sent {
		largest = max(largest, strings.Count(sent, "hmget"))
	}
	if largest < 2 {
		t.Errorf("%d concurrent checks behind a stalled Redis were sent %q: want HMGETs pipelined together", subjects, log.sent)
	}
}

// A check's read waits for a shared pipeline SharedReadTimeout at most: with
// Redis stalled, each of many concurrent checks fails with ErrUnavailable
// within it, those that went straight out (the first few) by the client's
// own timeout, the same. The pipeliner's own wait would end only at the
// caller's deadline, here far later.
func TestConcurrentChecksBehindAStalledRedisFailWithinTheSharedReadTimeout(t *testing.T) {
	srv := redistest.Start(t)
	const timeout = 300 * time.Millisecond
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1,
		ReadTimeout: timeout, WriteTimeout: timeout, PoolTimeout: timeout, DialTimeout: timeout})
	t.Cleanup(func() { _ = client.Close() })
	s, err := store.New(client, store.Options{Prefix: "stalled", HMACKey: storetest.HMACKey, Sealer: storetest.Sealer,
		SharedReadTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetPurposes(t.Context(), "subject", []string{"analytics"}); err != nil {
		t.Fatal(err)
	}

	stall := redis.NewClient(&redis.Options{Addr: srv.Addr(), ReadTimeout: 5 * time.Second})
	t.Cleanup(func() { _ = stall.Close() })
	stalled := make(chan error, 1)
	go func() { stalled <- stall.Do(context.Background(), "debug", "sleep", "3").Err() }()
	waitUntilStalled(t, srv.Addr())

	caller, cancel := context.WithTimeout(context.Background(), 10*timeout)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			began := time.Now()
			_, err := s.GetPurposes(caller, fmt.Sprint("subject-", i), []string{"analytics"})
			took := time.Since(began)
			if !errors.Is(err, store.ErrUnavailable) || caller.Err() != nil {
				t.Errorf("check %d with Redis stalled: %v, want ErrUnavailable before the caller's deadline", i, err)
			}
			if took > timeout+timeout/2 { // without the bound: twice the timeout
				t.Errorf("check %d with Redis stalled took %v, want at most %v", i, took, timeout)
			}
		})
	}
	wg.Wait()
	if err := <-stalled; err != nil {
		t.Fatal(err)
	}
}

// waitUntilStalled returns once Redis at addr is busy with a DEBUG SLEEP: a
// PING on a connection of its own goes unanswered for 20 ms (Redis answers
// one in well under that while idle).
func waitUntilStalled(t *testing.T, addr string) {
	t.Helper()
	probe := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, ReadTimeout: 20 * time.Millisecond})
	t.Cleanup(func() { _ = probe.Close() })
	eventually.True(t, "Redis to stall in DEBUG SLEEP", func() bool {
		return probe.Ping(context.Background()).Err() != nil
	})
}
