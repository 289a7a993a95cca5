// Command healthprobe is the container image's health check: it GETs one URL
// and exits 0 on 200 OK, 1 otherwise. The image is distroless (no shell, no
// curl, nothing to exec but what we put there), so Docker's HEALTHCHECK and
// compose's healthcheck run this instead. Kubernetes does not need it: its
// probes are httpGet against the same endpoints.
//
//	healthprobe http://127.0.0.1:8080/readyz
//	healthprobe http://127.0.0.1:8082/readyz   (with --admin-addr :8082, as in compose.yaml)
//
// Plain HTTP only. With --admin-addr set, point it at the admin port: health
// moves there, and that listener never asks for TLS client certificates.
// Without it and with --tls-cert set, point orchestrators at the port
// themselves (Kubernetes: scheme HTTPS) and turn this check off.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// timeout stays below the HEALTHCHECK --timeout, so a hung consentd is
// reported by us with a reason rather than killed by Docker without one.
const timeout = 2 * time.Second

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: healthprobe URL")
		os.Exit(2)
	}
	if err := probe(os.Args[1], timeout); err != nil {
		fmt.Fprintln(os.Stderr, "healthprobe:", err)
		os.Exit(1)
	}
}

// probe returns nil if GET url answers 200 within timeout.
func probe(url string, timeout time.Duration) error {
	client := &http.Client{Timeout: timeout}
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
