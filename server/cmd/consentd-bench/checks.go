package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
)

// --- checks: closed loop -----------------------------------------------------------

type loadTarget struct {
	name, server, api string
	pid               int
	do                op
	redisCmd          string // what the server sends Redis per request, for INFO commandstats
}

func (b *bench) checkTargets() []loadTarget {
	return []loadTarget{
		{"consentd gRPC CheckConsent", "consentd", "grpc", b.consentd.proc.pid(), grpcCheck(b.consentdGRPC, b.checkSet), "hmget"},
		{"ceiling gRPC CheckConsent", "ceiling", "grpc", b.ceiling.proc.pid(), grpcCheck(b.ceilingGRPC, b.checkSet), ""},
		{"consentd REST check", "consentd", "rest", b.consentd.proc.pid(), restCheck(b.consentdREST, b.checkSet), "hmget"},
		{"ceiling REST check", "ceiling", "rest", b.ceiling.proc.pid(), restCheck(b.ceilingREST, b.checkSet), ""},
	}
}

// checks runs the four targets in turn, Rounds times, so that whatever else
// the machine does during the run hits all of them alike; the figures sum
// the rounds.
func (b *bench) checks(ctx context.Context) error {
	p := b.plan
	targets := b.checkTargets()
	results := make([][]measuredRun, len(targets))
	for round := range p.Rounds {
		for i, t := range targets {
			w := b.cpuWindow(t)
			res, err := closedLoop(ctx, p.Concurrency, p.Warmup, p.Window, t.do, w.hooks())
			if err != nil {
				return err
			}
			results[i] = append(results[i], measuredRun{res, w.delta, w.stat})
			say("  round %d/%d %-28s %8.0f req/s  p99 %.2f ms", round+1, p.Rounds, t.name, float64(res.Requests)/res.Elapsed.Seconds(), percentile(res.Latencies, 0.99))
		}
	}
	for i, t := range targets {
		b.rep.Checks = append(b.rep.Checks, newLoadFigure(t, "closed", p.Concurrency, 0, results[i]))
	}
	return nil
}

// measuredRun is one window and the CPU time spent in it.
type measuredRun struct {
	res   runResult
	cpu   [4]time.Duration // server, redis, load generator, whole machine
	redis commandStat      // the server's Redis command, as Redis saw it
}

// --- redis-benchmark HGET ----------------------------------------------------------

// hget is the storage reference for a check: HGET of a hash shaped like a
// subject's state, at the same concurrency, against the same Redis.
func (b *bench) hget(ctx context.Context) error {
	key := "bench:hget"
	fields := []any{"_rev", "3", "_reg", "DE"}
	for _, p := range decidedPurposes {
		fields = append(fields, p, "g1750000000|1784000000|b|2")
	}
	if err := b.redis.client.HSet(ctx, key, fields...).Err(); err != nil {
		return err
	}
	res, err := b.redis.redisBenchmark(ctx, b.plan.Concurrency, b.plan.HGETRequests, 0, 2*time.Minute, "HGET", key, "analytics")
	if err != nil {
		return err
	}
	b.rep.HGET = &res
	return nil
}

// --- checks: open loop ------------------------------------------------------------------

// openLoop offers a fixed rate to each target and measures latency from
// each request's scheduled time.
func (b *bench) openLoop(ctx context.Context) error {
	p := b.plan
	targets := b.checkTargets()
	// consentd first, then the ceiling, so the two aims are measured first.
	slices.SortStableFunc(targets, func(x, y loadTarget) int { return strings.Compare(y.server, x.server) })
	for _, t := range targets {
		w := b.cpuWindow(t)
		res, err := openLoop(ctx, p.Concurrency, p.Rate, max(p.Warmup, 2*time.Second), p.OpenWindow, t.do, w.hooks())
		if err != nil {
			return err
		}
		f := newLoadFigure(t, "open", p.Concurrency, p.Rate, []measuredRun{{res, w.delta, w.stat}})
		say("  %-28s at %.0f/s: p50 %.2f ms, p99 %.2f ms (requests started late: p99 %.2f ms, of which the pacer %.2f ms)",
			t.name, p.Rate, f.P50ms, f.P99ms, f.LateP99ms, f.PacerLateP99ms)
		b.rep.OpenLoop = append(b.rep.OpenLoop, f)
	}
	return nil
}

