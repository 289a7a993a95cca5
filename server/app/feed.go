package app

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/consentd/consentd/server/store"
)

// defaultFeedMonitorInterval applies when the config leaves it zero.
const defaultFeedMonitorInterval = 30 * time.Second

// feedRuntime is what the change feed needs while consentd runs: the signal
// that ends watch streams at shutdown, and the lag monitor.
type feedRuntime struct {
	streamsDone chan struct{} // closed at shutdown: every watch sends its cursor and ends
	monitor     *feedMonitor

	mu      sync.Mutex
	cancel  context.CancelFunc // stops the monitor; nil until started
	stopped chan struct{}      // closed when the monitor has returned
	closed  bool
}

func newFeedRuntime(lags func(context.Context) ([]store.ConsumerLag, error), interval time.Duration, logger *slog.Logger) *feedRuntime {
	if interval <= 0 {
		interval = defaultFeedMonitorInterval
	}
	return &feedRuntime{streamsDone: make(chan struct{}), monitor: newFeedMonitor(lags, interval, logger)}
}

// start runs the monitor until stop.
func (f *feedRuntime) start() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || f.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.stopped = cancel, make(chan struct{})
	go func() {
		defer close(f.stopped)
		f.monitor.run(ctx)
	}()
}

// stop ends the watch streams and the monitor, and waits for the monitor
// (it uses Redis, which closes next). Call it before the servers' graceful
// stop, which would otherwise wait for the streams until its timeout.
func (f *feedRuntime) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	f.closed = true
	close(f.streamsDone)
	if f.cancel != nil {
		f.cancel()
		<-f.stopped
	}
}

// feedMonitor publishes every feed consumer's lag, refreshed every interval
// (computing it reads Redis, so it is not done per scrape):
//
//	consentd_feed_unacked{consumer}                               changes kept that it has not acknowledged
//	consentd_feed_unacked_opt_outs{consumer}                      opt-outs among them
//	consentd_feed_oldest_unacked_opt_out_age_seconds{consumer}    age of the oldest of those at the last refresh; 0 if none
//	consentd_feed_trimmed_unacked{consumer}                       changes retention trimmed before it acknowledged them; should stay 0
//
// Alert on the opt-out age long before the legal deadline to honour an
// opt-out (10 business days for e-mail and SMS, 15 days under CCPA), and on
// any trimmed change. The opt-out figures cover at most store.LagScanLimit
// pending and as many undelivered changes per partition.
type feedMonitor struct {
	lags     func(context.Context) ([]store.ConsumerLag, error)
	interval time.Duration
	logger   *slog.Logger

	unacked, optOuts, oldestAge, trimmed *prometheus.GaugeVec
	known                                map[string]bool // consumers with published values
}

func newFeedMonitor(lags func(context.Context) ([]store.ConsumerLag, error), interval time.Duration, logger *slog.Logger) *feedMonitor {
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{"consumer"})
	}
	return &feedMonitor{
		lags: lags, interval: interval, logger: logger, known: map[string]bool{},
		unacked: gauge("consentd_feed_unacked",
			"Change-feed changes still kept that the consumer has not acknowledged (delivered or not)."),
		optOuts: gauge("consentd_feed_unacked_opt_outs",
			"Opt-outs among the consumer's unacknowledged changes: they must be applied within a legal deadline."),
		oldestAge: gauge("consentd_feed_oldest_unacked_opt_out_age_seconds",
			"Age of the consumer's oldest unacknowledged opt-out at the last refresh; 0 if none."),
		trimmed: gauge("consentd_feed_trimmed_unacked",
			"Changes the feed's retention trimmed before the consumer acknowledged them (lost to it); should be 0."),
	}
}

func (m *feedMonitor) vecs() []*prometheus.GaugeVec {
	return []*prometheus.GaugeVec{m.unacked, m.optOuts, m.oldestAge, m.trimmed}
}

// Describe and Collect make the monitor one prometheus.Collector.
func (m *feedMonitor) Describe(ch chan<- *prometheus.Desc) {
	for _, v := range m.vecs() {
		v.Describe(ch)
	}
}

func (m *feedMonitor) Collect(ch chan<- prometheus.Metric) {
	for _, v := range m.vecs() {
		v.Collect(ch)
	}
}

func (m *feedMonitor) run(ctx context.Context) {
	ticker := time.NewTicker(m.interval)
	defer ticker.Stop()
	for {
		m.refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// refresh publishes the current lags. On an error the last values stay (and
// the error is logged): a Redis outage shows in consentd_redis_errors_total,
// not as consumers that caught up.
func (m *feedMonitor) refresh(ctx context.Context) {
	lags, err := m.lags(ctx)
	if err != nil {
		if ctx.Err() == nil {
			m.logger.Warn("feed lag monitor: reading the consumers' lag failed", "error", err)
		}
		return
	}
	now := time.Now()
	seen := make(map[string]bool, len(lags))
	for _, l := range lags {
		seen[l.Name] = true
		age := 0.0
		if !l.OldestUnacknowledgedOptOut.IsZero() {
			age = max(now.Sub(l.OldestUnacknowledgedOptOut).Seconds(), 0)
		}
		m.unacked.WithLabelValues(l.Name).Set(float64(l.Unacknowledged))
		m.optOuts.WithLabelValues(l.Name).Set(float64(l.UnacknowledgedOptOuts))
		m.oldestAge.WithLabelValues(l.Name).Set(age)
		m.trimmed.WithLabelValues(l.Name).Set(float64(l.TrimmedUnacknowledged))
	}
	for name := range m.known {
		if !seen[name] { // deleted consumers disappear
			for _, v := range m.vecs() {
				v.DeleteLabelValues(name)
			}
		}
	}
	m.known = seen
}
