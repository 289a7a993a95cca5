package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// The report: report.json holds every figure; report.md puts each next to
// its aim, with the machine, the command and the profiles' top functions.

type report struct {
	Started      time.Time         `json:"started"`
	Seconds      float64           `json:"seconds"`
	Command      string            `json:"command"`
	Machine      machine           `json:"machine"`
	Plan         plan              `json:"plan"`
	Aims         []aim             `json:"aims"`
	Checks       []loadFigure      `json:"checks_closed_loop"`
	OpenLoop     []loadFigure      `json:"checks_open_loop"`
	HGET         *redisBenchResult `json:"redis_benchmark_hget"`
	Batch        *seqFigure        `json:"batch_check"`
	Filter       *seqFigure        `json:"filter_subjects"`
	Updates      []updateFigure    `json:"updates"`
	Memory       memoryFigure      `json:"memory"`
	RSS          rssFigure         `json:"rss"`
	Profiles     []profileFigure   `json:"profiles"`
	PhaseSeconds []phaseTime       `json:"phase_seconds"`
}

type machine struct {
	CPUs         int    `json:"nproc"`
	CPUModel     string `json:"cpu_model"`
	Kernel       string `json:"kernel"`
	GoVersion    string `json:"go_version"`
	RedisVersion string `json:"redis_version"`
}

type phaseTime struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// loadFigure is one target under one kind of load, summed over its rounds.
type loadFigure struct {
	Name        string  `json:"name"`
	Server      string  `json:"server"` // consentd or ceiling
	API         string  `json:"api"`    // grpc or rest
	Mode        string  `json:"mode"`   // closed (concurrency) or open (fixed rate)
	Concurrency int     `json:"concurrency"`
	OfferedRPS  float64 `json:"offered_rps,omitempty"`
	Seconds     float64 `json:"seconds"`
	Requests    int64   `json:"requests"`
	Errors      int64   `json:"errors"`
	FirstError  string  `json:"first_error,omitempty"`
	Unsent      int64   `json:"unsent,omitempty"`
	Throughput  float64 `json:"throughput_rps"`
	// Throughput of each round, to show the run's noise.
	RoundThroughputs []float64 `json:"round_throughputs_rps,omitempty"`
	P50ms            float64   `json:"p50_ms"`
	P90ms            float64   `json:"p90_ms"`
	P99ms            float64   `json:"p99_ms"`
	P999ms           float64   `json:"p999_ms"`
	MaxMs            float64   `json:"max_ms"`
	// CPU time (utime+stime) per request of the server, of Redis and of the
	// load generator; ServerCores is the server's CPU time per wall second.
	ServerCPUus    float64 `json:"server_cpu_us_per_request"`
	RedisCPUus     float64 `json:"redis_cpu_us_per_request"`
	GeneratorCPUus float64 `json:"generator_cpu_us_per_request"`
	ServerCores    float64 `json:"server_cores"`
	// RedisUsecPerCall is Redis' own time in the server's command per
	// request (INFO commandstats: HMGET for a check, EVALSHA for a write).
	RedisCommand     string  `json:"redis_command,omitempty"`
	RedisUsecPerCall float64 `json:"redis_usec_per_call,omitempty"`
	// OtherCores is the CPU other processes of the machine used meanwhile
	// (cores): not 0 means the run shared the machine with someone else.
	OtherCores float64 `json:"other_processes_cores"`
	// Open loop: how late the generator sent requests (p99), already part
	// of the latencies above.
	LateP99ms float64 `json:"generator_late_p99_ms,omitempty"`
	// Of which the pacer's own timer (p99).
	PacerLateP99ms float64 `json:"pacer_late_p99_ms,omitempty"`
}

