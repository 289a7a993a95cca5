package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Consent statistics: aggregate counts per UTC day, kept by the write path.
//
// Each partition has one hash per UTC day, <prefix>:{p<n>}:stats:<YYYYMMDD>
// (see statsKey), in the partition's slot: a write counts into its
// subject's partition's hash in the same script that applies it (write.lua),
// so a write that is not applied (a replay, a stale or conflicting write)
// counts nothing, and a count never lands without its write. A banner event,
// which has no subject, counts into a partition chosen at random. The hash
// expires Options.StatsRetention after its first count (PEXPIRE NX).
//
// Its fields hold no subject id nor anything else about a person; "|"
// separates their parts (it never appears in purpose ids, region codes or
// region ids):
//
//	d|<purpose>|<region>|<g, d or w>   decisions granted, denied, withdrawn
//	m|<region>|<method letter>         writes per method (methodLetters)
//	b|<region>|<step letter>           banner events per step (stepLetters)
//
// <region> is the label the caller resolved through the policy
// (domain.Policy.StatsRegion), so the fields are bounded by the policy.

// Method is how a write's decisions were made, as the statistics count it.
type Method string

// The methods.
const (
	MethodBannerAcceptAll  Method = "banner_accept_all"
	MethodBannerRejectAll  Method = "banner_reject_all"
	MethodBannerOther      Method = "banner_other"
	MethodPreferenceCenter Method = "preference_center"
	MethodAPI              Method = "api"
	MethodGPC              Method = "gpc"
	MethodImport           Method = "import"
)

// BannerStep is a step of the cookie banner's funnel.
type BannerStep string

// The banner steps.
const (
	StepShown      BannerStep = "shown"
	StepAcceptAll  BannerStep = "accept_all"
	StepRejectAll  BannerStep = "reject_all"
	StepCustomised BannerStep = "customised"
	StepClosed     BannerStep = "closed"
)

// Outcome is how one decision of a write counts.
type Outcome string

// The outcomes: every decision of a counted write is exactly one of them.
const (
	OutcomeGranted   Outcome = "granted"
	OutcomeDenied    Outcome = "denied"    // denied, not granted before
	OutcomeWithdrawn Outcome = "withdrawn" // denied, granted before this write
)

var (
	methodLetters = map[Method]string{
		MethodBannerAcceptAll: "A", MethodBannerRejectAll: "R", MethodBannerOther: "O",
		MethodPreferenceCenter: "P", MethodAPI: "I", MethodGPC: "G", MethodImport: "M",
	}
	stepLetters = map[BannerStep]string{
		StepShown: "s", StepAcceptAll: "a", StepRejectAll: "r", StepCustomised: "c", StepClosed: "x",
	}
	outcomeLetters = map[Outcome]string{OutcomeGranted: "g", OutcomeDenied: "d", OutcomeWithdrawn: "w"}

	lettersToMethod  = invert(methodLetters)
	lettersToStep    = invert(stepLetters)
	lettersToOutcome = invert(outcomeLetters)
)

func invert[K comparable](m map[K]string) map[string]K {
	out := make(map[string]K, len(m))
	for k, v := range m {
		out[v] = k
	}
	return out
}

// DefaultStatsRetention is how long a day's counts are kept: 400 days, the
// longest range GetConsentStats answers.
const DefaultStatsRetention = 400 * 24 * time.Hour

// MaxStatsDays is the longest range Stats reads.
const MaxStatsDays = 400

// WriteStats says how a write counts in the day's statistics. Only people's
// decisions count (updates and withdrawals); a Write without it counts
// nothing.
type WriteStats struct {
	Method Method
	// Region turns the region code that applied to the subject (the
	// write's, else the stored one; "" when neither) into the region label
	// counted (domain.Policy.StatsRegion). nil: the code itself.
	Region func(code string) string
}

// Counted is what an applied write counted, for the metrics; nil when it
// counted nothing.
type Counted struct {
	Region    string
	Method    Method
	Decisions []CountedDecision // in the order of the purposes
}

// CountedDecision is one decision of a counted write.
type CountedDecision struct {
	Purpose string
	Outcome Outcome
}

// statsDay is the UTC day of t as the key names it: YYYYMMDD.
func statsDay(t time.Time) string { return t.UTC().Format("20060102") }

