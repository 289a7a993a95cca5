package app

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consentd/consentd/server/internal/eventually"
	"github.com/consentd/consentd/server/internal/redistest"
)

func TestClusterFailoverUnderTraffic(t *testing.T) {
	cluster := redistest.StartCluster(t)
	srv := startOnCluster(t, cluster)
	subjects := failoverSubjects()
	// The master of the first subject's slot dies; the subjects on the other
	// two masters show what a partial outage does to them.
	victim := cluster.MasterFor(hashTagOf(subjects[0]))
	affected := map[string]bool{}
	for _, s := range subjects {
		affected[s] = cluster.MasterFor(hashTagOf(s)) == victim
	}
	runFailover(t, srv, subjects, affected, func() (killed string, waitPromoted func()) {
		victim.Kill()
		return victim.Name() + " (a master)", func() { cluster.WaitForFailover(victim) }
	})
}

func TestSentinelFailoverUnderTraffic(t *testing.T) {
	sentinel := redistest.StartSentinel(t)
	srv := startOnSentinel(t, sentinel)
	subjects := failoverSubjects()
	affected := map[string]bool{}
	for _, s := range subjects {
		affected[s] = true // one master holds everything
	}
	runFailover(t, srv, subjects, affected, func() (string, func()) {
		killed := sentinel.KillMaster()
		return killed.Name(), func() { sentinel.WaitForFailover(killed) }
	})
}

func failoverSubjects() []string {
	var out []string
	for i := range 32 {
		out = append(out, fmt.Sprintf("failover-%02d", i))
	}
	return out
}

// runFailover runs write+check traffic on subjects, kills a Redis master
// (kill returns what it killed, and a function that returns once Redis has
// promoted a replica), keeps the traffic going until every subject has been
// written again, then checks every subject's history against what the
// clients were told, and logs what they saw.
func runFailover(t *testing.T, srv *consentd, subjects []string, affected map[string]bool, kill func() (string, func())) {
	fc := &failoverClient{subjects: map[string]*subjectLog{}, affected: affected, failures: map[string]int{}}
	for _, s := range subjects {
		fc.subjects[s] = &subjectLog{}
	}

	ready := startReadinessProbe(srv)

	const workers = 4
	// stop: finish the pending writes, then return; abort: return now (the
	// test failed).
	stop, abort := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var own []string
			for i, s := range subjects {
				if i%workers == w {
					own = append(own, s)
				}
			}
			fc.work(t, srv, own, stop, abort)
		}()
	}
	stopTraffic := sync.OnceFunc(func() { close(stop); wg.Wait(); ready.stop(); <-ready.done })
	t.Cleanup(func() { close(abort); stopTraffic() })

	// Traffic before: every subject written a few times.
	eventually.True(t, "three writes to every subject", func() bool {
		return fc.subjectsWithAcksSince(time.Time{}, 3) == len(subjects)
	})
	fc.mu.Lock()
	fc.killedAt = time.Now()
	killedAt := fc.killedAt
	fc.mu.Unlock()
	killed, waitPromoted := kill()
	waitPromoted()
	promotedAt := time.Now()
	// consentd follows by itself: every subject is written again.
	eventually.True(t, "a write to every subject after the failover", func() bool {
		return fc.subjectsWithAcksSince(promotedAt, 1) == len(subjects)
	})
	recoveredAt := time.Now()
	eventually.True(t, "three more writes to every subject", func() bool {
		return fc.subjectsWithAcksSince(recoveredAt, 3) == len(subjects)
	})
	stopTraffic()

	acked, lost := fc.verify(t, srv, subjects, killedAt, promotedAt)
	fc.report(t, killed, subjects, acked, lost, killedAt, promotedAt, ready.probes)
}

// readinessProbe asks /readyz as a load balancer would, until stopped.
type readinessProbe struct {
	mu     sync.Mutex
	probes []readyProbe
	stop   context.CancelFunc
	done   chan struct{} // closed once it has stopped
}

type readyProbe struct {
	at    time.Time
	ready bool
}

func startReadinessProbe(srv *consentd) *readinessProbe {
	probeCtx, stopProbe := context.WithCancel(context.Background())
	p := &readinessProbe{stop: stopProbe, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for probeCtx.Err() == nil {
			req, _ := http.NewRequestWithContext(probeCtx, "GET", srv.baseURL+"/readyz", nil)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
				p.mu.Lock()
				p.probes = append(p.probes, readyProbe{time.Now(), resp.StatusCode == http.StatusOK})
				p.mu.Unlock()
			}
			time.Sleep(50 * time.Millisecond) // the probe's period
		}
	}()
	return p
}

// report logs what the clients saw.
func (fc *failoverClient) report(t *testing.T, killed string, subjects []string, acked int, lost []string, killedAt, promotedAt time.Time, probes []readyProbe) {
	affected := fc.affected
	affectedCount := 0
	var recovery time.Duration
	for s, log := range fc.subjects {
		if affected[s] {
			affectedCount++
			recovery = max(recovery, log.recovered.Sub(killedAt))
		}
	}
	t.Logf("killed %s with %d of %d subjects on it; Redis promoted a replica %v after the kill",
		killed, affectedCount, len(subjects), promotedAt.Sub(killedAt).Round(time.Millisecond))
	failedWrites := 0
	for k, n := range fc.failures {
		if strings.HasPrefix(k, "write ") {
			failedWrites += n
		}
	}
	t.Logf("%d writes, each acknowledged in the end and then checked (min_revision); %d failed attempts were retried with the same idempotency key", acked, failedWrites)
	if fc.firstFailure.IsZero() {
		t.Logf("no call failed after the kill")
	} else {
		t.Logf("calls failed from %v to %v after the kill; every killed-master subject was written again within %v of the kill",
			fc.firstFailure.Sub(killedAt).Round(time.Millisecond), fc.lastFailure.Sub(killedAt).Round(time.Millisecond), recovery.Round(time.Millisecond))
	}
	for _, k := range slices.Sorted(maps.Keys(fc.failures)) {
		t.Logf("  failed: %-60s %d", k, fc.failures[k])
	}
	// Readiness between the kill and the last failure: a load balancer
	// would have taken consentd out while it failed.
	var first, last time.Time
	failed, during := 0, 0
	for _, p := range probes {
		if !p.ready {
			failed++
			first = cmp.Or(first, p.at)
			last = p.at
		}
		if p.at.After(killedAt) && !p.at.After(fc.lastFailure) {
			during++
		}
	}
	if failed == 0 {
		t.Logf("/readyz (probed every 50ms) never failed")
	} else {
		t.Logf("/readyz (probed every 50ms) failed %d times, from %v to %v after the kill; %d probes came back in that outage",
			failed, first.Sub(killedAt).Round(time.Millisecond), last.Sub(killedAt).Round(time.Millisecond), during)
	}
	t.Logf("checks behind an acknowledged revision (FailedPrecondition): %d", len(fc.staleChecks))
	t.Logf("acknowledged writes lost (Redis' asynchronous replication): %d %s", len(lost), strings.Join(lost, "; "))
}
