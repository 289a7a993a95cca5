package app

import (
	"context"
	"errors"
	"net"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/consentd/consentd/server/store"
)

// redisErrorCounter counts failed Redis commands and pipelines by kind, as a
// go-redis hook, so the metric sees every command the store sends. A reply
// refusing a command for memory (OOM) is a "reply" and is also passed to
// oom (storageMonitor.refused). Commands whose context is uncounted
// (storage.go's probe) are not counted.
type redisErrorCounter struct {
	*prometheus.CounterVec
	oom func()
}

func newRedisErrorCounter(oom func()) redisErrorCounter {
	c := redisErrorCounter{CounterVec: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "consentd_redis_errors_total",
		Help: "Redis commands that failed, by kind: timeout, connection or reply.",
	}, []string{"kind"}), oom: oom}
	// Every kind is exported from the start, at 0, so rates and alerts work
	// before the first failure.
	for _, kind := range []string{"timeout", "connection", "reply"} {
		c.WithLabelValues(kind)
	}
	return c
}

func (c redisErrorCounter) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err != nil {
			c.WithLabelValues("connection").Inc()
		}
		return conn, err
	}
}

func (c redisErrorCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if !handshake(cmd) && !isUncounted(ctx) {
			c.count(err)
		}
		return err
	}
}

// ProcessPipelineHook counts a failed pipeline once, by its first error
// outside the connection handshake.
func (c redisErrorCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if err != nil && !isUncounted(ctx) {
			for _, cmd := range cmds {
				if cmd.Err() != nil && !handshake(cmd) {
					c.count(cmd.Err())
					break
				}
			}
		}
		return err
	}
}

// handshake reports a command go-redis sends when it opens a connection
// (CLIENT SETINFO, CLIENT MAINT_NOTIFICATIONS): Redis 7.0 does not know all
// of them, and their errors are expected and harmless.
func handshake(cmd redis.Cmder) bool { return cmd.Name() == "client" }

func (c redisErrorCounter) count(err error) {
	var netErr net.Error
	switch {
	// NOSCRIPT is a step of running a script, not a failure: EVALSHA tells
	// that Redis lacks the script (first use, after a restart) and EVAL
	// follows.
	case err == nil, errors.Is(err, redis.Nil), redis.HasErrorPrefix(err, "NOSCRIPT"):
	case errors.As(err, &netErr) && netErr.Timeout():
		c.WithLabelValues("timeout").Inc()
	case errors.As(err, &netErr):
		c.WithLabelValues("connection").Inc()
	default:
		c.WithLabelValues("reply").Inc()
		if redis.IsOOMError(err) {
			c.oom()
		}
	}
}

// statsCounters are the consent statistics' Prometheus counters, raised
// once a write or banner event has been counted in Redis (api.StatsObserver).
// Their region labels are the policy's (domain.Policy.StatsRegion) and their
// purposes the policy's, so the number of series is bounded by the policy.
type statsCounters struct {
	decisions, writes, banner *prometheus.CounterVec
}

func newStatsCounters() *statsCounters {
	return &statsCounters{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "consentd_consent_decisions_total",
			Help: "Decisions written, by purpose, policy region and outcome: granted, denied (not granted before) or withdrawn (granted before).",
		}, []string{"purpose", "region", "outcome"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "consentd_consent_writes_total",
			Help: "Writes of people's decisions (updates and withdrawals), by policy region and method: banner_accept_all, banner_reject_all, banner_other, preference_center, api, gpc or import.",
		}, []string{"region", "method"}),
		banner: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "consentd_banner_events_total",
			Help: "Banner events reported by browsers, by policy region and step: shown, accept_all, reject_all, customised or closed.",
		}, []string{"region", "step"}),
	}
}

func (c *statsCounters) Describe(ch chan<- *prometheus.Desc) {
	c.decisions.Describe(ch)
	c.writes.Describe(ch)
	c.banner.Describe(ch)
}

func (c *statsCounters) Collect(ch chan<- prometheus.Metric) {
	c.decisions.Collect(ch)
	c.writes.Collect(ch)
	c.banner.Collect(ch)
}

func (c *statsCounters) WriteCounted(counted *store.Counted) {
	for _, d := range counted.Decisions {
		c.decisions.WithLabelValues(d.Purpose, counted.Region, string(d.Outcome)).Inc()
	}
	c.writes.WithLabelValues(counted.Region, string(counted.Method)).Inc()
}

func (c *statsCounters) BannerEventCounted(region string, step store.BannerStep) {
	c.banner.WithLabelValues(region, string(step)).Inc()
}
