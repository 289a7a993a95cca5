package app

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/internal/eventually"
	"github.com/consentd/consentd/server/internal/redistest"
	"github.com/consentd/consentd/server/ratelimit"
)

// consentd on a Redis Cluster (three masters with a replica each) and on
// Redis Sentinel (a master, a replica, three sentinels): every RPC family,
// the no-resend policy, and what clients see when a master is killed.

func startOnCluster(t *testing.T, cluster *redistest.Cluster, tweak ...func(*config.Config)) *consentd {
	t.Helper()
	return start(t, "", append([]func(*config.Config){func(c *config.Config) {
		c.RedisMode, c.RedisAddrs = "cluster", cluster.Addrs()
	}}, tweak...)...)
}

func startOnSentinel(t *testing.T, sentinel *redistest.Sentinel) *consentd {
	t.Helper()
	return start(t, "", func(c *config.Config) {
		c.RedisMode, c.RedisAddrs, c.RedisMaster = "sentinel", sentinel.Addrs(), redistest.SentinelMaster
	})
}

// hashTagOf is the cluster hash tag of subject's keys, as server/store/keys.go
// derives it (the first 2 bytes of SHA-256 of the id, mod the 64 default
// partitions). TestEveryRPCFamilyOnACluster checks it against the keys
// consentd writes.
func hashTagOf(subject string) string {
	sum := sha256.Sum256([]byte(subject))
	return "{p" + strconv.Itoa(int(binary.BigEndian.Uint16(sum[:2]))%64) + "}"
}

// The client policy of each mode: bounded waits, nothing re-sent, masters
// only (redis.go says why).
func TestRedisClientOptionsPerMode(t *testing.T) {
	base := config.Config{RedisURL: "redis://127.0.0.1:1/0", RedisTimeout: 300 * time.Millisecond}
	for _, mode := range []string{"", "standalone", "cluster", "sentinel"} {
		t.Run("mode "+cmp.Or(mode, "unset"), func(t *testing.T) {
			cfg := base
			cfg.RedisMode = mode
			if mode == "cluster" || mode == "sentinel" {
				cfg.RedisAddrs = []string{"127.0.0.1:1"}
			}
			if mode == "sentinel" {
				cfg.RedisMaster = "m"
			}
			client, err := newRedisClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			var o struct {
				retries, redirects, dialerRetries int
				readOnly                          bool
				timeouts                          []time.Duration
			}
			switch c := client.(type) {
			case *goredis.Client: // standalone, and sentinel's failover client
				opts := c.Options()
				o.retries, o.dialerRetries = opts.MaxRetries, opts.DialerRetries
				o.timeouts = []time.Duration{opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout, opts.PoolTimeout}
			case *goredis.ClusterClient:
				opts := c.Options()
				o.retries, o.redirects, o.dialerRetries, o.readOnly = opts.MaxRetries, opts.MaxRedirects, opts.DialerRetries, opts.ReadOnly
				o.timeouts = []time.Duration{opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout, opts.PoolTimeout}
				if mode != "cluster" {
					t.Fatalf("a cluster client in mode %q", mode)
				}
			default:
				t.Fatalf("client %T", client)
			}
			// Normalised by go-redis: MaxRetries -1 reads 0 on a Client and -1
			// on a ClusterClient, MaxRedirects -1 reads 0; each means none.
			if o.retries > 0 || o.redirects != 0 || o.dialerRetries != 1 || o.readOnly {
				t.Errorf("retries %d, redirects %d, dialer retries %d, read-only %v; want none, none, 1, false", o.retries, o.redirects, o.dialerRetries, o.readOnly)
			}
			for _, d := range o.timeouts {
				if d != cfg.RedisTimeout {
					t.Errorf("timeouts %v, want each %v", o.timeouts, cfg.RedisTimeout)
					break
				}
			}
		})
	}
	if _, err := newRedisClient(config.Config{RedisMode: "ring"}); err == nil || !strings.Contains(err.Error(), "--redis-mode") {
		t.Errorf("mode ring: %v", err)
	}
}

