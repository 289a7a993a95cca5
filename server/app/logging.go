package app

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/grpclog"
)

// Every log line goes through the app's slog logger, so every line is JSON
// (unless --log-format text), including what net/http, grpc-go and
// grpc-gateway (through grpclog) print themselves; and their text, which
// quotes sockets ("write tcp 10.0.0.1:443->203.0.113.9:51234"), is
// scrubbed of addresses: no client IP is ever logged.

var clientAddress = regexp.MustCompile(`(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:.%a-z]+\]):\d+`)

func scrub(msg string) string {
	return clientAddress.ReplaceAllString(strings.TrimSpace(msg), "<client>")
}

// httpErrorLog sends net/http's own messages (TLS handshake failures, bad
// requests) to the structured log.
func httpErrorLog(logger *slog.Logger) *log.Logger {
	return log.New(addressScrubber{logger}, "", 0)
}

type addressScrubber struct{ logger *slog.Logger }

func (s addressScrubber) Write(p []byte) (int, error) {
	s.logger.Warn("http server", "detail", scrub(string(p)))
	return len(p), nil
}

// grpcLogger is grpclog's logger: grpclog is global, and may be set only
// before gRPC starts, so it is set once and writes to the logger of the
// latest App (a process runs one; tests run several).
var (
	grpcLogger     atomic.Pointer[slog.Logger]
	setGRPCLogOnce sync.Once
)

func routeGRPCLog(logger *slog.Logger) {
	grpcLogger.Store(logger)
	setGRPCLogOnce.Do(func() { grpclog.SetLoggerV2(grpcLog{}) })
}

// grpcLog keeps grpc-go's default verbosity (errors; warnings at debug,
// info dropped), and logs a client gone mid-answer (grpc-gateway's
// "Failed to flush response to client") at info: it is the client's doing.
type grpcLog struct{}

func (grpcLog) log(level slog.Level, msg string) {
	msg = scrub(msg)
	if level == slog.LevelError && clientGone(msg) {
		level = slog.LevelInfo
	}
	if l := grpcLogger.Load(); l != nil {
		l.Log(context.Background(), level, "grpc", "detail", msg)
	}
}

func clientGone(msg string) bool {
	for _, s := range []string{"Failed to flush response to client", "Failed to send response chunk", "Failed to send delimiter chunk", "broken pipe", "connection reset by peer"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func (grpcLog) Info(...any)             {}
func (grpcLog) Infoln(...any)           {}
func (grpcLog) Infof(string, ...any)    {}
func (g grpcLog) Warning(args ...any)   { g.log(slog.LevelDebug, fmt.Sprint(args...)) }
func (g grpcLog) Warningln(args ...any) { g.log(slog.LevelDebug, fmt.Sprintln(args...)) }
func (g grpcLog) Warningf(format string, args ...any) {
	g.log(slog.LevelDebug, fmt.Sprintf(format, args...))
}
func (g grpcLog) Error(args ...any)   { g.log(slog.LevelError, fmt.Sprint(args...)) }
func (g grpcLog) Errorln(args ...any) { g.log(slog.LevelError, fmt.Sprintln(args...)) }
func (g grpcLog) Errorf(format string, args ...any) {
	g.log(slog.LevelError, fmt.Sprintf(format, args...))
}
func (g grpcLog) Fatal(args ...any)   { g.log(slog.LevelError, fmt.Sprint(args...)); os.Exit(1) }
func (g grpcLog) Fatalln(args ...any) { g.log(slog.LevelError, fmt.Sprintln(args...)); os.Exit(1) }
func (g grpcLog) Fatalf(format string, args ...any) {
	g.log(slog.LevelError, fmt.Sprintf(format, args...))
	os.Exit(1)
}

// V reports grpc-go's verbose levels off, as its default logger does.
func (grpcLog) V(int) bool { return false }
