package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// --- profiles -----------------------------------------------------------------------

// profiles takes a CPU profile of consentd (--debug-addr) during gRPC and
// REST check load, saves it in the report folder and keeps `go tool pprof
// -top` of it, by flat and by cumulative time.
func (b *bench) profiles(ctx context.Context) error {
	for _, t := range b.checkTargets() {
		if t.server == "consentd" {
			if err := b.profile(ctx, t, fmt.Sprintf("consentd-%s-check.cpu.pprof", t.api)); err != nil {
				return err
			}
		}
	}
	return nil
}

// profile runs closed-loop load on t (not measured) and takes a CPU profile
// of consentd meanwhile.
func (b *bench) profile(ctx context.Context, t loadTarget, name string) error {
	p := b.plan
	file := filepath.Join(p.Out, name)
	var fetchErr error
	done := make(chan struct{})
	hooks := windowHooks{
		start: func() {
			go func() {
				defer close(done)
				fetchErr = b.fetchProfile(ctx, p.ProfileSeconds, file)
			}()
		},
		end: func() {},
	}
	// The window outlasts the profile by a second, so the load covers it.
	res, err := closedLoop(ctx, p.Concurrency, p.Warmup, time.Duration(p.ProfileSeconds+1)*time.Second, t.do, hooks)
	if err != nil {
		return err
	}
	<-done
	if fetchErr != nil {
		return fetchErr
	}
	prof := profileFigure{Name: t.name, File: name, Seconds: p.ProfileSeconds,
		Throughput: round(float64(res.Requests)/res.Elapsed.Seconds(), 0)}
	prof.TopFlat, prof.TopCum, prof.Selected = pprofTop(ctx, p.Pprof, p.Consentd, file)
	b.rep.Profiles = append(b.rep.Profiles, prof)
	return nil
}

func (b *bench) fetchProfile(ctx context.Context, seconds int, file string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(seconds+30)*time.Second)
	defer cancel()
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", b.consentd.debugAddr, seconds)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("CPU profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 500))
		return fmt.Errorf("CPU profile: %s: %s", resp.Status, body)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return fmt.Errorf("CPU profile: %w", err)
	}
	return f.Close()
}

// pprofTop is `pprof -top` of the profile, by flat time and by cumulative
// time, and the cumulative share of a few functions that say where the time
// goes (selectedFunctions): the pprof `make bench` built, or else `go tool
// pprof`. Without either the profiles are still saved, and the report says
// so.
func pprofTop(ctx context.Context, pprof, binary, file string) (flat, cum string, selected []selectedFunction) {
	command := []string{pprof}
	if pprof == "" {
		goBin, err := exec.LookPath("go")
		if err != nil {
			msg := "no pprof: run `go tool pprof -top " + file + "` yourself"
			return msg, msg, nil
		}
		command = []string{goBin, "tool", "pprof"}
	}
	top := func(extra ...string) string {
		args := slices.Concat(command[1:], []string{"-top"}, extra, []string{binary, file})
		out, err := exec.CommandContext(ctx, command[0], args...).CombinedOutput()
		if err != nil {
			return fmt.Sprintf("pprof failed: %v: %s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	flat, cum = top("-nodecount=15"), top("-nodecount=15", "-cum")
	// Every function, by cumulative time: "flat flat% sum% cum cum% name".
	cumPercent := map[string]string{}
	for line := range strings.SplitSeq(top("-nodecount=100000", "-cum"), "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && strings.HasSuffix(f[4], "%") {
			cumPercent[strings.Join(f[5:], " ")] = f[4]
		}
	}
	for _, sf := range selectedFunctions {
		if v, ok := cumPercent[sf.Function]; ok {
			selected = append(selected, selectedFunction{What: sf.What, Function: sf.Function, Cum: v})
		}
	}
	return flat, cum, selected
}

// selectedFunction is one function's cumulative share of a profile.
type selectedFunction struct {
	What     string `json:"what"`
	Function string `json:"function"`
	Cum      string `json:"cum_percent"`
}

// selectedFunctions are where a call's time goes, by layer. A profile lists
// those it holds.
var selectedFunctions = []selectedFunction{
	{What: "HTTP/1.1 server (REST)", Function: "net/http.(*conn).serve"},
	{What: "REST gateway", Function: "github.com/grpc-ecosystem/grpc-gateway/v2/runtime.(*ServeMux).ServeHTTP"},
	{What: "gateway's gRPC client (in-memory connection)", Function: "google.golang.org/grpc.(*ClientConn).Invoke"},
	{What: "gRPC server, per call", Function: "google.golang.org/grpc.(*Server).processRPC"},
	{What: "HTTP/2 writer", Function: "google.golang.org/grpc/internal/transport.(*loopyWriter).run"},
	{What: "interceptor chain and handler", Function: "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery.UnaryServerInterceptor.func1"},
	{What: "handler: CheckConsent", Function: "github.com/consentd/consentd/server/api.(*Server).CheckConsent"},
	{What: "handler: UpdateConsent", Function: "github.com/consentd/consentd/server/api.(*Server).UpdateConsent"},
	{What: "store: check read", Function: "github.com/consentd/consentd/server/store.(*Store).GetPurposes"},
	{What: "store: write", Function: "github.com/consentd/consentd/server/store.(*Store).Write"},
	{What: "Redis client, per command", Function: "github.com/redis/go-redis/v9.(*Client).Process"},
	{What: "Redis connection pool", Function: "github.com/redis/go-redis/v9/internal/pool.(*ConnPool).Get"},
	{What: "system calls", Function: "internal/runtime/syscall/linux.Syscall6"},
	{What: "goroutine stack growth", Function: "runtime.newstack"},
	{What: "memory allocation", Function: "runtime.mallocgc"},
	{What: "garbage collection (background)", Function: "runtime.gcBgMarkWorker"},
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