func TestEveryRPCFamilyOnACluster(t *testing.T) {
	cluster := redistest.StartCluster(t)
	srv := startOnCluster(t, cluster)
	c := srv.grpc
	watchCtx := as(ctx(t), apiKeys["watch"])
	must(c.CreateFeedConsumer(watchCtx, &consentv1.CreateFeedConsumerRequest{Consumer: "cluster-mailer"})).ok(t)

	// Enough subjects to land on every master.
	var subjects []string
	masters := map[string]bool{}
	for i := range 24 {
		s := fmt.Sprintf("cluster-user-%d", i)
		subjects = append(subjects, s)
		masters[cluster.MasterFor(hashTagOf(s)).ID()] = true
		up := must(c.UpdateConsent(ctx(t), &consentv1.UpdateConsentRequest{SubjectId: s, Region: "DE",
			Decisions: map[string]bool{"analytics": true, "marketing.email": i%2 == 0}, IdempotencyKey: "first-" + s})).ok(t)
		if up.GetConsent().GetRevision() != 1 {
			t.Fatalf("%s: revision %d after its first write", s, up.GetConsent().GetRevision())
		}
	}
	if len(masters) != 3 {
		t.Fatalf("the subjects are on %d masters, want all 3", len(masters))
	}
	// The keys are where hashTagOf (and so the failover test) expects them.
	client := cluster.Client(t)
	for _, s := range subjects {
		key := "consentd:" + hashTagOf(s) + ":s:" + keyID(t, s)
		if n, err := client.Exists(ctx(t), key).Result(); err != nil || n != 1 {
			t.Fatalf("state key %s of %s: exists=%d, %v", key, s, n, err)
		}
	}

	// Reads: one subject, a batch over every master, a send list.
	var checks []*consentv1.ConsentCheck
	var wantAllowed []string
	for i, s := range subjects {
		check := must(c.CheckConsent(ctx(t), &consentv1.CheckConsentRequest{SubjectId: s, Purpose: "analytics", MinRevision: 1})).ok(t)
		if !check.GetAllowed() || check.GetRevision() != 1 {
			t.Fatalf("check %s: %v", s, check)
		}
		checks = append(checks, &consentv1.ConsentCheck{SubjectId: s, Purpose: "marketing.email", Region: "DE"})
		if i%2 == 0 {
			wantAllowed = append(wantAllowed, s)
		}
	}
	batch := must(c.BatchCheckConsent(ctx(t), &consentv1.BatchCheckConsentRequest{Checks: checks})).ok(t)
	for i, r := range batch.GetResults() {
		if r.GetSubjectId() != subjects[i] || r.GetAllowed() != (i%2 == 0) || r.GetRevision() != 1 {
			t.Errorf("batch result %d: %v", i, r)
		}
	}
	filtered := must(c.FilterSubjects(ctx(t), &consentv1.FilterSubjectsRequest{Purpose: "marketing.email", Region: "DE",
		SubjectIds: append(slices.Clone(subjects), "never-seen")})).ok(t)
	if !slices.Equal(filtered.GetAllowedSubjectIds(), wantAllowed) {
		t.Errorf("filter = %v, want %v", filtered.GetAllowedSubjectIds(), wantAllowed)
	}

	// The change feed across every partition, with a consumer that
	// acknowledges.
	w := watchGRPC(t, srv, &consentv1.WatchConsentChangesRequest{Consumer: "cluster-mailer", BatchSize: 10})
	got, _ := readUntil(t, w, subjects...)
	if !sameSubjects(got, subjects...) {
		t.Fatalf("watch got %v, want each of %v once", subjectsOf(got), subjects)
	}
	if n := must(c.AcknowledgeConsentChanges(watchCtx, &consentv1.AcknowledgeConsentChangesRequest{
		Consumer: "cluster-mailer", ChangeIds: idsOf(got)})).ok(t).GetAcknowledged(); n != int64(len(subjects)) {
		t.Errorf("acknowledged %d, want %d", n, len(subjects))
	}
	w.close()
	for _, cons := range must(c.ListFeedConsumers(watchCtx, &consentv1.ListFeedConsumersRequest{})).ok(t).GetConsumers() {
		if cons.GetName() == "cluster-mailer" && cons.GetUnacknowledged() != 0 {
			t.Errorf("after acknowledging everything: %v", cons)
		}
	}

	// Linking a visitor to a user: two subjects, usually in two slots.
	visitor := createVisitor(t, srv)
	visitorCtx := as(ctx(t), visitor.GetToken().GetToken())
	must(c.UpdateConsent(visitorCtx, &consentv1.UpdateConsentRequest{SubjectId: visitor.GetSubjectId(),
		Decisions: map[string]bool{"analytics": false, "ads": true}, Source: consentv1.Source_SOURCE_BANNER})).ok(t)
	linked := must(c.LinkSubjects(as(ctx(t), apiKeys["write"]), &consentv1.LinkSubjectsRequest{SubjectId: subjects[0], VisitorId: visitor.GetSubjectId()})).ok(t).GetConsent()
	if purposeOf(t, linked, "analytics").GetDecision().GetGranted() || !purposeOf(t, linked, "ads").GetDecision().GetGranted() {
		t.Errorf("after the link: %v", linked)
	}
	followed := must(c.GetConsent(visitorCtx, &consentv1.GetConsentRequest{SubjectId: visitor.GetSubjectId()})).ok(t).GetConsent()
	if !followed.GetLinked() || followed.GetRevision() != linked.GetRevision() {
		t.Errorf("the visitor reads %v, want the user's record", followed)
	}

	// History, rights.
	rights := as(ctx(t), apiKeys["rights"])
	must(c.WithdrawConsent(ctx(t), &consentv1.WithdrawConsentRequest{SubjectId: subjects[1]})).ok(t)
	events := must(c.ListConsentEvents(as(ctx(t), tokenFor(t, subjects[1], time.Now(), time.Hour)),
		&consentv1.ListConsentEventsRequest{SubjectId: subjects[1]})).ok(t).GetEvents()
	if len(events) != 2 || events[0].GetType() != consentv1.EventType_EVENT_TYPE_WITHDRAW || events[0].GetPrevHash() != events[1].GetHash() {
		t.Errorf("history of %s: %v", subjects[1], events)
	}
	export := must(c.ExportSubject(rights, &consentv1.ExportSubjectRequest{SubjectId: subjects[1], Reason: "ticket 1"})).ok(t)
	if !export.GetChain().GetValid() || len(export.GetEvents()) != 3 {
		t.Errorf("export: chain %v, %d events", export.GetChain(), len(export.GetEvents()))
	}
	must(c.RestrictProcessing(rights, &consentv1.RestrictProcessingRequest{SubjectId: subjects[2], Reason: "ticket 2"})).ok(t)
	if check := must(c.CheckConsent(ctx(t), &consentv1.CheckConsentRequest{SubjectId: subjects[2], Purpose: "analytics"})).ok(t); check.GetAllowed() || check.GetReason() != consentv1.Reason_REASON_RESTRICTED {
		t.Errorf("check of a restricted subject: %v", check)
	}
	if erased := must(c.EraseSubject(rights, &consentv1.EraseSubjectRequest{SubjectId: subjects[3], Reason: "ticket 3"})).ok(t); !erased.GetErased() {
		t.Errorf("erase: %v", erased)
	}
	if after := must(c.GetConsent(ctx(t), &consentv1.GetConsentRequest{SubjectId: subjects[3]})).ok(t).GetConsent(); after.GetRevision() != 0 {
		t.Errorf("after erasure: %v", after)
	}

	// Readiness pings every master.
	if code, body, _ := srv.rest(t, "GET", "/readyz", ""); code != http.StatusOK {
		t.Errorf("/readyz = %d %v", code, body)
	}

	// Rate limits: two instances share their counters through the cluster.
	limited := func(c *config.Config) { c.RateLimitKey, _ = ratelimit.ParseLimit("4/m") }
	a, b := startOnCluster(t, cluster, limited), startOnCluster(t, cluster, limited)
	checkAs := as(ctx(t), apiKeys["check"])
	req := &consentv1.CheckConsentRequest{SubjectId: subjects[0], Purpose: "ads"}
	for _, instance := range []*consentd{a, b, a, b} {
		must(instance.grpc.CheckConsent(checkAs, req)).ok(t)
	}
	if _, err := b.grpc.CheckConsent(checkAs, req); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("the fifth call of the minute over two instances: %v, want ResourceExhausted", err)
	}
}