// statsKey is a partition's hash of one day's counts.
func (s *Store) statsKey(partition int, day string) string {
	return s.partitionBase(partition) + ":stats:" + day
}

// countWrite computes what an applied write counts: the fields to raise by
// one, and the same as Counted. None when the write has no decisions (a GPC
// signal alone) or no WriteStats.
func countWrite(w Write, plan writePlan, read readForWrite) (fields []any, c *Counted) {
	if w.Stats == nil || len(plan.purposes) == 0 {
		return nil, nil
	}
	code := w.Region
	if code == "" {
		code = read.state[fieldRegion]
	}
	region := code
	if w.Stats.Region != nil {
		region = w.Stats.Region(code)
	}
	region = strings.ReplaceAll(region, "|", "_") // the field separator; policy labels never hold one
	c = &Counted{Region: region, Method: w.Stats.Method, Decisions: make([]CountedDecision, len(plan.purposes))}
	fields = make([]any, 0, len(plan.purposes)+1)
	for i, p := range plan.purposes {
		o := OutcomeDenied
		switch {
		case w.Decisions[p].Granted:
			o = OutcomeGranted
		case strings.HasPrefix(read.state[p], "g"):
			o = OutcomeWithdrawn
		}
		c.Decisions[i] = CountedDecision{Purpose: p, Outcome: o}
		fields = append(fields, DecisionField(p, region, o))
	}
	if _, ok := methodLetters[w.Stats.Method]; ok {
		fields = append(fields, MethodField(region, w.Stats.Method))
	}
	return fields, c
}

// DecisionField, MethodField and BannerField name the fields of a day's
// statistics hash (the layout above); exported for `make bench`, which
// measures the memory of a day with every field touched.
func DecisionField(purpose, region string, o Outcome) string {
	return "d|" + purpose + "|" + region + "|" + outcomeLetters[o]
}

// MethodField: see DecisionField.
func MethodField(region string, m Method) string { return "m|" + region + "|" + methodLetters[m] }

// BannerField: see DecisionField.
func BannerField(region string, step BannerStep) string {
	return "b|" + region + "|" + stepLetters[step]
}

// Methods, BannerSteps and Outcomes list every value, in the API's order.
func Methods() []Method         { return slices.Clone(methodOrder) }
func BannerSteps() []BannerStep { return slices.Clone(stepOrder) }
func Outcomes() []Outcome       { return []Outcome{OutcomeGranted, OutcomeDenied, OutcomeWithdrawn} }

// RecordBannerEvent counts one banner event at now in region (a label the
// caller resolved, see WriteStats.Region), in a partition chosen at random:
// nothing about the visitor is known or stored.
func (s *Store) RecordBannerEvent(ctx context.Context, region string, step BannerStep, now time.Time) error {
	if _, ok := stepLetters[step]; !ok {
		return fmt.Errorf("store: unknown banner step %q", step)
	}
	if strings.Contains(region, "|") {
		return fmt.Errorf("store: region label %q holds a |", region)
	}
	key := s.statsKey(rand.IntN(s.opts.Partitions), statsDay(now))
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HIncrBy(ctx, key, BannerField(region, step), 1)
		p.Do(ctx, "PEXPIRE", key, s.opts.StatsRetention.Milliseconds(), "NX")
		return nil
	})
	return wrapErr("banner event", err)
}

// DayStats is one UTC day's counts, over every partition.
type DayStats struct {
	Day       time.Time // midnight UTC
	Decisions []DecisionCounts
	Methods   []MethodCount
	Banner    []BannerStepCount
}

// DecisionCounts counts the decisions on one purpose in one region.
type DecisionCounts struct {
	Purpose, Region            string
	Granted, Denied, Withdrawn int64
}

// MethodCount counts the writes made one way in one region.
type MethodCount struct {
	Region string
	Method Method
	Count  int64
}

// BannerStepCount counts one banner step in one region.
type BannerStepCount struct {
	Region string
	Step   BannerStep
	Count  int64
}

