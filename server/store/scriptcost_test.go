package store_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/internal/redistest"
	"github.com/consentd/consentd/server/store"
	"github.com/consentd/consentd/server/store/storetest"
)

// TestWriteScriptCost measures the write script's own time in Redis (INFO
// commandstats, usec_per_call of evalsha) over writes like `make bench`'s
// UpdateConsent load: two purposes, a region, from a backend over gRPC,
// spread over many subjects so that each has a short history. It is a
// measurement for people, not a check, and takes a few seconds of CPU, so it
// runs only when asked:
//
//	CONSENTD_SCRIPT_COST=5000 go test -run TestWriteScriptCost -v ./server/store/
//
// Wall-clock times in Redis vary by a third from run to run on a shared
// 2-core machine, even for the reference EVAL it also runs: compare several
// alternating runs of the versions being compared.
func TestWriteScriptCost(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("CONSENTD_SCRIPT_COST"))
	if n <= 0 {
		t.Skip("set CONSENTD_SCRIPT_COST to the number of writes to measure")
	}
	client := redistest.Start(t).Client(t)
	s, _ := storetest.NewStore(t, client)
	const subjects = 500
	now := time.Unix(1_750_000_000, 0)
	write := func(i int) store.Write {
		decisions := map[string]domain.Decision{}
		for _, p := range []string{"analytics", "ads"} {
			decisions[p] = domain.Decision{Granted: (i/subjects+len(p))%2 == 0, DecidedAt: now, ExpiresAt: now.AddDate(1, 1, 0),
				Source: domain.SourcePreferenceCenter, PolicyVersion: 2, Region: "DE"}
		}
		return store.Write{SubjectID: fmt.Sprintf("bench-writer-%04d", i%subjects), Decisions: decisions, Region: "DE",
			FollowLink: true, Now: now.Add(time.Duration(i) * time.Millisecond),
			Event: store.EventInfo{Type: domain.EventUpdate, Actor: "key:bench", Source: domain.SourcePreferenceCenter,
				PolicyVersion: "2025-06-01", Channel: "grpc"}}
	}
	// Warm up: every subject written once (the script cached, histories
	// started), then only the measured writes count.
	for i := range subjects {
		if _, err := s.Write(t.Context(), write(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := client.ConfigResetStat(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range n {
		if _, err := s.Write(t.Context(), write(subjects+i)); err != nil {
			t.Fatal(err)
		}
	}
	took := time.Since(start)
	stats := client.Info(t.Context(), "commandstats").Val()
	for line := range strings.SplitSeq(stats, "\n") {
		if strings.HasPrefix(line, "cmdstat_") {
			t.Log(strings.TrimSpace(line))
		}
	}
	t.Logf("%d writes in %v: %.1f µs per write seen by the client", n, took, float64(took.Microseconds())/float64(n))

	// The same number of `make bench`'s reference EVAL (HSET, RPUSH, XADD;
	// consentd-bench's evalScript), for scale: the machine's speed varies.
	const reference = `redis.call('HSET', KEYS[1], '_rev', '1', 'analytics', ARGV[1], 'ads', ARGV[1]) ` +
		`redis.call('RPUSH', KEYS[2], ARGV[2]) ` +
		`redis.call('XADD', KEYS[3], 'MAXLEN', '~', '100000', '*', 'ev', ARGV[2]) return 1`
	sha := client.ScriptLoad(t.Context(), reference).Val()
	payload := strings.Repeat("e", 200)
	if err := client.ConfigResetStat(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		k := strconv.Itoa(i % subjects)
		err := client.EvalSha(t.Context(), sha, []string{"{bench}:s:" + k, "{bench}:h:" + k, "{bench}:feed"}, "g1750000000|1784000000|p|2", payload).Err()
		if err != nil {
			t.Fatal(err)
		}
	}
	for line := range strings.SplitSeq(client.Info(t.Context(), "commandstats").Val(), "\n") {
		if strings.HasPrefix(line, "cmdstat_evalsha") {
			t.Log("reference EVAL: " + strings.TrimSpace(line))
		}
	}
}