// A write whose reply does not come within --redis-timeout may still be
// applied by Redis later; the cluster client must not send it again. (With
// go-redis' default, MaxRedirects 3, it does, on other pooled connections:
// this test then sees the one write applied four times.) It fails once,
// Unavailable, and applies once.
func TestClusterAWriteWhoseReplyTimesOutIsNotSentAgain(t *testing.T) {
	cluster := redistest.StartCluster(t)
	srv := startOnCluster(t, cluster, func(c *config.Config) { c.RedisTimeout = 200 * time.Millisecond })
	const subject = "slow-subject"
	write := &consentv1.UpdateConsentRequest{SubjectId: subject, Decisions: map[string]bool{"ads": true}}
	must(srv.grpc.UpdateConsent(ctx(t), write)).ok(t) // also loads the script on the node

	node := cluster.MasterFor(hashTagOf(subject))
	named := func(name string, timeout time.Duration) *goredis.Client {
		c := goredis.NewClient(&goredis.Options{Addr: node.Addr(), ClientName: name, ReadTimeout: timeout, MaxRetries: -1})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	stall, probe := named("test-stall", 10*time.Second), named("test-probe", 50*time.Millisecond)
	// A resent command would go out on another idle connection of the
	// node's pool: have a few, as a busy consentd has. (GetConsent: checks
	// share auto-pipelined connections, reads of a whole record do not.)
	own := as(ctx(t), tokenFor(t, subject, time.Now(), time.Hour))
	eventually.True(t, "consentd to hold several connections to the node", func() bool {
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				_, _ = srv.grpc.GetConsent(own, &consentv1.GetConsentRequest{SubjectId: subject})
			})
		}
		wg.Wait()
		n := 0
		for line := range strings.Lines(stall.ClientList(ctx(t)).Val()) {
			if strings.Contains(line, " name= ") && strings.Contains(line, " flags=N ") {
				n++ // unnamed: consentd's (the set-up's and this test's are named)
			}
		}
		return n >= 4
	})
	stalled := make(chan error, 1)
	go func() { stalled <- stall.Do(context.Background(), "debug", "sleep", "1.5").Err() }()
	eventually.True(t, "the node to stall", func() bool {
		return probe.Ping(context.Background()).Err() != nil
	})

	write.Decisions = map[string]bool{"ads": false}
	if _, err := srv.grpc.UpdateConsent(ctx(t), write); status.Code(err) != codes.Unavailable {
		t.Fatalf("a write to a stalled master: %v, want Unavailable", err)
	}
	if err := <-stalled; err != nil {
		t.Fatalf("DEBUG SLEEP: %v", err)
	}
	// Redis ran what it had received once it woke up, at most once. A write
	// is a read script, then the write script: the stall mostly catches the
	// read, and the write is never sent (revision 1); if it catches the
	// write, Redis applies it on waking (revision 2). Never more.
	got := must(srv.grpc.GetConsent(own, &consentv1.GetConsentRequest{SubjectId: subject})).ok(t).GetConsent()
	events := must(srv.grpc.ListConsentEvents(own, &consentv1.ListConsentEventsRequest{SubjectId: subject})).ok(t).GetEvents()
	if rev := got.GetRevision(); rev < 1 || rev > 2 || len(events) != int(rev) {
		t.Fatalf("after one write that timed out: revision %d, %d events; want 1 or 2, one event each (applied at most once, never re-sent)", rev, len(events))
	}
}

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