// Stats reads the counts of every day from first to last (inclusive, UTC
// days; at most MaxStatsDays), oldest first, days without counts included.
// It reads every partition's hash of every day in one pipeline: one round
// trip (on a cluster, one per node, sent together).
func (s *Store) Stats(ctx context.Context, first, last time.Time) ([]DayStats, error) {
	first, last = midnight(first), midnight(last)
	if last.Before(first) {
		return nil, errors.New("store: stats: the last day is before the first")
	}
	days := int(last.Sub(first)/(24*time.Hour)) + 1
	if days > MaxStatsDays {
		return nil, fmt.Errorf("store: stats: %d days, at most %d", days, MaxStatsDays)
	}
	parts := s.opts.Partitions
	cmds := make([]*redis.MapStringStringCmd, 0, days*parts)
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for d := range days {
			day := statsDay(first.AddDate(0, 0, d))
			for partition := range parts {
				cmds = append(cmds, p.HGetAll(ctx, s.statsKey(partition, day)))
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrapErr("stats", err)
	}
	out := make([]DayStats, days)
	for d := range days {
		acc := newDayAccumulator()
		for _, cmd := range cmds[d*parts : (d+1)*parts] {
			for field, value := range cmd.Val() {
				acc.add(field, value)
			}
		}
		out[d] = acc.result(first.AddDate(0, 0, d))
	}
	return out, nil
}

func midnight(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

type dayAccumulator struct {
	decisions map[[2]string]*DecisionCounts
	methods   map[MethodCount]int64 // keyed with Count 0
	banner    map[BannerStepCount]int64
}

func newDayAccumulator() *dayAccumulator {
	return &dayAccumulator{decisions: map[[2]string]*DecisionCounts{}, methods: map[MethodCount]int64{}, banner: map[BannerStepCount]int64{}}
}

// add counts one field of a partition's hash. Fields it does not know (a
// later version's) are skipped.
func (a *dayAccumulator) add(field, value string) {
	n, err := strconv.ParseInt(value, 10, 64)
	if err != nil {
		return
	}
	parts := strings.Split(field, "|")
	switch {
	case parts[0] == "d" && len(parts) == 4:
		o, ok := lettersToOutcome[parts[3]]
		if !ok {
			return
		}
		k := [2]string{parts[1], parts[2]}
		c := a.decisions[k]
		if c == nil {
			c = &DecisionCounts{Purpose: parts[1], Region: parts[2]}
			a.decisions[k] = c
		}
		switch o {
		case OutcomeGranted:
			c.Granted += n
		case OutcomeDenied:
			c.Denied += n
		case OutcomeWithdrawn:
			c.Withdrawn += n
		}
	case parts[0] == "m" && len(parts) == 3:
		if m, ok := lettersToMethod[parts[2]]; ok {
			a.methods[MethodCount{Region: parts[1], Method: m}] += n
		}
	case parts[0] == "b" && len(parts) == 3:
		if step, ok := lettersToStep[parts[2]]; ok {
			a.banner[BannerStepCount{Region: parts[1], Step: step}] += n
		}
	}
}

// methodOrder and stepOrder sort methods and steps as the API's enums do.
var (
	methodOrder = []Method{MethodBannerAcceptAll, MethodBannerRejectAll, MethodBannerOther, MethodPreferenceCenter, MethodAPI, MethodGPC, MethodImport}
	stepOrder   = []BannerStep{StepShown, StepAcceptAll, StepRejectAll, StepCustomised, StepClosed}
)

// result is the day's counts, each list sorted: decisions by purpose then
// region, methods and steps by region then method or step (in the API's
// enum order).
func (a *dayAccumulator) result(day time.Time) DayStats {
	out := DayStats{Day: day}
	for _, c := range a.decisions {
		out.Decisions = append(out.Decisions, *c)
	}
	slices.SortFunc(out.Decisions, func(x, y DecisionCounts) int {
		return cmp.Or(cmp.Compare(x.Purpose, y.Purpose), cmp.Compare(x.Region, y.Region))
	})
	for k, n := range a.methods {
		k.Count = n
		out.Methods = append(out.Methods, k)
	}
	slices.SortFunc(out.Methods, func(x, y MethodCount) int {
		return cmp.Or(cmp.Compare(x.Region, y.Region), cmp.Compare(slices.Index(methodOrder, x.Method), slices.Index(methodOrder, y.Method)))
	})
	for k, n := range a.banner {
		k.Count = n
		out.Banner = append(out.Banner, k)
	}
	slices.SortFunc(out.Banner, func(x, y BannerStepCount) int {
		return cmp.Or(cmp.Compare(x.Region, y.Region), cmp.Compare(slices.Index(stepOrder, x.Step), slices.Index(stepOrder, y.Step)))
	})
	return out
}
