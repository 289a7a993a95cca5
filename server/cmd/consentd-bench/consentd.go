package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// consentdProc is the consentd under test, started from the binary `make
// bench` built, with a keys file and an API key of its own, on free loopback
// ports, profiling on --debug-addr.
type consentdProc struct {
	proc      *child
	grpcAddr  string
	httpAddr  string
	debugAddr string
	apiKey    string
	logPath   string
}

func startConsentd(ctx context.Context, procs *children, bin, dir, outDir, redisAddr string) (*consentdProc, error) {
	keysFile := filepath.Join(dir, "keys.yaml")
	var keys strings.Builder
	for _, kind := range []string{"hmac", "encryption", "token"} {
		fmt.Fprintf(&keys, "%s_keys:\n  - id: %s1\n    secret: %s\n", kind, kind, base64.StdEncoding.EncodeToString(randomBytes(32)))
	}
	if err := os.WriteFile(keysFile, []byte(keys.String()), 0o600); err != nil {
		return nil, err
	}
	c := &consentdProc{apiKey: base64.RawURLEncoding.EncodeToString(randomBytes(32)), logPath: filepath.Join(outDir, "consentd.log")}

	// CONSENTD_* settings of the caller's environment would change what is
	// measured: consentd gets only the flags below and its API key.
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONSENTD_") {
			env = append(env, kv)
		}
	}
	env = append(env, "CONSENTD_API_KEY="+c.apiKey)

	var lastErr error
	for range 3 {
		var ports [3]int
		for i := range ports {
			p, err := freePort()
			if err != nil {
				return nil, err
			}
			ports[i] = p
		}
		c.grpcAddr, c.httpAddr, c.debugAddr = loopback(ports[0]), loopback(ports[1]), loopback(ports[2])
		log, err := os.Create(c.logPath)
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(bin,
			"--redis-url", "redis://"+redisAddr+"/0",
			"--grpc-addr", c.grpcAddr, "--http-addr", c.httpAddr, "--debug-addr", c.debugAddr,
			"--keys-file", keysFile, "--rate-limit-ip", "0", "--log-level", "warn", "--drain-delay", "0s")
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = log, log
		proc, err := procs.start("consentd", cmd)
		_ = log.Close()
		if err != nil {
			return nil, err
		}
		c.proc = proc
		if lastErr = c.waitReady(ctx); lastErr == nil {
			return c, nil
		}
		proc.stop(2 * time.Second)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return nil, fmt.Errorf("consentd did not start (log: %s): %w", c.logPath, lastErr)
}

// waitReady polls /readyz until consentd answers "ready" (Redis reachable).
func (c *consentdProc) waitReady(ctx context.Context) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if !c.proc.alive() {
			b, _ := os.ReadFile(c.logPath)
			return fmt.Errorf("consentd exited at start: %s", lastLines(string(b), 5))
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.httpAddr+"/readyz", nil)
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("not ready: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}
