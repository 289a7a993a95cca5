// Command consentd serves the consent API over gRPC and REST.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/app"
	"github.com/consentd/consentd/server/config"
)

// gcPercent is consentd's GOGC unless the environment sets one. The live
// heap is small (10-15 MiB under load) and every call allocates a few KiB
// that die at once, so at Go's default, 100, the collector runs many times a
// second. 200 collects half as often; `make bench` put 400's peak RSS over
// its 100 MB aim (117 MiB; 79 MiB at 200) for no CPU gain it could tell
// from noise. GOMEMLIMIT, when set (the Kubernetes manifests set it below
// the container's limit), makes the collector work harder near the limit
// instead of running out of memory.
const gcPercent = 200

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is consentd with its arguments (without the program's name): the
// server, or a subcommand (tools.go). It returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if tool, ok := tools[args[0]]; ok {
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return tool(ctx, args[1:], os.Getenv, stdout, stderr)
		}
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	cfg, err := config.Load(args, os.Getenv, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "consentd:", err)
		return 2
	}
	logger := newLogger(cfg, stderr)
	// go-redis reports connection-pool trouble through its own global logger;
	// route it into ours so every line is structured.
	redis.SetLogger(redisLogger{logger})

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	a, err := app.New(cfg, logger)
	if err != nil {
		fmt.Fprintln(stderr, "consentd:", err)
		return 1
	}
	go reloadOnHangup(ctx, a, logger)
	if err := a.Run(ctx); err != nil {
		logger.Error("consentd stopped", "error", err)
		return 1
	}
	return 0
}

func newLogger(cfg config.Config, out io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(out, opts))
	}
	return slog.New(slog.NewJSONHandler(out, opts))
}

// reloadOnHangup reloads the policy file and the vendor list (--gvl) on
// SIGHUP; a bad file is logged and the policy and vendor list in force stay.
func reloadOnHangup(ctx context.Context, a *app.App, logger *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := a.ReloadPolicy(); err != nil {
				logger.Error("policy reload failed; the previous policy and vendor list stay in force", "error", err)
			}
		}
	}
}

type redisLogger struct{ logger *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.logger.WarnContext(ctx, "redis client", "detail", fmt.Sprintf(format, v...))
}
