package app

import (
	"time"
)

// Resilience: what consentd does when its Redis is killed (kill -9, with
// the append-only file deploy/ ships), unreachable or stalled, and whether
// a long mixed load leaves its memory flat. consentd runs in-process against
// real redis-server processes. Nothing here asserts how long anything took:
// every call carries a generous deadline of its own, and a call that waited
// on Redis without a bound would come back DeadlineExceeded, not Unavailable.
//
// `make test-resilience` runs only these, verbosely (they print what the
// clients saw); CONSENTD_SOAK=3m makes the soak longer.

// callTimeout is each call's own deadline: far beyond --redis-timeout, so
// that only a call that waits on Redis without a bound reaches it.
const callTimeout = 10 * time.Second