func newLoadFigure(t loadTarget, mode string, concurrency int, rate float64, runs []measuredRun) loadFigure {
	f := loadFigure{Name: t.name, Server: t.server, API: t.api, Mode: mode, Concurrency: concurrency, OfferedRPS: rate}
	var all, late, paced []time.Duration
	var elapsed time.Duration
	var cpu [4]time.Duration
	var calls int64
	var usec float64
	for _, r := range runs {
		calls += r.redis.Calls
		usec += r.redis.UsecPerCall * float64(r.redis.Calls)
		f.Requests += r.res.Requests
		f.Errors += r.res.Errors
		f.Unsent += r.res.Unsent
		if f.FirstError == "" {
			f.FirstError = r.res.FirstError
		}
		elapsed += r.res.Elapsed
		all = append(all, r.res.Latencies...)
		late = append(late, r.res.Lateness...)
		paced = append(paced, r.res.PacerLateness...)
		for i := range cpu {
			cpu[i] += r.cpu[i]
		}
		if len(runs) > 1 {
			f.RoundThroughputs = append(f.RoundThroughputs, round(float64(r.res.Requests)/r.res.Elapsed.Seconds(), 0))
		}
	}
	sortDurations(all)
	sortDurations(late)
	sortDurations(paced)
	f.Seconds = round(elapsed.Seconds(), 2)
	f.Throughput = round(float64(f.Requests)/elapsed.Seconds(), 0)
	f.P50ms = round(percentile(all, 0.50), 3)
	f.P90ms = round(percentile(all, 0.90), 3)
	f.P99ms = round(percentile(all, 0.99), 3)
	f.P999ms = round(percentile(all, 0.999), 3)
	f.MaxMs = round(percentile(all, 1), 3)
	if len(late) > 0 {
		f.LateP99ms = round(percentile(late, 0.99), 3)
		f.PacerLateP99ms = round(percentile(paced, 0.99), 3)
	}
	if f.Requests > 0 {
		per := func(d time.Duration) float64 { return round(float64(d.Nanoseconds())/1e3/float64(f.Requests), 1) }
		f.ServerCPUus, f.RedisCPUus, f.GeneratorCPUus = per(cpu[0]), per(cpu[1]), per(cpu[2])
	}
	f.ServerCores = round(cpu[0].Seconds()/elapsed.Seconds(), 2)
	if calls > 0 {
		f.RedisCommand, f.RedisUsecPerCall = t.redisCmd, round(usec/float64(calls), 2)
	}
	f.OtherCores = round(max(0, (cpu[3]-cpu[0]-cpu[1]-cpu[2]).Seconds()/elapsed.Seconds()), 2)
	return f
}

// seqFigure is a call made one at a time.
type seqFigure struct {
	Name         string  `json:"name"`
	ItemsPerCall int     `json:"items_per_call"`
	Calls        int     `json:"calls"`
	P50ms        float64 `json:"p50_ms"`
	P99ms        float64 `json:"p99_ms"`
	MeanMs       float64 `json:"mean_ms"`
	MaxMs        float64 `json:"max_ms"`
	ItemsPerSec  float64 `json:"items_per_second"`
	ServerCPUms  float64 `json:"server_cpu_ms_per_call"`
}

func newSeqFigure(name string, size int, lat []time.Duration, cpu time.Duration) seqFigure {
	f := seqFigure{Name: name, ItemsPerCall: size, Calls: len(lat)}
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	sortDurations(lat)
	if len(lat) > 0 {
		mean := sum / time.Duration(len(lat))
		f.MeanMs = round(float64(mean)/1e6, 2)
		f.ItemsPerSec = round(float64(size)/mean.Seconds(), 0)
		f.ServerCPUms = round(float64(cpu)/1e6/float64(len(lat)), 2)
	}
	f.P50ms = round(percentile(lat, 0.5), 2)
	f.P99ms = round(percentile(lat, 0.99), 2)
	f.MaxMs = round(percentile(lat, 1), 2)
	return f
}

type updateFigure struct {
	Fsync    string           `json:"appendfsync"`
	Consentd loadFigure       `json:"consentd"`
	Eval     redisBenchResult `json:"redis_benchmark_eval"`
	Ratio    float64          `json:"throughput_ratio"`
}

type memoryFigure struct {
	Subjects               int     `json:"subjects"`
	EventsPerSubject       int     `json:"events_per_subject"`
	SubjectBytes           float64 `json:"bytes_per_subject_record"`
	DataKeyBytes           float64 `json:"bytes_per_subject_data_key"` // the wrapped data key, a key of its own
	EventBytes             float64 `json:"bytes_per_history_event"`
	HistoryListBytes10Evts float64 `json:"bytes_per_history_list_of_10"`
	FirstEventJSONBytes    float64 `json:"first_event_json_bytes"`
	LaterEventJSONBytes    float64 `json:"later_event_json_bytes"`
}

