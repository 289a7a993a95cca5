// Package redistest starts a real, throwaway redis-server for tests.
//
// Each server listens on a free loopback port (never a fixed one: other
// processes share the machine), keeps nothing on disk beyond the test's
// temporary directory, and is killed when the test ends. Start keeps nothing
// at all; StartDurable keeps an append-only file that survives a kill.
package redistest

import "time"

// startAttempts bounds the retries when the port picked is taken by someone
// else between our probe and redis-server binding it.
const startAttempts = 5

// readyTimeout is how long a started redis-server may take to answer PING.
const readyTimeout = 15 * time.Second

// Redis Cluster and Redis Sentinel for tests: real redis-server processes on
// free loopback ports, in the test's temporary directory, killed when the
// test ends (and by the kernel if the test binary dies first).
//
// Both are tuned to fail over within a few seconds, so tests can kill a
// master and watch the service recover:
//   - cluster-node-timeout 2000 ms: a master is flagged failing after 2 s
//     without an answer and its replica takes over about a second later. Lower
//     values fail over faster but risk a spurious failover when the test
//     machine is busy (2 cores running `go test -race ./...`).
//   - Sentinel down-after-milliseconds 1000, failover-timeout 3000.
//   - repl-diskless-sync-delay 0: replicas sync at once (Redis waits 5 s by
//     default for more replicas to share a transfer), so they are ready
//     to take over when the set-up returns.
//   - nothing on disk beyond the node files Cluster and Sentinel keep.

// formationTimeout bounds how long a cluster or a sentinel set-up, and a
// failover, may take. Redis' own timings (above) decide; this is only a
// guard against a test hanging forever.
const formationTimeout = 30 * time.Second