// Each write sets every non-necessary purpose of a subject to one bit of the
// subject's write counter, so the state, and each history event, says which
// write it holds.
var counterPurposes = []string{"functional", "analytics", "ads", "marketing.email", "marketing.sms", "marketing.phone", "marketing.push", "marketing.in_app"}

const maxCounter = 1<<8 - 1 // what counterPurposes can hold

func decisionsFor(counter int) map[string]bool {
	out := map[string]bool{}
	for i, p := range counterPurposes {
		out[p] = counter>>i&1 == 1
	}
	return out
}

func counterOf(decisions map[string]bool) int {
	n := 0
	for i, p := range counterPurposes {
		if decisions[p] {
			n |= 1 << i
		}
	}
	return n
}

// failoverClient is what the traffic's clients did and saw. Each subject has
// one writer, which writes counters 1, 2, 3... with an idempotency key per
// counter, retries a failed write with the same key the next time it comes
// to the subject, and checks each acknowledged write with min_revision.
type failoverClient struct {
	mu       sync.Mutex
	subjects map[string]*subjectLog
	affected map[string]bool
	killedAt time.Time      // zero before the kill
	failures map[string]int // "write Unavailable (killed master's subjects)"
	// Calls that failed after the kill, first and last; and per subject the
	// first success after the kill.
	firstFailure, lastFailure time.Time
	inconsistentChecks        []string
	staleChecks               []string // subjects whose check said the store is behind an acknowledged revision
}

