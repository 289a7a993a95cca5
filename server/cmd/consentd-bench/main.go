// Command consentd-bench is `make bench`: it starts its own Redis, consentd
// and a ceiling server (bare grpc-go and grpc-gateway, the most any server
// built on them can do here) on free loopback ports, runs bounded load
// against them in one run, so that ratios hold on a noisy machine, profiles
// consentd, and writes a report (markdown and JSON) with every figure next to
// its aim.
//
//	consentd-bench [-consentd ./consentd] [-pprof .bench/pprof] [-out .bench]
//	               [-scale 1] [-phases all] [-grpc-conns 4] [-rate 5000]
//
// BENCH_SCALE (or -scale) multiplies every duration and count: 0.1 is a
// quick look of about a minute, 1 the full run of five to six. -phases runs
// only some phases (memory, stats, checks, hget, profiles, open, batches,
// updates).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "ceiling" {
		if err := runCeiling(); err != nil {
			fmt.Fprintln(os.Stderr, "consentd-bench ceiling:", err)
			os.Exit(1)
		}
		return
	}
	p, err := parsePlan(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "consentd-bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, p); err != nil {
		fmt.Fprintln(os.Stderr, "consentd-bench:", err)
		if errors.Is(err, context.Canceled) {
			os.Exit(130)
		}
		os.Exit(1)
	}
}

// phaseNames are the phases -phases can pick, in the order they run.
var phaseNames = []string{"memory", "stats", "checks", "hget", "profiles", "open", "batches", "updates"}

// plan is what the run does; every duration and count follows -scale.
type plan struct {
	Consentd    string  `json:"-"`
	Pprof       string  `json:"-"`
	Out         string  `json:"-"`
	Scale       float64 `json:"scale"`
	Concurrency int     `json:"concurrency"`
	GRPCConns   int     `json:"grpc_connections"`
	RESTConns   int     `json:"rest_connections"`
	Rate        float64 `json:"open_loop_rate_rps"`
	Rounds      int     `json:"rounds"`
	Phases      string  `json:"phases"`

	Warmup         time.Duration `json:"-"`
	Window         time.Duration `json:"-"`
	OpenWindow     time.Duration `json:"-"`
	UpdateWindow   time.Duration `json:"-"`
	ProfileSeconds int           `json:"profile_seconds"`
	// The durations above, in seconds, for report.json.
	WarmupSeconds       float64 `json:"warmup_seconds"`
	WindowSeconds       float64 `json:"closed_loop_window_seconds"`
	OpenWindowSeconds   float64 `json:"open_loop_window_seconds"`
	UpdateWindowSeconds float64 `json:"update_window_seconds"`

	Subjects       int `json:"subjects"`
	MemorySubjects int `json:"memory_subjects"`
	BatchSize      int `json:"batch_size"`
	FilterSize     int `json:"filter_size"`
	BatchIters     int `json:"batch_iterations"`
	FilterIters    int `json:"filter_iterations"`
	HGETRequests   int `json:"hget_requests"`
}

func parsePlan(args []string) (plan, error) {
	fs := flag.NewFlagSet("consentd-bench", flag.ContinueOnError)
	p := plan{}
	defaultScale := 1.0
	if v := os.Getenv("BENCH_SCALE"); v != "" {
		s, err := strconv.ParseFloat(v, 64)
		if err != nil || s <= 0 {
			return p, fmt.Errorf("BENCH_SCALE=%q: want a positive number, e.g. 0.1 for a quick look", v)
		}
		defaultScale = s
	}
	fs.StringVar(&p.Consentd, "consentd", "./consentd", "the consentd binary to measure (make bench builds it)")
	fs.StringVar(&p.Pprof, "pprof", "", "the pprof tool (make bench builds it); empty: `go tool pprof`")
	fs.StringVar(&p.Out, "out", ".bench", "report folder: report.md, report.json, profiles, logs")
	fs.Float64Var(&p.Scale, "scale", defaultScale, "multiplies every duration and count (BENCH_SCALE); 0.1: a quick look")
	fs.IntVar(&p.Concurrency, "concurrency", 64, "closed-loop workers, and REST connections")
	fs.IntVar(&p.GRPCConns, "grpc-conns", 4, "gRPC connections the workers share (the same for consentd and the ceiling)")
	fs.Float64Var(&p.Rate, "rate", 5000, "open-loop offered load, requests/s")
	fs.StringVar(&p.Phases, "phases", "all", "phases to run, comma-separated: "+strings.Join(phaseNames, ",")+" (the subjects are always written)")
	if err := fs.Parse(args); err != nil {
		return p, err
	}
	if p.Scale <= 0 || p.Scale > 10 {
		return p, fmt.Errorf("-scale %v: want more than 0, at most 10", p.Scale)
	}
	if p.Concurrency < 1 || p.GRPCConns < 1 || p.GRPCConns > p.Concurrency || p.Rate <= 0 {
		return p, errors.New("-concurrency, -grpc-conns (1..concurrency) and -rate must be positive")
	}
	if p.Phases != "all" {
		for name := range strings.SplitSeq(p.Phases, ",") {
			if !slices.Contains(phaseNames, name) {
				return p, fmt.Errorf("-phases: %q is not one of %s", name, strings.Join(phaseNames, ","))
			}
		}
	}
	if _, err := os.Stat(p.Consentd); err != nil {
		return p, fmt.Errorf("-consentd: %w (make bench builds ./consentd first)", err)
	}
	s := p.Scale
	dur := func(d, floor time.Duration) time.Duration { return max(floor, time.Duration(float64(d)*s)) }
	count := func(n, floor int) int { return max(floor, int(float64(n)*s)) }
	p.RESTConns = p.Concurrency
	p.Rounds = 3
	if s < 0.5 {
		p.Rounds = 1
	}
	p.Warmup = dur(time.Second, 500*time.Millisecond)
	p.Window = dur(12*time.Second, time.Second)
	p.OpenWindow = dur(15*time.Second, 2*time.Second)
	p.UpdateWindow = dur(12*time.Second, 2*time.Second)
	p.ProfileSeconds = max(2, int(10*s))
	p.Subjects = 10000 // FilterSubjects asks about 10,000 ids: all of them exist
	p.MemorySubjects = count(100, 20)
	p.BatchSize, p.FilterSize = 1000, 10000
	p.BatchIters = count(200, 20)
	p.FilterIters = count(40, 5)
	p.HGETRequests = count(500000, 20000)
	p.WarmupSeconds, p.WindowSeconds = p.Warmup.Seconds(), p.Window.Seconds()
	p.OpenWindowSeconds, p.UpdateWindowSeconds = p.OpenWindow.Seconds(), p.UpdateWindow.Seconds()
	return p, nil
}