// --- batch checks and filters ----------------------------------------------------------

// batches runs BatchCheckConsent (1,000 pairs) and FilterSubjects (10,000
// ids) one call at a time over the seeded subjects.
func (b *bench) batches(ctx context.Context) error {
	p := b.plan
	client := b.consentdGRPC.client(0)
	var batchReqs []*consentv1.BatchCheckConsentRequest
	for r := range 8 {
		req := &consentv1.BatchCheckConsentRequest{}
		for k := range p.BatchSize {
			i := r*p.BatchSize + k
			req.Checks = append(req.Checks, &consentv1.ConsentCheck{
				SubjectId: subjectID((i * 7919) % p.Subjects), Purpose: decidedPurposes[i%len(decidedPurposes)]})
		}
		batchReqs = append(batchReqs, req)
	}
	filterReq := &consentv1.FilterSubjectsRequest{Purpose: "marketing.email"}
	for i := range p.FilterSize {
		filterReq.SubjectIds = append(filterReq.SubjectIds, subjectID(i%p.Subjects))
	}
	wantAllowed := 0
	for i := range min(p.FilterSize, p.Subjects) {
		if seedDecisions(i)["marketing.email"] {
			wantAllowed++
		}
	}

	timeCap := max(15*time.Second, time.Duration(float64(40*time.Second)*p.Scale))
	batch, err := b.sequential(ctx, "BatchCheckConsent (1,000 pairs)", p.BatchSize, p.BatchIters, timeCap, func(i int) error {
		resp, err := client.BatchCheckConsent(ctx, batchReqs[i%len(batchReqs)])
		if err == nil && len(resp.GetResults()) != p.BatchSize {
			err = fmt.Errorf("%d results for %d checks", len(resp.GetResults()), p.BatchSize)
		}
		return err
	})
	if err != nil {
		return err
	}
	filter, err := b.sequential(ctx, "FilterSubjects (10,000 ids)", p.FilterSize, p.FilterIters, timeCap, func(int) error {
		resp, err := client.FilterSubjects(ctx, filterReq)
		if err == nil && len(resp.GetAllowedSubjectIds()) != wantAllowed {
			err = fmt.Errorf("%d subjects allowed, want %d", len(resp.GetAllowedSubjectIds()), wantAllowed)
		}
		return err
	})
	if err != nil {
		return err
	}
	b.rep.Batch, b.rep.Filter = &batch, &filter
	return nil
}

// sequential calls call iterations times (after 3 unmeasured ones), one at
// a time, stopping early at timeCap.
func (b *bench) sequential(ctx context.Context, name string, size, iterations int, timeCap time.Duration, call func(i int) error) (seqFigure, error) {
	for i := range 3 {
		if err := call(i); err != nil {
			return seqFigure{}, fmt.Errorf("%s: %w", name, err)
		}
	}
	w := b.cpuWindow(loadTarget{pid: b.consentd.proc.pid()})
	w.hooks().start()
	deadline := time.Now().Add(timeCap)
	var lat []time.Duration
	for i := 0; i < iterations && time.Now().Before(deadline); i++ {
		if ctx.Err() != nil {
			return seqFigure{}, ctx.Err()
		}
		start := time.Now()
		if err := call(i); err != nil {
			return seqFigure{}, fmt.Errorf("%s: %w", name, err)
		}
		lat = append(lat, time.Since(start))
	}
	w.hooks().end()
	f := newSeqFigure(name, size, lat, w.delta[0])
	say("  %-32s %d calls: p50 %.1f ms, p99 %.1f ms", name, f.Calls, f.P50ms, f.P99ms)
	return f, nil
}
