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
	Started      time.Time          `json:"started"`
	Seconds      float64            `json:"seconds"`
	Command      string             `json:"command"`
	Machine      machine            `json:"machine"`
	Plan         plan               `json:"plan"`
	Aims         []aim              `json:"aims"`
	Checks       []loadFigure       `json:"checks_closed_loop"`
	OpenLoop     []loadFigure       `json:"checks_open_loop"`
	HGET         *redisBenchResult  `json:"redis_benchmark_hget"`
	Batch        *seqFigure         `json:"batch_check"`
	Filter       *seqFigure         `json:"filter_subjects"`
	Updates      []updateFigure     `json:"updates"`
	Memory       memoryFigure       `json:"memory"`
	StatsMemory  *statsMemoryFigure `json:"stats_memory,omitempty"`
	RSS          rssFigure          `json:"rss"`
	Profiles     []profileFigure    `json:"profiles"`
	PhaseSeconds []phaseTime        `json:"phase_seconds"`
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

func round(v float64, digits int) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func sortDurations(d []time.Duration) { slices.Sort(d) }
