package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
)

// bench holds what the phases share: the processes, the clients, the plan
// and the report they fill in.
type bench struct {
	plan     plan
	procs    *children
	rep      *report
	redis    *benchRedis
	consentd *consentdProc
	ceiling  *ceilingProc

	consentdGRPC, ceilingGRPC *grpcTarget
	consentdREST, ceilingREST *restTarget
	checkSet                  checkSet
	eventBytes                int // a history event's JSON, measured by memory: the EVAL's payload
}

func (b *bench) connect() (err error) {
	p := b.plan
	if b.consentdGRPC, err = dialGRPC(b.consentd.grpcAddr, p.GRPCConns, b.consentd.apiKey); err != nil {
		return err
	}
	if b.ceilingGRPC, err = dialGRPC(b.ceiling.grpcAddr, p.GRPCConns, b.consentd.apiKey); err != nil {
		return err
	}
	b.consentdREST = newREST(b.consentd.httpAddr, p.RESTConns, b.consentd.apiKey)
	b.ceilingREST = newREST(b.ceiling.httpAddr, p.RESTConns, b.consentd.apiKey)
	b.checkSet = newCheckSet(p.Subjects, 8192)
	return nil
}

func (b *bench) disconnect() {
	for _, g := range []*grpcTarget{b.consentdGRPC, b.ceilingGRPC} {
		if g != nil {
			g.close()
		}
	}
	for _, r := range []*restTarget{b.consentdREST, b.ceilingREST} {
		if r != nil {
			r.close()
		}
	}
}

// --- CPU accounting ---------------------------------------------------------------

// cpuWindow reads the CPU time of the server under load, of Redis and of the
// bench itself (the load generator) at a window's start and end, and the
// whole machine's busy time, so the report can say how much CPU other
// processes took meanwhile.
type cpuWindow struct {
	pids   [3]int // server, redis, self
	before [4]time.Duration
	delta  [4]time.Duration // server, redis, self, machine
	// redisCmd, if set, is the command the server sends Redis per request:
	// its INFO commandstats over the window go into stat.
	redis    *benchRedis
	redisCmd string
	stat     commandStat
}

func (b *bench) cpuWindow(t loadTarget) *cpuWindow {
	return &cpuWindow{pids: [3]int{t.pid, b.redis.proc.pid(), os.Getpid()}, redis: b.redis, redisCmd: t.redisCmd}
}

func (w *cpuWindow) read() (t [4]time.Duration) {
	for i, pid := range w.pids {
		t[i], _ = cpuTime(pid)
	}
	t[3], _ = machineBusy()
	return t
}

func (w *cpuWindow) hooks() windowHooks {
	return windowHooks{
		start: func() {
			if w.redisCmd != "" {
				w.redis.resetStats(context.Background())
			}
			w.before = w.read()
		},
		end: func() {
			after := w.read()
			for i := range after {
				w.delta[i] = after[i] - w.before[i]
			}
			if w.redisCmd != "" {
				w.stat = w.redis.commandStat(context.Background(), w.redisCmd)
			}
		},
	}
}

// --- memory ----------------------------------------------------------------------