type subjectLog struct {
	counter    int    // of the last write issued
	pending    bool   // the write of counter failed and is retried
	pendingKey string // its idempotency key
	acks       []ackedWrite
	recovered  time.Time // first success after the kill
}

type ackedWrite struct {
	counter  int
	revision int64
	at       time.Time
}

func (fc *failoverClient) fail(subject, call string, err error, at time.Time) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	where := "other masters' subjects"
	if fc.affected[subject] {
		where = "killed master's subjects"
	}
	fc.failures[fmt.Sprintf("%s %s (%s)", call, status.Code(err), where)]++
	if !fc.killedAt.IsZero() {
		if fc.firstFailure.IsZero() {
			fc.firstFailure = at
		}
		fc.lastFailure = at
	}
}

// step writes the subject's next counter (or retries the pending one) and
// checks it. It returns false when the subject's counter is exhausted.
func (fc *failoverClient) step(srv *consentd, subject string) bool {
	fc.mu.Lock()
	log := fc.subjects[subject]
	if !log.pending {
		if log.counter == maxCounter {
			fc.mu.Unlock()
			return false
		}
		log.counter++
		log.pending, log.pendingKey = true, fmt.Sprintf("%s-w%d", subject, log.counter)
	}
	counter, key := log.counter, log.pendingKey
	fc.mu.Unlock()

	callCtx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := srv.grpc.UpdateConsent(callCtx, &consentv1.UpdateConsentRequest{SubjectId: subject, Region: "DE",
		Decisions: decisionsFor(counter), IdempotencyKey: key})
	now := time.Now()
	if err != nil {
		fc.fail(subject, "write", err, now)
		return true
	}
	revision := resp.GetConsent().GetRevision()
	fc.mu.Lock()
	log.pending = false
	log.acks = append(log.acks, ackedWrite{counter, revision, now})
	if !fc.killedAt.IsZero() && log.recovered.IsZero() {
		log.recovered = now
	}
	fc.mu.Unlock()

	check, err := srv.grpc.CheckConsent(callCtx, &consentv1.CheckConsentRequest{SubjectId: subject, Purpose: "analytics",
		Region: "DE", MinRevision: revision})
	switch {
	case status.Code(err) == codes.FailedPrecondition:
		fc.mu.Lock()
		fc.staleChecks = append(fc.staleChecks, subject)
		fc.mu.Unlock()
		fc.fail(subject, "check", err, time.Now())
	case err != nil:
		fc.fail(subject, "check", err, time.Now())
	case check.GetRevision() == revision && check.GetAllowed() != decisionsFor(counter)["analytics"]:
		fc.mu.Lock()
		fc.inconsistentChecks = append(fc.inconsistentChecks, fmt.Sprintf("%s write %d: %v", subject, counter, check))
		fc.mu.Unlock()
	}
	return true
}

// subjectsWithAcksSince counts the subjects with at least n acknowledged writes after at.
func (fc *failoverClient) subjectsWithAcksSince(at time.Time, n int) int {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	count := 0
	for _, log := range fc.subjects {
		if acksSince(log.acks, at) >= n {
			count++
		}
	}
	return count
}

