package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// benchRedis is the bench's own redis-server: a free loopback port, data in
// the bench's temporary folder, AOF on (the UpdateConsent figures switch
// appendfsync between always and everysec), no RDB snapshots and no
// automatic AOF rewrite, so no fork lands in the middle of a measurement.
type benchRedis struct {
	proc    *child
	addr    string
	client  *redis.Client
	version string
}

func startRedis(ctx context.Context, procs *children, dir string) (*benchRedis, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server is not on PATH: run `make bench`, which installs it (or apt-get install redis-server)")
	}
	var lastErr error
	for attempt := range 3 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		data := filepath.Join(dir, fmt.Sprintf("redis-%d", attempt))
		if err := os.MkdirAll(data, 0o700); err != nil {
			return nil, err
		}
		log, err := os.Create(filepath.Join(dir, fmt.Sprintf("redis-%d.log", attempt)))
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(bin,
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", data,
			"--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
			"--auto-aof-rewrite-percentage", "0", "--maxclients", "10000",
			"--daemonize", "no", "--logfile", "")
		cmd.Stdout, cmd.Stderr = log, log
		proc, err := procs.start("redis-server", cmd)
		_ = log.Close()
		if err != nil {
			return nil, err
		}
		r := &benchRedis{proc: proc, addr: loopback(port)}
		r.client = redis.NewClient(&redis.Options{Addr: r.addr, DialTimeout: time.Second, ReadTimeout: 30 * time.Second, PoolSize: 4})
		if lastErr = r.waitReady(ctx); lastErr == nil {
			r.version = r.info(ctx, "server", "redis_version")
			return r, nil
		}
		_ = r.client.Close()
		proc.stop(time.Second)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return nil, fmt.Errorf("redis-server did not start: %w", lastErr)
}

// waitReady polls until the server answers and is the process we started
// (the port we probed may have been taken by another Redis meanwhile).
func (r *benchRedis) waitReady(ctx context.Context) error {
	want := "process_id:" + strconv.Itoa(r.proc.pid()) + "\r\n"
	deadline := time.Now().Add(10 * time.Second)
	for {
		if !r.proc.alive() {
			return errors.New("redis-server exited at start (port taken?)")
		}
		info, err := r.client.Info(ctx, "server").Result()
		if err == nil {
			if strings.Contains(info, want) {
				return nil
			}
			return errors.New("another redis-server answers on the port")
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("no answer: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// info returns one field of INFO <section>, "" if absent.
func (r *benchRedis) info(ctx context.Context, section, field string) string {
	s, _ := r.client.Info(ctx, section).Result()
	for line := range strings.SplitSeq(s, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return v
		}
	}
	return ""
}

// setFsync switches appendfsync and waits for a pending AOF fsync to end, so
// one setting's tail does not leak into the next measurement.
func (r *benchRedis) setFsync(ctx context.Context, mode string) error {
	if err := r.client.ConfigSet(ctx, "appendfsync", mode).Err(); err != nil {
		return fmt.Errorf("CONFIG SET appendfsync %s: %w", mode, err)
	}
	for range 100 {
		if r.info(ctx, "persistence", "aof_pending_bio_fsync") == "0" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// commandStat is one line of INFO commandstats: how often Redis ran a
// command and how long it spent in it (for a script, everything it did).
type commandStat struct {
	Calls       int64   `json:"calls"`
	UsecPerCall float64 `json:"usec_per_call"`
}

// resetStats zeroes INFO commandstats (CONFIG RESETSTAT).
func (r *benchRedis) resetStats(ctx context.Context) {
	_ = r.client.ConfigResetStat(ctx).Err()
}

// commandStat reads INFO commandstats for one command (lower case, e.g.
// "evalsha"); zero if it did not run.
func (r *benchRedis) commandStat(ctx context.Context, command string) commandStat {
	var st commandStat
	line := r.info(ctx, "commandstats", "cmdstat_"+command)
	for kv := range strings.SplitSeq(line, ",") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "calls":
			st.Calls, _ = strconv.ParseInt(v, 10, 64)
		case "usec_per_call":
			st.UsecPerCall, _ = strconv.ParseFloat(v, 64)
		}
	}
	return st
}

// redisBenchResult is one redis-benchmark run, from its --csv line.
type redisBenchResult struct {
	Command    string  `json:"command"`
	Clients    int     `json:"clients"`
	Requests   int     `json:"requests"`
	Throughput float64 `json:"throughput_rps"`
	P50ms      float64 `json:"p50_ms"`
	P99ms      float64 `json:"p99_ms"`
	CPUPerReq  float64 `json:"redis_cpu_us_per_request"`
	// Redis' own time per call of the command (INFO commandstats).
	RedisUsecPerCall float64 `json:"redis_usec_per_call"`
}

// redisBenchmark runs redis-benchmark against the bench's Redis: `clients`
// connections, n requests of the command args (which may use __rand_int__,
// replaced by a random number below keyspace at each occurrence). Bounded by
// timeout.
func (r *benchRedis) redisBenchmark(ctx context.Context, clients, n, keyspace int, timeout time.Duration, args ...string) (redisBenchResult, error) {
	bin, err := exec.LookPath("redis-benchmark")
	if err != nil {
		return redisBenchResult{}, errors.New("redis-benchmark is not on PATH (Debian ships it with redis-server)")
	}
	host, port, _ := strings.Cut(r.addr, ":")
	cmdArgs := []string{"-h", host, "-p", port, "-c", strconv.Itoa(clients), "-n", strconv.Itoa(n), "--csv"}
	if keyspace > 0 {
		cmdArgs = append(cmdArgs, "-r", strconv.Itoa(keyspace))
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(cmdArgs, args...)...)
	cmd.SysProcAttr = sysProcAttr()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cpuBefore, _ := cpuTime(r.proc.pid())
	r.resetStats(ctx)
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return redisBenchResult{}, fmt.Errorf("redis-benchmark %s: stopped after %v: %w", args[0], timeout, ctx.Err())
		}
		return redisBenchResult{}, fmt.Errorf("redis-benchmark %s: %w: %s", args[0], err, lastLines(stderr.String(), 5))
	}
	cpuAfter, _ := cpuTime(r.proc.pid())
	rows, err := csv.NewReader(&stdout).ReadAll()
	if err != nil || len(rows) < 2 || len(rows[1]) < 7 {
		return redisBenchResult{}, fmt.Errorf("redis-benchmark %s: unexpected output %q", args[0], stdout.String())
	}
	num := func(s string) float64 { v, _ := strconv.ParseFloat(s, 64); return v }
	res := redisBenchResult{Command: strings.Join(args, " "), Clients: clients, Requests: n,
		Throughput: num(rows[1][1]), P50ms: num(rows[1][4]), P99ms: num(rows[1][6])}
	res.CPUPerReq = float64((cpuAfter - cpuBefore).Microseconds()) / float64(n)
	res.RedisUsecPerCall = r.commandStat(ctx, strings.ToLower(args[0])).UsecPerCall
	return res, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
