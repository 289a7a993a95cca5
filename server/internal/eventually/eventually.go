// Package eventually lets a test wait for a condition instead of sleeping
// for a guessed time.
package eventually

import (
	"testing"
	"time"
)

// True polls cond until it holds, failing the test after 10 seconds.
func True(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