// acksSince counts the writes acknowledged after at.
func acksSince(acks []ackedWrite, at time.Time) int {
	k := 0
	for _, a := range acks {
		if a.at.After(at) {
			k++
		}
	}
	return k
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

	// Readiness as a load balancer would probe it.
	type probe struct {
		at    time.Time
		ready bool
	}
	var readyMu sync.Mutex
	var probes []probe
	probeCtx, stopProbe := context.WithCancel(context.Background())
	probeDone := make(chan struct{})
	go func() {
		defer close(probeDone)
		for probeCtx.Err() == nil {
			req, _ := http.NewRequestWithContext(probeCtx, "GET", srv.baseURL+"/readyz", nil)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
				readyMu.Lock()
				probes = append(probes, probe{time.Now(), resp.StatusCode == http.StatusOK})
				readyMu.Unlock()
			}
			time.Sleep(50 * time.Millisecond) // the probe's period
		}
	}()

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
			// Until told to stop, then until no write of its own is pending.
			pace := time.NewTicker(5 * time.Millisecond)
			defer pace.Stop()
			stopping := false
			for {
				select {
				case <-abort:
					return
				case <-stop:
					stopping = true
				default:
				}
				pending := false
				for _, s := range own {
					fc.mu.Lock()
					isPending := fc.subjects[s].pending
					fc.mu.Unlock()
					if stopping && !isPending {
						continue
					}
					if !fc.step(srv, s) {
						t.Errorf("%s: more than %d writes; make the run shorter", s, maxCounter)
						return
					}
					fc.mu.Lock()
					pending = pending || fc.subjects[s].pending
					fc.mu.Unlock()
					<-pace.C
				}
				if stopping && !pending {
					return
				}
			}
		}()
	}
	stopTraffic := sync.OnceFunc(func() { close(stop); wg.Wait(); stopProbe(); <-probeDone })
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

	// What the clients were told, against what Redis holds now.
	var lost []string
	lostSubjects := map[string]bool{}
	acked := 0
	for _, s := range subjects {
		log := fc.subjects[s]
		own := as(ctx(t), tokenFor(t, s, time.Now(), time.Hour))
		consent := must(srv.grpc.GetConsent(own, &consentv1.GetConsentRequest{SubjectId: s})).ok(t).GetConsent()
		events := allEvents(t, srv, own, s)
		if int64(len(events)) != consent.GetRevision() {
			t.Errorf("%s: revision %d with %d events", s, consent.GetRevision(), len(events))
		}
		// Each event is one write, in order, once; the chain holds.
		state := map[string]bool{}
		byRevision := map[int64]int{}
		last := 0
		for i, e := range events {
			if e.GetRevision() != int64(i+1) || (i > 0 && e.GetPrevHash() != events[i-1].GetHash()) {
				t.Errorf("%s: event %d has revision %d, prev %q after %q", s, i, e.GetRevision(), e.GetPrevHash(), events[max(i-1, 0)].GetHash())
			}
			for _, ch := range e.GetChanges() {
				state[ch.GetPurpose()] = ch.GetNewGranted()
			}
			counter := counterOf(state)
			if counter <= last {
				t.Errorf("%s: write %d applied at revision %d after write %d: applied twice, or out of order", s, counter, e.GetRevision(), last)
			}
			last, byRevision[e.GetRevision()] = counter, counter
		}
		current := map[string]bool{}
		for _, p := range consent.GetPurposes() {
			if p.GetDecision() != nil {
				current[p.GetPurpose()] = p.GetDecision().GetGranted()
			}
		}
		if !maps.Equal(current, state) {
			t.Errorf("%s: the state %v is not what its history adds up to %v", s, current, state)
		}
		// Every acknowledged write is in the history at the revision it was
		// acknowledged with, unless Redis lost it: acknowledged by the
		// killed master, not yet copied to its replica.
		acked += len(log.acks)
		for _, a := range log.acks {
			if byRevision[a.revision] == a.counter {
				continue
			}
			lostSubjects[s] = true
			lost = append(lost, fmt.Sprintf("%s write %d (revision %d, acknowledged %+dms from the kill)", s, a.counter, a.revision, a.at.Sub(killedAt).Milliseconds()))
			if !affected[s] || a.at.After(promotedAt) {
				t.Errorf("%s: write %d acknowledged at revision %d is gone, though the master that acknowledged it did not die", s, a.counter, a.revision)
			}
		}
	}
	for k := range fc.failures {
		if !strings.Contains(k, " Unavailable ") && !strings.HasPrefix(k, "check FailedPrecondition ") {
			t.Errorf("clients saw %q: only Unavailable (retry later) is expected while a master fails over", k)
		}
	}
	for _, s := range fc.staleChecks {
		if !lostSubjects[s] {
			t.Errorf("%s: a check said the store is behind a revision acknowledged to its writer, yet no write of it was lost", s)
		}
	}
	if len(fc.inconsistentChecks) > 0 {
		t.Errorf("checks right after an acknowledged write answered from another state: %v", fc.inconsistentChecks)
	}

	// What a client saw.
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

// allEvents is the subject's whole history, oldest first, read as the
// subject (an operator's read would add an access event).
func allEvents(t *testing.T, srv *consentd, own context.Context, subject string) []*consentv1.ConsentEvent {
	t.Helper()
	var out []*consentv1.ConsentEvent
	token := ""
	for {
		page := must(srv.grpc.ListConsentEvents(own, &consentv1.ListConsentEventsRequest{SubjectId: subject, PageSize: 500, PageToken: token})).ok(t)
		out = append(out, page.GetEvents()...)
		if token = page.GetNextPageToken(); token == "" {
			break
		}
	}
	slices.Reverse(out) // newest first on the wire
	return out
}
