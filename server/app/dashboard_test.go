package app

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	consentv1 "github.com/consentd/consentd/proto/consent/v1"
	"github.com/consentd/consentd/server/config"
	"github.com/consentd/consentd/server/internal/eventually"
	"github.com/consentd/consentd/server/internal/redistest"
)

const dashboardFile = "../../deploy/grafana/consentd-dashboard.json"

// TestDashboardQueriesOnlyMetricsConsentdExports reads every PromQL query of
// the Grafana dashboard and checks that each metric it names is one a running
// consentd exports. A renamed metric would otherwise leave an empty panel.
func TestDashboardQueriesOnlyMetricsConsentdExports(t *testing.T) {
	used := dashboardMetrics(t)
	// The panels the dashboard exists for.
	for _, want := range []string{
		"grpc_server_handled_total", "grpc_server_handling_seconds_bucket", "consentd_redis_errors_total",
		"consentd_feed_unacked_opt_outs", "consentd_feed_oldest_unacked_opt_out_age_seconds", "consentd_feed_trimmed_unacked",
	} {
		if !used[want] {
			t.Errorf("the dashboard has no panel on %s", want)
		}
	}

	// Make consentd export every series it can: a call (request metrics), a
	// feed consumer (lag gauges, published at the first refresh) and a
	// Redis outage (error counter). Vectors show no series until then.
	redis := redistest.Start(t)
	srv := start(t, redis.URL(), func(c *config.Config) { c.FeedMonitorInterval = 20 * time.Millisecond })
	if _, err := srv.grpc.CreateFeedConsumer(ctx(t), &consentv1.CreateFeedConsumerRequest{Consumer: "mailer"}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.grpc.CheckConsent(ctx(t), &consentv1.CheckConsentRequest{SubjectId: "s", Purpose: "ads"}); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, "the feed lag gauges", func() bool { return exported(t, srv)["consentd_feed_unacked"] })
	redis.Stop()
	_, _ = srv.grpc.CheckConsent(ctx(t), &consentv1.CheckConsentRequest{SubjectId: "s", Purpose: "ads"})
	eventually.True(t, "the Redis error counter", func() bool { return exported(t, srv)["consentd_redis_errors_total"] })

	have := exported(t, srv)
	for _, name := range slices.Sorted(maps.Keys(used)) {
		if !have[name] {
			t.Errorf("the dashboard queries %s, which consentd does not export", name)
		}
	}
}

// exported is the set of series names on /metrics (histograms as their
// _bucket, _sum and _count series, as PromQL sees them).
func exported(t *testing.T, srv *consentd) map[string]bool {
	t.Helper()
	resp, err := http.Get(srv.baseURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	names := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		names[line[:strings.IndexAny(line, "{ ")]] = true
	}
	return names
}

// dashboardMetrics returns the metric names the dashboard's panel queries
// and template variables use.
func dashboardMetrics(t *testing.T) map[string]bool {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	used := map[string]bool{}
	for _, p := range d.Panels {
		for _, target := range p.Targets {
			names := promQLMetrics(target.Expr)
			if len(names) == 0 {
				t.Errorf("panel %q: query %q names no metric", p.Title, target.Expr)
			}
			for _, n := range names {
				used[n] = true
			}
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct{ Query string }
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatalf("variable %s: query: %v", v.Name, err)
		}
		// label_values(SELECTOR, label): only the selector names a metric.
		m := regexp.MustCompile(`^label_values\((.*),\s*\w+\)$`).FindStringSubmatch(q.Query)
		if m == nil {
			t.Fatalf("variable %s: %q: the test reads only label_values(selector, label)", v.Name, q.Query)
		}
		for _, n := range promQLMetrics(m[1]) {
			used[n] = true
		}
	}
	return used
}

var (
	promQLStrings   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promQLMatchers  = regexp.MustCompile(`\{[^}]*\}`)
	promQLRanges    = regexp.MustCompile(`\[[^\]]*\]`)
	promQLGroupings = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promQLNames     = regexp.MustCompile(`(?:^|[^\w.:$])([a-zA-Z_:][\w:]*)`)
	promQLCall      = regexp.MustCompile(`^\s*\(`)
	promQLKeywords  = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true}
)

// promQLMetrics returns the metric names in a PromQL expression: the
// identifiers left once strings, label matchers, ranges and groupings are
// gone that are neither functions (followed by "(") nor keywords.
func promQLMetrics(expr string) []string {
	expr = promQLStrings.ReplaceAllString(expr, `""`)
	expr = promQLMatchers.ReplaceAllString(expr, " ")
	expr = promQLRanges.ReplaceAllString(expr, " ")
	expr = promQLGroupings.ReplaceAllString(expr, " ")
	var out []string
	for _, m := range promQLNames.FindAllStringSubmatchIndex(expr, -1) {
		name, rest := expr[m[2]:m[3]], expr[m[3]:]
		if !promQLCall.MatchString(rest) && !promQLKeywords[strings.ToLower(name)] {
			out = append(out, name)
		}
	}
	return out
}

func TestPromQLMetrics(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`sum by (grpc_method, grpc_code) (rate(grpc_server_handled_total{job=~"$job", grpc_code!="OK"}[$__rate_interval]))`, []string{"grpc_server_handled_total"}},
		{`histogram_quantile(0.99, sum by (le) (rate(x_bucket{a="b{c}"}[5m])))`, []string{"x_bucket"}},
		{`(sum(rate(a_total[1m])) or vector(0)) / sum(rate(b_total[1m])) > bool 1e-3`, []string{"a_total", "b_total"}},
		{`max without (instance) (g) - on (job) group_left h offset 5m`, []string{"g", "h"}},
		{`vector(1)`, nil},
	} {
		if got := promQLMetrics(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("promQLMetrics(%s) = %v, want %v", tc.expr, got, tc.want)
		}
	}
}
