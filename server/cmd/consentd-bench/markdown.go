package main

import (
	"fmt"
	"strings"
	"time"
)

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
	r.statsMemoryMarkdown(&b)

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
