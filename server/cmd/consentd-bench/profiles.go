package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

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