// memory measures Redis' cost per subject and per history event as
// server/store/store_test.go's TestMemoryUsage does, but through consentd:
// subjects written by a banner "accept all" in Germany (five purposes), then
// nine later changes of one or two purposes each, from a backend (gRPC, no
// client facts); MEMORY USAGE (all samples) of each state hash and each
// history list. It runs first, on the empty Redis, so every key found is one
// of these subjects'.
func (b *bench) memory(ctx context.Context) error {
	n := b.plan.MemorySubjects
	client := b.consentdGRPC.client(0)
	write := func(subject string, decisions map[string]bool, source consentv1.Source) error {
		_, err := client.UpdateConsent(ctx, &consentv1.UpdateConsentRequest{
			SubjectId: subject, Decisions: decisions, Region: "DE", Source: source})
		if err != nil {
			return fmt.Errorf("UpdateConsent %s: %w", subject, err)
		}
		return nil
	}
	all := map[string]bool{}
	for _, p := range decidedPurposes {
		all[p] = true
	}
	subject := func(i int) string { return fmt.Sprintf("memory-subject-%04d", i) }
	for i := range n {
		if err := write(subject(i), all, consentv1.Source_SOURCE_BANNER); err != nil {
			return err
		}
	}
	stateBytes, states, err := b.memoryOf(ctx, "*}:s:*")
	if err != nil {
		return err
	}
	if states != n {
		return fmt.Errorf("found %d state hashes after writing %d subjects to an empty Redis", states, n)
	}
	dataKeyBytes, dataKeys, err := b.memoryOf(ctx, "*}:k:*")
	if err != nil {
		return err
	}
	if dataKeys != n {
		return fmt.Errorf("found %d data keys for %d subjects", dataKeys, n)
	}
	const events = 10
	for e := 1; e < events; e++ {
		changed := map[string]bool{}
		for _, p := range [][]string{{"analytics"}, {"ads", "marketing.email"}, {"marketing.sms"}}[e%3] {
			changed[p] = e%2 == 1
		}
		for i := range n {
			if err := write(subject(i), changed, consentv1.Source_SOURCE_PREFERENCE_CENTER); err != nil {
				return err
			}
		}
	}
	historyBytes, histories, err := b.memoryOf(ctx, "*}:h:*")
	if err != nil {
		return err
	}
	if histories != n {
		return fmt.Errorf("found %d history lists for %d subjects", histories, n)
	}
	// The JSON of the first event (five purposes) and of the last (one or
	// two), for the reader and as the EVAL reference's payload size.
	keys, _ := b.scan(ctx, "*}:h:*")
	var firstLen, lastLen int
	for _, k := range keys {
		firstLen += len(b.redis.client.LIndex(ctx, k, 0).Val())
		lastLen += len(b.redis.client.LIndex(ctx, k, -1).Val())
	}
	b.eventBytes = (firstLen + lastLen) / (2 * len(keys))
	b.rep.Memory = memoryFigure{
		Subjects:               n,
		EventsPerSubject:       events,
		SubjectBytes:           float64(stateBytes) / float64(n),
		DataKeyBytes:           float64(dataKeyBytes) / float64(n),
		EventBytes:             float64(historyBytes) / float64(n*events),
		FirstEventJSONBytes:    float64(firstLen) / float64(len(keys)),
		LaterEventJSONBytes:    float64(lastLen) / float64(len(keys)),
		HistoryListBytes10Evts: float64(historyBytes) / float64(n),
	}
	return nil
}

