package app

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// storageProbeTimeout bounds the probe a scrape of /metrics runs.
const storageProbeTimeout = time.Second

// storageMonitor tells whether Redis is full: maxmemory reached under
// maxmemory-policy noeviction (deploy/'s setting), so Redis refuses every
// write while it still serves reads. Writes then answer UNAVAILABLE
// "storage is full"; this makes it visible to operators:
//
//	consentd_redis_storage_full        1 while Redis refuses writes for memory
//	consentd_redis_oom_errors_total    commands Redis refused for memory
//
// and /readyz adds it to its body (App.degraded). The gauge is set by a
// probe that writes nothing (store.StorageFull), run on every /readyz and
// every scrape, and to 1 at once by any refused command in between.
type storageMonitor struct {
	probe     func(ctx context.Context) (bool, error)
	full      atomic.Bool
	fullGauge *prometheus.Desc
	oomErrors prometheus.Counter
}

func newStorageMonitor(probe func(ctx context.Context) (bool, error)) *storageMonitor {
	return &storageMonitor{
		probe: probe,
		fullGauge: prometheus.NewDesc("consentd_redis_storage_full",
			"1 while Redis refuses writes for memory (maxmemory reached, noeviction): writes answer Unavailable, reads work.", nil, nil),
		oomErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "consentd_redis_oom_errors_total",
			Help: "Redis commands refused for memory (OOM: maxmemory reached under noeviction)."}),
	}
}

// refresh asks Redis and reports whether it is full. When Redis cannot
// tell (unreachable, a replica), the last answer stands: an outage shows
// in /readyz and consentd_redis_errors_total, not as "not full".
func (m *storageMonitor) refresh(ctx context.Context) bool {
	// The probe's own OOM reply is the answer, not a refused write: it is
	// not counted (redisErrorCounter skips it).
	full, err := m.probe(uncounted(ctx))
	if err == nil {
		m.full.Store(full)
	}
	return m.full.Load()
}

// refused is called for every command Redis refused for memory.
func (m *storageMonitor) refused() {
	m.oomErrors.Inc()
	m.full.Store(true)
}

// Describe and Collect make the monitor a prometheus.Collector; a scrape
// refreshes the gauge first, so it is current whether or not anything
// probes /readyz.
func (m *storageMonitor) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.fullGauge
	m.oomErrors.Describe(ch)
}

func (m *storageMonitor) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), storageProbeTimeout)
	defer cancel()
	value := 0.0
	if m.refresh(ctx) {
		value = 1
	}
	ch <- prometheus.MustNewConstMetric(m.fullGauge, prometheus.GaugeValue, value)
	m.oomErrors.Collect(ch)
}

type uncountedKey struct{}

// uncounted marks ctx's Redis commands as probes whose errors are answers,
// not failures: redisErrorCounter does not count them.
func uncounted(ctx context.Context) context.Context {
	return context.WithValue(ctx, uncountedKey{}, true)
}

func isUncounted(ctx context.Context) bool {
	v, _ := ctx.Value(uncountedKey{}).(bool)
	return v
}
