package main

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The load generator: closed loop (N workers, each sending its next request
// when the previous one is answered, for a duration) and open loop (requests
// scheduled on a clock at a fixed rate, whatever the answers do, each
// request's latency measured from its scheduled time so a stalled server
// cannot hide its stall by slowing the sender: no coordinated omission).
//
// Both have a warm-up (connections made, pools filled, the servers' heaps
// grown) that is not measured, then a window that is. windowHooks run at the
// window's start and end, to read the servers' CPU time.

// op sends one request: worker is the caller (it picks its connection),
// seq counts the worker's requests (it picks the subject).
type op func(ctx context.Context, worker, seq int) error

type windowHooks struct {
	start, end func()
}

// runResult is one measured window.
type runResult struct {
	Requests   int64
	Errors     int64
	FirstError string
	Elapsed    time.Duration   // the window's length
	Latencies  []time.Duration // every measured request's, sorted
	// Open loop only.
	Offered float64 // requests/s scheduled
	Unsent  int64   // scheduled in the window but never sent (server hopelessly behind)
	// How late each request was sent (its worker began it), sorted: the
	// generator's own delay, and the wait for a free worker if all were busy.
	Lateness []time.Duration
	// How late the pacer handed each request out (its own timer), sorted.
	PacerLateness []time.Duration
}

// worker's tally; each worker writes its own, merged at the end.
type tally struct {
	lat      []time.Duration
	late     []time.Duration
	paced    []time.Duration
	errs     int64
	firstErr error
	unsent   int64
}

func (t *tally) record(d time.Duration, err error) {
	t.lat = append(t.lat, d)
	if err != nil {
		t.errs++
		if t.firstErr == nil {
			t.firstErr = err
		}
	}
}

func merge(tallies []tally, elapsed time.Duration) runResult {
	var r runResult
	r.Elapsed = elapsed
	for i := range tallies {
		t := &tallies[i]
		r.Latencies = append(r.Latencies, t.lat...)
		r.Lateness = append(r.Lateness, t.late...)
		r.PacerLateness = append(r.PacerLateness, t.paced...)
		r.Errors += t.errs
		r.Unsent += t.unsent
		if t.firstErr != nil && r.FirstError == "" {
			r.FirstError = t.firstErr.Error()
		}
	}
	r.Requests = int64(len(r.Latencies))
	slices.Sort(r.Latencies)
	slices.Sort(r.Lateness)
	slices.Sort(r.PacerLateness)
	return r
}

// closedLoop runs concurrency workers back to back: warmup unmeasured, then
// duration measured. Requests count in the window they started in.
func closedLoop(ctx context.Context, concurrency int, warmup, duration time.Duration, do op, hooks windowHooks) (runResult, error) {
	const (
		warming = iota
		measuring
		stopping
	)
	var phase atomic.Int32
	tallies := make([]tally, concurrency)
	var wg sync.WaitGroup
	for w := range concurrency {
		wg.Go(func() {
			t := &tallies[w]
			t.lat = make([]time.Duration, 0, 4096)
			for seq := 0; ctx.Err() == nil; seq++ {
				p := phase.Load()
				if p == stopping {
					return
				}
				start := time.Now()
				err := do(ctx, w, seq)
				if p == measuring {
					t.record(time.Since(start), err)
				}
			}
		})
	}
	stopAll := func() { phase.Store(stopping); wg.Wait() }
	if err := sleep(ctx, warmup); err != nil {
		stopAll()
		return runResult{}, err
	}
	hooks.start()
	start := time.Now()
	phase.Store(measuring)
	err := sleep(ctx, duration)
	phase.Store(stopping)
	elapsed := time.Since(start)
	hooks.end()
	wg.Wait()
	if err != nil {
		return runResult{}, err
	}
	return merge(tallies, elapsed), nil
}

// job is one scheduled request of the open loop.
type job struct {
	seq       int
	scheduled time.Time
	paced     time.Time // when the pacer handed it out
	measured  bool
}

// openLoop sends rate requests per second in total, on a clock: a pacer
// hands each request at its scheduled time to a pool of workers (one per
// connection). A request waiting for a free worker waits on the clock, and
// its latency is counted from its scheduled time. Warm-up at the same rate,
// then duration measured. Requests still queued 10 s after the schedule's
// end are not sent and count as Unsent.
func openLoop(ctx context.Context, workers int, rate float64, warmup, duration time.Duration, do op, hooks windowHooks) (runResult, error) {
	interval := float64(time.Second) / rate
	first := int(float64(warmup) / interval) // first measured request
	total := first + int(float64(duration)/interval)
	jobs := make(chan job, 4096)
	tallies := make([]tally, workers)
	begin := time.Now().Add(20 * time.Millisecond)
	drainDeadline := begin.Add(warmup + duration + 10*time.Second)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			t := &tallies[w]
			t.lat = make([]time.Duration, 0, 4096)
			t.late = make([]time.Duration, 0, 4096)
			for j := range jobs {
				if ctx.Err() != nil || time.Now().After(drainDeadline) {
					if j.measured {
						t.unsent++
					}
					continue
				}
				sent := time.Now()
				err := do(ctx, w, j.seq)
				if j.measured {
					t.record(time.Since(j.scheduled), err)
					t.late = append(t.late, sent.Sub(j.scheduled))
					t.paced = append(t.paced, j.paced.Sub(j.scheduled))
				}
			}
		})
	}

	// The window's hooks run beside the pacer, at the first measured
	// request's time: the pacer itself must never wait for them.
	windowStart := begin.Add(time.Duration(float64(first) * interval))
	started := make(chan struct{})
	go func() {
		defer close(started)
		if sleep(ctx, time.Until(windowStart)) == nil {
			hooks.start()
		}
	}()

	var err error
	undo := precisePacing()
	for i := 0; i < total; i++ {
		if err = ctx.Err(); err != nil {
			break
		}
		scheduled := begin.Add(time.Duration(float64(i) * interval))
		if d := time.Until(scheduled); d > 0 {
			sleepPrecise(d)
		}
		select {
		case jobs <- job{seq: i, scheduled: scheduled, paced: time.Now(), measured: i >= first}:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	undo()
	close(jobs)
	wg.Wait()
	<-started
	elapsed := time.Since(windowStart)
	if err != nil {
		return runResult{}, err
	}
	hooks.end()
	r := merge(tallies, elapsed)
	r.Offered = rate
	return r, nil
}

// sleep waits d, or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// percentile of sorted durations (nearest rank), in milliseconds.
func percentile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	i = max(0, min(i, len(sorted)-1))
	return float64(sorted[i]) / float64(time.Millisecond)
}
