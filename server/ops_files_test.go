package server_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"

	"github.com/posfleet/posfleet/server/store/storetest"
)

// Operations files shipped in the repository (see README, "Monitoring").
var (
	dashboardFile = filepath.Join("..", "ops", "grafana", "posfleet.json")
	alertsFile    = filepath.Join("..", "ops", "prometheus", "alerts.yml")
)

// promKeywords are PromQL words that are neither functions nor metrics.
var promKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"offset": true, "bool": true, "and": true, "or": true, "unless": true, "inf": true, "nan": true,
}

var (
	reString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	reGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	reBraces   = regexp.MustCompile(`\{[^}]*\}`)
	reRange    = regexp.MustCompile(`\[[^\]]*\]`)
	reIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	// reSelector finds a metric name with its matchers; reEqual the
	// equality matchers among them.
	reSelector   = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}`)
	reEqual      = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"([^"]*)"`)
	reLabelValue = regexp.MustCompile(`label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)`)
)

// promNames returns the metric names a PromQL expression (or a Grafana
// label_values query) reads: identifiers outside label matchers, ranges,
// groupings and strings that are neither functions nor keywords.
func promNames(expr string) []string {
	if m := reLabelValue.FindStringSubmatch(expr); m != nil {
		return []string{m[1]}
	}
	s := reString.ReplaceAllString(expr, `""`)
	s = reGrouping.ReplaceAllString(s, " ")
	s = reBraces.ReplaceAllString(s, " ")
	s = reRange.ReplaceAllString(s, " ")
	var out []string
	for _, loc := range reIdent.FindAllStringIndex(s, -1) {
		name := s[loc[0]:loc[1]]
		if loc[0] > 0 && (s[loc[0]-1] == '$' || (s[loc[0]-1] >= '0' && s[loc[0]-1] <= '9') || s[loc[0]-1] == '.') {
			continue // a variable, or a number's exponent or unit
		}
		rest := strings.TrimLeft(s[loc[1]:], " \t\n")
		if strings.HasPrefix(rest, "(") || promKeywords[strings.ToLower(name)] {
			continue
		}
		out = append(out, name)
	}
	return out
}

func TestPromNames(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`sum by (instance, le) (rate(grpc_server_handling_seconds_bucket{grpc_method="Authorize",instance=~"$instance"}[$__rate_interval]))`,
			[]string{"grpc_server_handling_seconds_bucket"}},
		{`a_total / on(instance) group_left b > 0.7 * c offset 1w and d{x="y z"} == 1e3`, []string{"a_total", "b", "c", "d"}},
		{`predict_linear(posfleet_disk_free_bytes[6h], 24 * 3600) < posfleet_disk_reserve_bytes`,
			[]string{"posfleet_disk_free_bytes", "posfleet_disk_reserve_bytes"}},
		{`label_values(posfleet_payment_engine_healthy, instance)`, []string{"posfleet_payment_engine_healthy"}},
	}
	for _, tc := range tests {
		if got := promNames(tc.expr); !slices.Equal(got, tc.want) {
			t.Errorf("promNames(%q) = %q, want %q", tc.expr, got, tc.want)
		}
	}
}

// dashboardExprs returns every query of the Grafana dashboard: panel
// targets and templating queries.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || k == "definition") {
					out = append(out, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	return out
}

// alertExprs returns the expressions of the alert rules.
func alertExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	var out []string
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			out = append(out, r.Expr)
		}
	}
	return out
}

// exposedSeries maps each series name a scrape can answer (histogram and
// summary parts included) to its family.
func exposedSeries(fams map[string]*dto.MetricFamily) map[string]*dto.MetricFamily {
	out := map[string]*dto.MetricFamily{}
	for name, f := range fams {
		out[name] = f
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				out[name+s] = f
			}
		case dto.MetricType_SUMMARY:
			for _, s := range []string{"_sum", "_count"} {
				out[name+s] = f
			}
		}
	}
	return out
}

// hasLabel reports whether some series of f has label name=value.
func hasLabel(f *dto.MetricFamily, name, value string) bool {
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == name && l.GetValue() == value {
				return true
			}
		}
	}
	return false
}

// TestOpsFilesUseExposedMetrics checks that the dashboard and the alert
// rules read only series the server exposes, with label values it uses:
// a renamed metric or a misspelt label value would otherwise leave a panel
// empty and an alert silent.
func TestOpsFilesUseExposedMetrics(t *testing.T) {
	storetest.RequireBadger(t, "the disk-space gauges the dashboards use")
	e := trafficEnv(t)
	series := exposedSeries(scrape(t, e.srv.OpsHandler()))
	// Series that Prometheus itself adds to every target, and target
	// labels it attaches.
	synthetic := map[string]bool{"up": true}
	targetLabels := map[string]bool{"instance": true, "job": true, "le": true}

	files := map[string][]string{dashboardFile: dashboardExprs(t), alertsFile: alertExprs(t)}
	for file, exprs := range files {
		if len(exprs) < 10 {
			t.Errorf("%s: found %d queries, want the file's panels or rules", file, len(exprs))
		}
		seen := 0
		for _, expr := range exprs {
			names := promNames(expr)
			if len(names) == 0 {
				t.Errorf("%s: no metric in %q", file, expr)
			}
			for _, n := range names {
				if series[n] == nil && !synthetic[n] {
					t.Errorf("%s: %s is not exposed by the server (in %q)", file, n, expr)
				}
				seen++
			}
			// Equality matchers only: reEqual does not match != or =~.
			for _, sel := range reSelector.FindAllStringSubmatch(expr, -1) {
				f := series[sel[1]]
				if f == nil {
					continue
				}
				for _, m := range reEqual.FindAllStringSubmatch(sel[2], -1) {
					if !targetLabels[m[1]] && !hasLabel(f, m[1], m[2]) {
						t.Errorf("%s: no series %s{%s=%q} (in %q)", file, sel[1], m[1], m[2], expr)
					}
				}
			}
		}
		t.Logf("%s: %d queries, %d metric references", file, len(exprs), seen)
	}
}

// TestAlertRulesPassPromtool runs promtool over the alert rules. CI
// installs promtool (.ci/run) and sets CI=true, where a missing promtool
// fails; elsewhere the test is skipped without it.
func TestAlertRulesPassPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not found; .ci/run installs it (Debian package prometheus)")
		}
		t.Skip("promtool not installed (Debian package prometheus); CI runs this check")
	}
	out, err := exec.CommandContext(t.Context(), promtool, "check", "rules", alertsFile).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules %s: %v\n%s", alertsFile, err, out)
	}
	if !strings.Contains(string(out), "SUCCESS") {
		t.Errorf("promtool check rules output %q, want SUCCESS", out)
	}
}
