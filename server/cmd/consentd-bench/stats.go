package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/store"
)

// The consent statistics' memory: a partition's hash of one day with every
// field touched, at the size the issue asks about (64 partitions, 10
// purposes, 30 regions), measured with MEMORY USAGE.

type statsMemoryFigure struct {
	Partitions           int     `json:"partitions"`
	Purposes             int     `json:"purposes"`
	Regions              int     `json:"regions"`
	FieldsPerPartition   int     `json:"fields_per_partition_day"`
	Encoding             string  `json:"encoding"`
	BytesPerPartitionDay float64 `json:"bytes_per_partition_day"`
	BytesPerDay          float64 `json:"bytes_per_day"`
	RetentionDays        int     `json:"retention_days"`
	BytesForRetention    float64 `json:"bytes_for_retention"`
	// LayoutChecked: a real UpdateConsent through consentd wrote the fields
	// the fill names, in a key named as the fill's.
	LayoutChecked bool `json:"layout_checked"`
}

// statsPurposes are ten purpose ids: the shipped policy's non-necessary ones
// and two more of typical length.
var statsPurposes = []string{"functional", "analytics", "ads", "marketing.email", "marketing.sms", "marketing.phone",
	"marketing.push", "marketing.in_app", "personalisation", "measurement.audience"}

// statsRegions are thirty region labels: codes as the policy lists them and
// the default region's id.
var statsRegions = []string{"AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE",
	"IT", "LT", "LU", "NL", "PL", "PT", "RO", "SE", "GB", "CH", "US", "US-CA", "US-CO", "US-TX", "rest_of_world"}

const (
	statsPartitions    = store.DefaultPartitions
	statsRetentionDays = int(store.DefaultStatsRetention / (24 * 60 * 60 * 1e9))
	statsFillDay       = "20000101" // a day no write of the run counts into
)

func (b *bench) statsMemory(ctx context.Context) error {
	// One write through consentd, to find the key and fields it counts
	// into: the fill below must be the same layout. A banner write granting
	// all it decides counts as accept all.
	if _, err := b.consentdGRPC.client(0).UpdateConsent(ctx, &consentv1.UpdateConsentRequest{SubjectId: "stats-layout-check",
		Decisions: map[string]bool{"analytics": true}, Region: "DE", Source: consentv1.Source_SOURCE_BANNER}); err != nil {
		return fmt.Errorf("UpdateConsent: %w", err)
	}
	keys, err := b.scan(ctx, "*}:stats:*")
	if err != nil {
		return err
	}
	want := []string{store.DecisionField("analytics", "DE", store.OutcomeGranted), store.MethodField("DE", store.MethodBannerAcceptAll)}
	fig := statsMemoryFigure{Partitions: statsPartitions, Purposes: len(statsPurposes), Regions: len(statsRegions), RetentionDays: statsRetentionDays}
	prefix := ""
	for _, k := range keys {
		fields, err := b.redis.client.HKeys(ctx, k).Result()
		if err != nil {
			return err
		}
		if slices.Contains(fields, want[0]) && slices.Contains(fields, want[1]) {
			fig.LayoutChecked = true
			prefix = k[:strings.Index(k, ":{p")]
		}
	}
	if !fig.LayoutChecked {
		return fmt.Errorf("the write's statistics (keys %q) hold no fields %q: the bench's layout is not consentd's", keys, want)
	}

	var fields []string
	for _, p := range statsPurposes {
		for _, r := range statsRegions {
			for _, o := range store.Outcomes() {
				fields = append(fields, store.DecisionField(p, r, o))
			}
		}
	}
	for _, r := range statsRegions {
		for _, m := range store.Methods() {
			fields = append(fields, store.MethodField(r, m))
		}
		for _, s := range store.BannerSteps() {
			fields = append(fields, store.BannerField(r, s))
		}
	}
	fig.FieldsPerPartition = len(fields)
	names := make([]string, statsPartitions)
	for p := range names {
		names[p] = prefix + ":{p" + strconv.Itoa(p) + "}:stats:" + statsFillDay
	}
	defer b.redis.client.Del(context.WithoutCancel(ctx), names...)
	// As the write path does: HINCRBY (counts of a busy day, several
	// digits) and PEXPIRE NX with the retention.
	for p, key := range names {
		if _, err := b.redis.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
			for i, f := range fields {
				pipe.HIncrBy(ctx, key, f, int64(1+(p*7919+i*104729)%50000))
			}
			pipe.Do(ctx, "PEXPIRE", key, store.DefaultStatsRetention.Milliseconds(), "NX")
			return nil
		}); err != nil {
			return fmt.Errorf("filling %s: %w", key, err)
		}
	}
	var total int64
	for _, key := range names {
		n, err := b.redis.client.MemoryUsage(ctx, key, 0).Result()
		if err != nil {
			return fmt.Errorf("MEMORY USAGE %s: %w", key, err)
		}
		total += n
	}
	fig.Encoding = b.redis.client.ObjectEncoding(ctx, names[0]).Val()
	fig.BytesPerPartitionDay = round(float64(total)/statsPartitions, 0)
	fig.BytesPerDay = float64(total)
	fig.BytesForRetention = float64(total) * float64(statsRetentionDays)
	b.rep.StatsMemory = &fig
	say("  statistics: %d fields per partition-day (%s), %.0f B per partition-day, %.2f MiB per day, %.2f GiB for %d days",
		fig.FieldsPerPartition, fig.Encoding, fig.BytesPerPartitionDay, fig.BytesPerDay/(1<<20), fig.BytesForRetention/(1<<30), statsRetentionDays)
	return nil
}

func (r *report) statsMemoryMarkdown(b *strings.Builder) {
	m := r.StatsMemory
	if m == nil {
		return
	}
	b.WriteString("\n## Consent statistics memory\n\n")
	fmt.Fprintf(b, "`MEMORY USAGE` (all samples) of the per-partition, per-day statistics hashes (`<prefix>:{p<n>}:stats:<YYYYMMDD>`) "+
		"with every field touched: %d partitions × (%d purposes × %d regions × 3 outcomes + %d regions × 7 methods + %d regions × 5 banner steps) "+
		"= %d fields per partition-day, filled with HINCRBY as the write script does (layout checked against a real write: %v).\n\n",
		m.Partitions, m.Purposes, m.Regions, m.Regions, m.Regions, m.FieldsPerPartition, m.LayoutChecked)
	fmt.Fprintf(b, "| what | bytes |\n|---|---|\n| per partition-day (%s) | %.0f |\n| per day (%d partitions) | %.0f (%.2f MiB) |\n| × %d days retention | %.0f (%.2f GiB) |\n",
		m.Encoding, m.BytesPerPartitionDay, m.Partitions, m.BytesPerDay, m.BytesPerDay/(1<<20), m.RetentionDays, m.BytesForRetention, m.BytesForRetention/(1<<30))
}