type rssFigure struct {
	ConsentdPeakMB float64 `json:"consentd_peak_mib"`
	ConsentdNowMB  float64 `json:"consentd_end_mib"`
	CeilingPeakMB  float64 `json:"ceiling_peak_mib"`
}

type profileFigure struct {
	Name       string  `json:"name"`
	File       string  `json:"file"`
	Seconds    int     `json:"seconds"`
	Throughput float64 `json:"throughput_rps_while_profiled"`
	TopFlat    string  `json:"top_flat"`
	TopCum     string  `json:"top_cum"`
	// Selected is where the time goes, by layer.
	Selected []selectedFunction `json:"selected"`
}

// aim is one figure the issue sets a target for.
type aim struct {
	Name     string  `json:"name"`
	Measured string  `json:"measured"`
	Aim      string  `json:"aim"`
	Value    float64 `json:"value"`
	Pass     bool    `json:"pass"`
}

func newReport(p plan, began time.Time) *report {
	r := &report{Started: began.UTC().Truncate(time.Second), Plan: p, Command: commandLine(p)}
	r.Machine = machine{CPUs: runtime.NumCPU(), CPUModel: cpuModel(), Kernel: kernel(), GoVersion: runtime.Version()}
	return r
}

func commandLine(p plan) string {
	cmd := "make bench"
	if p.Scale != 1 {
		cmd += fmt.Sprintf(" BENCH_SCALE=%g", p.Scale)
	}
	return cmd + " (" + strings.Join(os.Args, " ") + ")"
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

func (r *report) find(figures []loadFigure, server, api string) *loadFigure {
	for i := range figures {
		if figures[i].Server == server && figures[i].API == api {
			return &figures[i]
		}
	}
	return nil
}

// finish compares the figures with the aims.
func (r *report) finish(took time.Duration) {
	r.Seconds = round(took.Seconds(), 0)
	for _, api := range []string{"grpc", "rest"} {
		label := map[string]string{"grpc": "gRPC CheckConsent", "rest": "REST check"}[api]
		c, x := r.find(r.Checks, "consentd", api), r.find(r.Checks, "ceiling", api)
		if c != nil && x != nil && x.Throughput > 0 && x.ServerCPUus > 0 {
			ratio := c.Throughput / x.Throughput
			r.Aims = append(r.Aims, aim{Name: label + ": throughput vs the ceiling", Value: round(ratio, 2), Pass: ratio >= 0.7 && c.Errors == 0,
				Aim: ">= 0.70x", Measured: fmt.Sprintf("%.2fx (%.0f vs %.0f req/s)", ratio, c.Throughput, x.Throughput)})
			cpu := c.ServerCPUus / x.ServerCPUus
			r.Aims = append(r.Aims, aim{Name: label + ": CPU per request vs the ceiling", Value: round(cpu, 2), Pass: cpu <= 2,
				Aim: "<= 2.0x", Measured: fmt.Sprintf("%.2fx (%.1f vs %.1f µs)", cpu, c.ServerCPUus, x.ServerCPUus)})
		}
	}
	for _, api := range []string{"grpc", "rest"} {
		label := map[string]string{"grpc": "gRPC CheckConsent", "rest": "REST check"}[api]
		if o := r.find(r.OpenLoop, "consentd", api); o != nil {
			measured := fmt.Sprintf("%.2f ms", o.P99ms)
			if x := r.find(r.OpenLoop, "ceiling", api); x != nil {
				measured += fmt.Sprintf(" (the ceiling: %.2f ms)", x.P99ms)
			}
			r.Aims = append(r.Aims, aim{Name: fmt.Sprintf("%s: p99 at %.0f req/s (open loop)", label, o.OfferedRPS), Value: o.P99ms,
				Pass: o.P99ms <= 2 && o.Unsent == 0 && o.Errors == 0, Aim: "<= 2 ms", Measured: measured})
		}
	}
	for _, u := range r.Updates {
		r.Aims = append(r.Aims, aim{Name: "UpdateConsent vs EVAL, appendfsync " + u.Fsync, Value: u.Ratio, Pass: u.Ratio >= 0.5 && u.Consentd.Errors == 0,
			Aim: ">= 0.50x", Measured: fmt.Sprintf("%.2fx (%.0f vs %.0f writes/s)", u.Ratio, u.Consentd.Throughput, u.Eval.Throughput)})
	}
	if m := r.Memory; m.Subjects > 0 {
		r.Aims = append(r.Aims,
			aim{Name: "Redis memory per subject record (5 purposes)", Value: round(m.SubjectBytes, 0), Pass: m.SubjectBytes <= 400,
				Aim: "<= 400 B", Measured: fmt.Sprintf("%.0f B", m.SubjectBytes)},
			aim{Name: "Redis memory per history event", Value: round(m.EventBytes, 0), Pass: m.EventBytes <= 250,
				Aim: "<= 250 B", Measured: fmt.Sprintf("%.0f B", m.EventBytes)})
	}
	r.Aims = append(r.Aims,
		aim{Name: "consentd peak RSS (VmHWM)", Value: r.RSS.ConsentdPeakMB, Pass: r.RSS.ConsentdPeakMB <= 100,
			Aim: "<= 100 MB", Measured: fmt.Sprintf("%.1f MiB", r.RSS.ConsentdPeakMB)})
}

func (r *report) write(dir string) error {
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(j, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(r.markdown()), 0o644)
}

func passMiss(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

func (r *report) aimsTable(b *strings.Builder) {
	b.WriteString("| figure | measured | aim | |\n|---|---|---|---|\n")
	for _, a := range r.Aims {
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", a.Name, a.Measured, a.Aim, passMiss(a.Pass))
	}
}

func (r *report) markdown() string {
	var b strings.Builder
	p := r.Plan
	fmt.Fprintf(&b, "# consentd benchmark\n\n")
	fmt.Fprintf(&b, "%s, %.0f s. Command: `%s`.\n\n", r.Started.Format(time.RFC3339), r.Seconds, r.Command)
	fmt.Fprintf(&b, "Machine: %d CPUs (%s), Linux %s, %s, Redis %s. ", r.Machine.CPUs, r.Machine.CPUModel, r.Machine.Kernel, r.Machine.GoVersion, r.Machine.RedisVersion)
	b.WriteString("The load generator, consentd (or the ceiling) and Redis share these CPUs, so absolute figures " +
		"are lower than on separate machines; the ceiling has the same handicap, which is why the ratios are the figures that matter. " +
		"\"other cores\" is the CPU that processes outside the benchmark used during a window: above ~0.1 the machine was shared and the figures are noisier.\n\n")

	b.WriteString("## Aims\n\n")
	r.aimsTable(&b)

	if len(r.Checks) > 0 {
		fmt.Fprintf(&b, "\n## Checks, closed loop (%d workers, %d rounds of %g s, interleaved)\n\n", p.Concurrency, p.Rounds, p.Window.Seconds())
		fmt.Fprintf(&b, "gRPC: %d workers share %d connections (the same for consentd and the ceiling); REST: %d keep-alive HTTP/1.1 connections, one per worker. "+
			"The ceiling is a bare grpc-go server with a constant CheckConsent, and grpc-gateway over an in-memory connection, as consentd's gateway; "+
			"no interceptors, no Redis; it runs with consentd's garbage collector setting (GOGC 200). Each round runs the four targets in turn (%g s warm-up each), so disturbances hit all alike. "+
			"CPU is utime+stime from /proc/<pid>/stat over the window, per request; the Redis command's own time comes from INFO commandstats.\n\n",
			p.Concurrency, p.GRPCConns, p.RESTConns, p.Warmup.Seconds())
		loadTable(&b, r.Checks, false)
	}
	if r.HGET != nil {
		fmt.Fprintf(&b, "\nStorage reference, `redis-benchmark -c %d -n %d HGET` on the same Redis: **%.0f req/s**, p50 %.3f ms, p99 %.3f ms, Redis CPU %.1f µs/request (HGET %.2f µs).\n",
			r.HGET.Clients, r.HGET.Requests, r.HGET.Throughput, r.HGET.P50ms, r.HGET.P99ms, r.HGET.CPUPerReq, r.HGET.RedisUsecPerCall)
	}

	if len(r.OpenLoop) > 0 {
		fmt.Fprintf(&b, "\n## Checks, open loop (%.0f req/s offered for %g s, %d workers)\n\n", p.Rate, p.OpenWindow.Seconds(), p.Concurrency)
		b.WriteString("A pacer schedules requests on a clock (nanosleep on its own thread) and hands them to the workers; each request's latency " +
			"counts from its scheduled time, so a stall cannot hide by slowing the sender (no coordinated omission). \"late p99\" is how late " +
			"requests started (the generator waiting for a CPU, and for a free worker), and in brackets how late the pacer itself woke; both " +
			"are already part of the latencies. The ceiling's p99 is what this machine allows at this rate.\n\n")
		loadTable(&b, r.OpenLoop, true)
	}

	if r.Batch != nil || r.Filter != nil {
		b.WriteString("\n## BatchCheckConsent and FilterSubjects (gRPC, one call at a time)\n\n")
		b.WriteString("| call | calls | p50 | p99 | mean | items/s | consentd CPU/call |\n|---|---|---|---|---|---|---|\n")
		for _, f := range []*seqFigure{r.Batch, r.Filter} {
			if f != nil {
				fmt.Fprintf(&b, "| %s | %d | %.2f ms | %.2f ms | %.2f ms | %.0f | %.2f ms |\n", f.Name, f.Calls, f.P50ms, f.P99ms, f.MeanMs, f.ItemsPerSec, f.ServerCPUms)
			}
		}
	}

	if len(r.Updates) > 0 {
		fmt.Fprintf(&b, "\n## UpdateConsent (gRPC, %d workers, %g s) vs the equivalent EVAL\n\n", p.Concurrency, p.UpdateWindow.Seconds())
		b.WriteString("Redis runs with `appendonly yes`; `CONFIG SET appendfsync` switches between the two. The EVAL (redis-benchmark, same " +
			"concurrency) does the writes of a consent write: HSET of the state hash, RPUSH of a history event of the measured size (the " +
			"history is a List), XADD to the change feed; keys spread by `__rand_int__` over 4,096 subjects like the UpdateConsent load, " +
			"one hash tag. consentd's script also checks the revision, reads the old decisions and the last event, chains the hash, sets TTLs " +
			"and returns the whole state.\n\n")
		b.WriteString("| appendfsync | UpdateConsent | p50 | p99 | consentd CPU/write | Redis CPU/write (in the script) | EVAL | EVAL p99 | Redis CPU/EVAL (in the script) | ratio |\n|---|---|---|---|---|---|---|---|---|---|\n")
		for _, u := range r.Updates {
			fmt.Fprintf(&b, "| %s | %.0f/s | %.2f ms | %.2f ms | %.1f µs | %s | %.0f/s | %.2f ms | %.1f µs (EVAL %.1f µs) | %.2fx |\n", u.Fsync,
				u.Consentd.Throughput, u.Consentd.P50ms, u.Consentd.P99ms, u.Consentd.ServerCPUus, redisCell(u.Consentd),
				u.Eval.Throughput, u.Eval.P99ms, u.Eval.CPUPerReq, u.Eval.RedisUsecPerCall, u.Ratio)
		}
	}

	b.WriteString("\n## Memory\n\n")
	if m := r.Memory; m.Subjects > 0 {
		fmt.Fprintf(&b, "`MEMORY USAGE` (all samples) after writing %d subjects through consentd: a banner \"accept all\" (5 purposes, region DE), "+
			"then %d changes of 1-2 purposes each, from a backend over gRPC (as `TestMemoryUsage` in server/store/store_test.go).\n\n", m.Subjects, m.EventsPerSubject-1)
		fmt.Fprintf(&b, "| what | bytes |\n|---|---|\n| subject record (state hash, 5 purposes) | %.0f |\n| subject data key (wrapped, with the subject id) | %.0f |\n"+
			"| history, per event (a list of %d) | %.0f |\n"+
			"| event JSON, first (5 purposes) | %.0f |\n| event JSON, later (1-2 purposes) | %.0f |\n\n",
			m.SubjectBytes, m.DataKeyBytes, m.EventsPerSubject, m.EventBytes, m.FirstEventJSONBytes, m.LaterEventJSONBytes)
	}
	fmt.Fprintf(&b, "consentd's peak RSS (VmHWM from /proc/<pid>/status after all load): **%.1f MiB** (%.1f MiB at the end); the ceiling's: %.1f MiB.\n",
		r.RSS.ConsentdPeakMB, r.RSS.ConsentdNowMB, r.RSS.CeilingPeakMB)

	if len(r.Profiles) > 0 {
		b.WriteString("\n## Profiles\n\n")
		b.WriteString("CPU profiles of consentd (`--debug-addr`, `/debug/pprof/profile`) under closed-loop load, saved next to this report; " +
			"open them with `go tool pprof -http=: ./consentd <file>`.\n\n")
		for _, pr := range r.Profiles {
			fmt.Fprintf(&b, "### %s (%d s, %.0f req/s while profiled; `%s`)\n\n", pr.Name, pr.Seconds, pr.Throughput, pr.File)
			if len(pr.Selected) > 0 {
				b.WriteString("Where the time goes (cumulative share of the profile; layers nest):\n\n| layer | function | cum |\n|---|---|---|\n")
				for _, s := range pr.Selected {
					fmt.Fprintf(&b, "| %s | `%s` | %s |\n", s.What, s.Function, s.Cum)
				}
				b.WriteString("\n")
			}
			fmt.Fprintf(&b, "By flat time:\n\n```\n%s\n```\n\nBy cumulative time:\n\n```\n%s\n```\n\n", pr.TopFlat, pr.TopCum)
		}
	}

	b.WriteString("## Phases\n\n")
	for _, ph := range r.PhaseSeconds {
		fmt.Fprintf(&b, "- %s: %.0f s\n", ph.Name, ph.Seconds)
	}
	return b.String()
}

func loadTable(b *strings.Builder, figures []loadFigure, open bool) {
	if open {
		b.WriteString("| target | achieved | p50 | p90 | p99 | p99.9 | max | late p99 (pacer) | server CPU/req | server cores | other cores | errors |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	} else {
		b.WriteString("| target | throughput | rounds | p50 | p99 | server CPU/req | Redis CPU/req (in the command) | generator CPU/req | server cores | other cores | errors |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	}
	for _, f := range figures {
		errs := fmt.Sprint(f.Errors)
		if f.Unsent > 0 {
			errs += fmt.Sprintf(" (+%d unsent)", f.Unsent)
		}
		if f.FirstError != "" {
			errs += ": " + strings.ReplaceAll(f.FirstError, "|", "/")
		}
		if open {
			fmt.Fprintf(b, "| %s | %.0f/s | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %.2f ms (%.2f ms) | %.1f µs | %.2f | %.2f | %s |\n", f.Name, f.Throughput,
				f.P50ms, f.P90ms, f.P99ms, f.P999ms, f.MaxMs, f.LateP99ms, f.PacerLateP99ms, f.ServerCPUus, f.ServerCores, f.OtherCores, errs)
			continue
		}
		rounds := make([]string, len(f.RoundThroughputs))
		for i, v := range f.RoundThroughputs {
			rounds[i] = fmt.Sprintf("%.0f", v)
		}
		fmt.Fprintf(b, "| %s | **%.0f/s** | %s | %.2f ms | %.2f ms | %.1f µs | %s | %.1f µs | %.2f | %.2f | %s |\n", f.Name, f.Throughput,
			strings.Join(rounds, ", "), f.P50ms, f.P99ms, f.ServerCPUus, redisCell(f), f.GeneratorCPUus, f.ServerCores, f.OtherCores, errs)
	}
}

// redisCell is Redis' CPU per request, with the time its command took
// inside Redis (INFO commandstats) when known.
func redisCell(f loadFigure) string {
	if f.RedisCommand == "" {
		return fmt.Sprintf("%.1f µs", f.RedisCPUus)
	}
	return fmt.Sprintf("%.1f µs (%s %.1f µs)", f.RedisCPUus, strings.ToUpper(f.RedisCommand), f.RedisUsecPerCall)
}

// summary is what `make bench` prints at the end.
func (r *report) summary() string {
	var b strings.Builder
	b.WriteString("\n")
	for _, f := range r.Checks {
		fmt.Fprintf(&b, "%-30s %7.0f req/s  p50 %.2f ms  p99 %.2f ms  CPU %.1f µs/req\n", f.Name, f.Throughput, f.P50ms, f.P99ms, f.ServerCPUus)
	}
	b.WriteString("\n")
	for _, a := range r.Aims {
		fmt.Fprintf(&b, "%-4s %-52s %s (aim %s)\n", passMiss(a.Pass), a.Name, a.Measured, a.Aim)
	}
	return b.String()
}

func round(v float64, digits int) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func sortDurations(d []time.Duration) { slices.Sort(d) }
