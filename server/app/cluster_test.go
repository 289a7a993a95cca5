package app

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
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
