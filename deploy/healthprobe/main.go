// Command healthprobe is the container image's health check: it GETs one URL
// and exits 0 on 200 OK, 1 otherwise. The image is distroless (no shell, no
// curl, nothing to exec but what we put there), so Docker's HEALTHCHECK and
// compose's healthcheck run this instead. Kubernetes does not need it: its
// probes are httpGet against the same endpoints.
//
//	healthprobe http://127.0.0.1:8080/readyz
//	healthprobe http://127.0.0.1:8082/readyz   (with --admin-addr :8082, as in compose.yaml)
//	healthprobe                                 (/healthz where consentd serves it, from its environment)
//
// Without a URL it reads the container's own settings: the admin listener's
// port when CONSENTD_ADMIN_ADDR is set (health moves there), else
// CONSENTD_HTTP_ADDR's, else 8080. So the image's HEALTHCHECK follows an
// operator who sets CONSENTD_ADMIN_ADDR; one who passes --admin-addr as a
// flag must give the URL instead.
//
// Plain HTTP only. With --admin-addr set, the admin listener never asks for
// TLS client certificates. Without it and with --tls-cert set, point
// orchestrators at the port themselves (Kubernetes: scheme HTTPS) and turn
// this check off.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// timeout stays below the HEALTHCHECK --timeout, so a hung consentd is
// reported by us with a reason rather than killed by Docker without one.
const timeout = 2 * time.Second

func main() {
	var url string
	switch len(os.Args) {
	case 1:
		var err error
		if url, err = healthURL(os.Getenv); err != nil {
			fmt.Fprintln(os.Stderr, "healthprobe:", err)
			os.Exit(2)
		}
	case 2:
		url = os.Args[1]
	default:
		fmt.Fprintln(os.Stderr, "usage: healthprobe [URL]")
		os.Exit(2)
	}
	if err := probe(url, timeout); err != nil {
		fmt.Fprintln(os.Stderr, "healthprobe:", err)
		os.Exit(1)
	}
}

// healthURL is /healthz on the listener that serves it, from consentd's
// environment: CONSENTD_ADMIN_ADDR when set, else CONSENTD_HTTP_ADDR, else
// 127.0.0.1:8080. A wildcard host (":8082", "0.0.0.0:8082", "[::]:8082")
// is asked on loopback.
func healthURL(getenv func(string) string) (string, error) {
	name, addr := "CONSENTD_ADMIN_ADDR", getenv("CONSENTD_ADMIN_ADDR")
	if addr == "" {
		name, addr = "CONSENTD_HTTP_ADDR", getenv("CONSENTD_HTTP_ADDR")
	}
	if addr == "" {
		return "http://127.0.0.1:8080/healthz", nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%s=%q is not host:port", name, addr)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz", nil
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