// run is the whole benchmark. Every child process is stopped when it
// returns, whatever happened.
func run(ctx context.Context, p plan) (err error) {
	began := time.Now()
	if err := os.MkdirAll(p.Out, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "consentd-bench-")
	if err != nil {
		return err
	}
	procs := &children{}
	defer func() {
		procs.stopAll()
		_ = os.RemoveAll(tmp)
	}()

	b := &bench{plan: p, procs: procs, rep: newReport(p, began)}
	say("starting Redis, consentd and the ceiling server")
	if b.redis, err = startRedis(ctx, procs, tmp); err != nil {
		return err
	}
	if b.consentd, err = startConsentd(ctx, procs, p.Consentd, tmp, p.Out, b.redis.addr); err != nil {
		return err
	}
	if b.ceiling, err = startCeiling(ctx, procs); err != nil {
		return err
	}
	b.rep.Machine.RedisVersion = b.redis.version
	if err := b.connect(); err != nil {
		return err
	}
	defer b.disconnect()

	phases := []struct {
		id, name string
		fn       func(context.Context) error
	}{
		{"memory", "memory per subject and per event", b.memory},
		{"stats", "memory of the consent statistics per day", b.statsMemory},
		{"", "writing the subjects the reads ask about", b.seed},
		{"checks", "check throughput, closed loop (consentd and ceiling, interleaved)", b.checks},
		{"hget", "redis-benchmark HGET", b.hget},
		{"profiles", "profiles of consentd under check load", b.profiles},
		{"open", "check latency, open loop", b.openLoop},
		{"batches", "BatchCheckConsent and FilterSubjects", b.batches},
		{"updates", "UpdateConsent and the equivalent EVAL", b.updates},
	}
	for _, ph := range phases {
		if ph.id != "" && p.Phases != "all" && !slices.Contains(strings.Split(p.Phases, ","), ph.id) {
			continue
		}
		say("%s", ph.name)
		start := time.Now()
		if err := ph.fn(ctx); err != nil {
			return fmt.Errorf("%s: %w", ph.name, err)
		}
		b.rep.PhaseSeconds = append(b.rep.PhaseSeconds, phaseTime{Name: ph.name, Seconds: round(time.Since(start).Seconds(), 1)})
	}
	if err := b.peakRSS(); err != nil {
		return err
	}
	b.rep.finish(time.Since(began))
	if err := b.rep.write(p.Out); err != nil {
		return err
	}
	fmt.Print(b.rep.summary())
	fmt.Printf("\nreport: %s, %s (%.0f s)\n", filepath.Join(p.Out, "report.md"), filepath.Join(p.Out, "report.json"), time.Since(began).Seconds())
	return nil
}

// say prints progress on stderr, prefixed with the time.
func say(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// ceilingProc is the ceiling server, this binary's "ceiling" subcommand.
type ceilingProc struct {
	proc     *child
	stdin    io.WriteCloser
	grpcAddr string
	httpAddr string
}

func startCeiling(ctx context.Context, procs *children) (*ceilingProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "ceiling")
	// The ceiling stops when its stdin closes, i.e. when we are gone (a
	// backstop where Pdeathsig does not exist); keep the pipe referenced.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	proc, err := procs.start("ceiling", cmd)
	if err != nil {
		return nil, err
	}
	line := make(chan string, 1)
	go func() {
		buf := make([]byte, 256)
		n, _ := stdout.Read(buf)
		line <- strings.TrimSpace(string(buf[:n]))
	}()
	select {
	case l := <-line:
		c := &ceilingProc{proc: proc, stdin: stdin}
		for f := range strings.FieldsSeq(l) {
			if v, ok := strings.CutPrefix(f, "grpc="); ok {
				c.grpcAddr = v
			}
			if v, ok := strings.CutPrefix(f, "http="); ok {
				c.httpAddr = v
			}
		}
		if c.grpcAddr == "" || c.httpAddr == "" {
			return nil, fmt.Errorf("ceiling server said %q, want its addresses", l)
		}
		return c, nil
	case <-time.After(10 * time.Second):
		return nil, errors.New("ceiling server did not start within 10 s")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