func (b *bench) scan(ctx context.Context, match string) ([]string, error) {
	var keys []string
	iter := b.redis.client.Scan(ctx, 0, match, 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	return keys, iter.Err()
}

// memoryOf sums MEMORY USAGE ... SAMPLES 0 over the keys matching.
func (b *bench) memoryOf(ctx context.Context, match string) (total int64, keys int, err error) {
	names, err := b.scan(ctx, match)
	if err != nil {
		return 0, 0, err
	}
	for _, k := range names {
		v, err := b.redis.client.MemoryUsage(ctx, k, 0).Result()
		if err != nil {
			return 0, 0, fmt.Errorf("MEMORY USAGE %s: %w", k, err)
		}
		total += v
	}
	return total, len(names), nil
}

// --- seed ------------------------------------------------------------------------

// seed writes the subjects the checks, batches and filters ask about, with
// the concurrency of the load (at appendfsync everysec).
func (b *bench) seed(ctx context.Context) error {
	n := b.plan.Subjects
	var next int
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for w := range b.plan.Concurrency {
		wg.Go(func() {
			client := b.consentdGRPC.client(w)
			for {
				mu.Lock()
				i := next
				next++
				stop := i >= n || firstErr != nil
				mu.Unlock()
				if stop {
					return
				}
				_, err := client.UpdateConsent(ctx, &consentv1.UpdateConsentRequest{SubjectId: subjectID(i),
					Decisions: seedDecisions(i), Region: "DE", Source: consentv1.Source_SOURCE_BANNER})
				if err != nil {
					mu.Lock()
					firstErr = cmpOr(firstErr, fmt.Errorf("UpdateConsent %s: %w", subjectID(i), err))
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := sanityCheck(ctx, b.consentdGRPC, b.consentdREST, consentv1.Reason_REASON_EXPLICIT); err != nil {
		return fmt.Errorf("consentd: %w", err)
	}
	if err := sanityCheck(ctx, b.ceilingGRPC, b.ceilingREST, consentv1.Reason_REASON_EXPLICIT); err != nil {
		return fmt.Errorf("ceiling: %w", err)
	}
	return nil
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// --- updates ----------------------------------------------------------------------------

// evalScript does what a consent write does to Redis, without consentd's
// checks and reads: the state hash, the history list, the change feed.
const evalScript = `redis.call('HSET', KEYS[1], '_rev', '1', 'analytics', ARGV[1], 'ads', ARGV[1]) ` +
	`redis.call('RPUSH', KEYS[2], ARGV[2]) ` +
	`redis.call('XADD', KEYS[3], 'MAXLEN', '~', '100000', '*', 'ev', ARGV[2]) return 1`

// updates measures UpdateConsent (closed loop, gRPC) under appendfsync
// always and everysec, each followed by redis-benchmark running the
// equivalent EVAL under the same setting, then profiles consentd's writes.
func (b *bench) updates(ctx context.Context) error {
	p := b.plan
	const writers = 4096
	reqs := make([]*consentv1.UpdateConsentRequest, writers)
	for i := range reqs {
		reqs[i] = &consentv1.UpdateConsentRequest{SubjectId: fmt.Sprintf("bench-writer-%04d", i),
			Decisions: map[string]bool{"analytics": i%2 == 0, "ads": i%3 == 0},
			Region:    "DE", Source: consentv1.Source_SOURCE_PREFERENCE_CENTER}
	}
	do := func(ctx context.Context, worker, seq int) error {
		_, err := b.consentdGRPC.client(worker).UpdateConsent(ctx, reqs[pick(worker, seq, writers)])
		return err
	}
	target := loadTarget{name: "consentd gRPC UpdateConsent", server: "consentd", api: "grpc", pid: b.consentd.proc.pid(), do: do, redisCmd: "evalsha"}
	payload := strings.Repeat("e", max(64, b.eventBytes))
	for _, mode := range []string{"always", "everysec"} {
		if err := b.redis.setFsync(ctx, mode); err != nil {
			return err
		}
		w := b.cpuWindow(target)
		res, err := closedLoop(ctx, p.Concurrency, max(p.Warmup, 2*time.Second), p.UpdateWindow, do, w.hooks())
		if err != nil {
			return err
		}
		f := newLoadFigure(target, "closed", p.Concurrency, 0, []measuredRun{{res, w.delta, w.stat}})
		f.Name += " (appendfsync " + mode + ")"
		// Every command's share of the scripts' time in Redis, for whoever
		// digs into the write path.
		stats, _ := b.redis.client.Info(ctx, "commandstats").Result()
		_ = os.WriteFile(filepath.Join(p.Out, "redis-commandstats-update-"+mode+".txt"), []byte(stats), 0o644)
		// As many EVALs as about three times consentd's writes in the window:
		// Redis alone is faster, so this takes a few seconds.
		n := min(2_000_000, max(5000, int(f.Throughput*3*p.UpdateWindow.Seconds())))
		eval, err := b.redis.redisBenchmark(ctx, p.Concurrency, n, writers, 3*time.Minute,
			"EVAL", evalScript, "3", "{bench}:s:__rand_int__", "{bench}:h:__rand_int__", "{bench}:feed",
			"g1750000000|1784000000|p|2", payload)
		if err != nil {
			return err
		}
		u := updateFigure{Fsync: mode, Consentd: f, Eval: eval}
		if eval.Throughput > 0 {
			u.Ratio = round(f.Throughput/eval.Throughput, 2)
		}
		say("  appendfsync %-8s UpdateConsent %6.0f/s p99 %.2f ms; EVAL %6.0f/s p99 %.2f ms; ratio %.2f",
			mode, f.Throughput, f.P99ms, eval.Throughput, eval.P99ms, u.Ratio)
		b.rep.Updates = append(b.rep.Updates, u)
	}
	// The write path's profile, under everysec (the last setting above).
	target.name += " (appendfsync everysec)"
	return b.profile(ctx, target, "consentd-grpc-update.cpu.pprof")
}

// --- RSS ----------------------------------------------------------------------------------

// peakRSS reads consentd's (and the ceiling's) VmHWM once all load is done.
func (b *bench) peakRSS() error {
	hwm, err := statusKB(b.consentd.proc.pid(), "VmHWM")
	if err != nil {
		return fmt.Errorf("consentd's peak RSS: %w", err)
	}
	rss, _ := statusKB(b.consentd.proc.pid(), "VmRSS")
	ceiling, _ := statusKB(b.ceiling.proc.pid(), "VmHWM")
	b.rep.RSS = rssFigure{ConsentdPeakMB: mb(hwm), ConsentdNowMB: mb(rss), CeilingPeakMB: mb(ceiling)}
	if !b.consentd.proc.alive() {
		return errors.New("consentd exited during the run; see " + b.consentd.logPath)
	}
	return nil
}

func mb(bytes int64) float64 { return round(float64(bytes)/(1<<20), 1) }
