package store_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/domain"
	"github.com/consentd/consentd/server/internal/redistest"
	"github.com/consentd/consentd/server/store"
	"github.com/consentd/consentd/server/store/storetest"
)

// BenchmarkWriteScript measures a write's scripts in Redis over writes like
// `make bench`'s UpdateConsent load: two purposes, a region, from a backend
// over gRPC, spread over many subjects so that each has a short history.
// Besides the time per write seen by the client it reports Redis' own time
// per script call (INFO commandstats, usec_per_call of evalsha; a write is
// two calls), and "reference" runs `make bench`'s reference EVAL for scale:
//
//	go test -run '^$' -bench BenchmarkWriteScript -benchtime 5000x ./server/store/
//
// Times in Redis vary by a third from run to run on a shared 2-core machine,
// even for the reference: compare several alternating runs of the versions
// being compared.
//
// "write counted" is the same writes counted in the day's statistics, as
// UpdateConsent counts them (two decisions and a method: three HINCRBYs and
// a PEXPIRE NX in the same script).
func BenchmarkWriteScript(b *testing.B) {
	client := redistest.Start(b).Client(b)
	for _, counted := range []bool{false, true} {
		name := "write"
		if counted {
			name = "write counted"
		}
		b.Run(name, func(b *testing.B) { benchmarkWrite(b, client, counted) })
	}
	b.Run("reference", func(b *testing.B) {
		// consentd-bench's evalScript: HSET, RPUSH, XADD.
		const reference = `redis.call('HSET', KEYS[1], '_rev', '1', 'analytics', ARGV[1], 'ads', ARGV[1]) ` +
			`redis.call('RPUSH', KEYS[2], ARGV[2]) ` +
			`redis.call('XADD', KEYS[3], 'MAXLEN', '~', '100000', '*', 'ev', ARGV[2]) return 1`
		sha := client.ScriptLoad(b.Context(), reference).Val()
		payload := strings.Repeat("e", 200)
		resetStats(b, client)
		i := 0
		for b.Loop() {
			k := strconv.Itoa(i % 500)
			err := client.EvalSha(b.Context(), sha, []string{"{bench}:s:" + k, "{bench}:h:" + k, "{bench}:feed"}, "g1750000000|1784000000|p|2", payload).Err()
			if err != nil {
				b.Fatal(err)
			}
			i++
		}
		reportScriptTime(b, client)
	})
}

func benchmarkWrite(b *testing.B, client *redis.Client, counted bool) {
	s, _ := storetest.NewStore(b, client)
	const subjects = 500
	now := time.Unix(1_750_000_000, 0)
	write := func(i int) store.Write {
		decisions := map[string]domain.Decision{}
		for _, p := range []string{"analytics", "ads"} {
			decisions[p] = domain.Decision{Granted: (i/subjects+len(p))%2 == 0, DecidedAt: now, ExpiresAt: now.AddDate(1, 1, 0),
				Source: domain.SourcePreferenceCenter, PolicyVersion: 2, Region: "DE"}
		}
		w := store.Write{SubjectID: fmt.Sprintf("bench-writer-%04d", i%subjects), Decisions: decisions, Region: "DE",
			FollowLink: true, Now: now.Add(time.Duration(i) * time.Millisecond),
			Event: store.EventInfo{Type: domain.EventUpdate, Actor: "key:bench", Source: domain.SourcePreferenceCenter,
				PolicyVersion: "2025-06-01", Channel: "grpc"}}
		if counted {
			w.Stats = &store.WriteStats{Method: store.MethodPreferenceCenter}
		}
		return w
	}
	// Warm up: every subject written once (the scripts cached, histories
	// started), then only the measured writes count.
	for i := range subjects {
		if _, err := s.Write(b.Context(), write(i)); err != nil {
			b.Fatal(err)
		}
	}
	resetStats(b, client)
	i := subjects
	for b.Loop() {
		if _, err := s.Write(b.Context(), write(i)); err != nil {
			b.Fatal(err)
		}
		i++
	}
	reportScriptTime(b, client)
}

func resetStats(b *testing.B, client *redis.Client) {
	b.Helper()
	if err := client.ConfigResetStat(b.Context()).Err(); err != nil {
		b.Fatal(err)
	}
}

// reportScriptTime reports Redis' usec_per_call of EVALSHA since the last
// resetStats as redis-µs/call.
func reportScriptTime(b *testing.B, client *redis.Client) {
	b.Helper()
	for line := range strings.SplitSeq(client.Info(b.Context(), "commandstats").Val(), "\n") {
		stats, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_evalsha:")
		if !ok {
			continue
		}
		for field := range strings.SplitSeq(stats, ",") {
			if v, ok := strings.CutPrefix(field, "usec_per_call="); ok {
				if us, err := strconv.ParseFloat(v, 64); err == nil {
					b.ReportMetric(us, "redis-µs/call")
				}
			}
		}
	}
}
