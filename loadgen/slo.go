package loadgen

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SLO metrics.
const (
	MetricP50          = "p50"
	MetricP90          = "p90"
	MetricP99          = "p99"
	MetricP999         = "p999"
	MetricMax          = "max"
	MetricErrorRate    = "error_rate"
	MetricAchievedRate = "achieved_rate"
)

// SLO is one service-level check on a result, such as authorize.p99<=20ms.
type SLO struct {
	// Expr is the check as written.
	Expr string
	// Op is the operation ("authorize", "txn", "health", …).
	Op string
	// Metric is one of the Metric* constants.
	Metric string
	// Cmp is "<", "<=", ">" or ">=".
	Cmp string
	// Threshold is milliseconds for latency metrics, a fraction for
	// error_rate and arrivals per second for achieved_rate.
	Threshold float64
}

// SLOResult is an evaluated SLO.
type SLOResult struct {
	Expr      string  `json:"expr"`
	Op        string  `json:"op"`
	Metric    string  `json:"metric"`
	Cmp       string  `json:"cmp"`
	Threshold float64 `json:"threshold"`
	// Value is what the run measured, in the threshold's unit.
	Value float64 `json:"value"`
	Pass  bool    `json:"pass"`
	// Detail explains a failure that has no value (an operation that never
	// ran).
	Detail string `json:"detail,omitempty"`
}

// ParseSLO parses "OP.METRIC CMP VALUE", e.g. "authorize.p99<=20ms",
// "txn.error_rate<1%", "health.achieved_rate>=20000". Latency metrics are
// p50, p90, p99, p999 (or p99.9) and max, with Go duration values;
// error_rate takes a fraction or a percentage; achieved_rate a number per
// second, optionally suffixed "/s".
func ParseSLO(expr string) (SLO, error) {
	s := SLO{Expr: strings.TrimSpace(expr)}
	compact := strings.ReplaceAll(s.Expr, " ", "")
	i := strings.IndexAny(compact, "<>")
	if i <= 0 {
		return SLO{}, fmt.Errorf("slo %q: want OP.METRIC<=VALUE (comparators < <= > >=)", expr)
	}
	left, rest := compact[:i], compact[i:]
	switch {
	case strings.HasPrefix(rest, "<="), strings.HasPrefix(rest, ">="):
		s.Cmp, rest = rest[:2], rest[2:]
	default:
		s.Cmp, rest = rest[:1], rest[1:]
	}
	// The metric is after the last dot, except p99.9 whose dot is its own.
	left = strings.Replace(left, ".p99.9", ".p999", 1)
	dot := strings.LastIndex(left, ".")
	if dot <= 0 || dot == len(left)-1 {
		return SLO{}, fmt.Errorf("slo %q: want OP.METRIC on the left, e.g. authorize.p99", expr)
	}
	s.Op, s.Metric = left[:dot], left[dot+1:]
	if rest == "" {
		return SLO{}, fmt.Errorf("slo %q: missing value", expr)
	}
	var err error
	switch s.Metric {
	case MetricP50, MetricP90, MetricP99, MetricP999, MetricMax:
		var d time.Duration
		if d, err = time.ParseDuration(rest); err != nil {
			return SLO{}, fmt.Errorf("slo %q: %s needs a duration such as 20ms: %w", expr, s.Metric, err)
		}
		s.Threshold = float64(d) / 1e6
	case MetricErrorRate:
		if v, ok := strings.CutSuffix(rest, "%"); ok {
			s.Threshold, err = strconv.ParseFloat(v, 64)
			s.Threshold /= 100
		} else {
			s.Threshold, err = strconv.ParseFloat(rest, 64)
		}
		if err != nil || s.Threshold < 0 || s.Threshold > 1 {
			return SLO{}, fmt.Errorf("slo %q: error_rate needs a fraction (0.01) or percentage (1%%)", expr)
		}
	case MetricAchievedRate:
		s.Threshold, err = strconv.ParseFloat(strings.TrimSuffix(rest, "/s"), 64)
		if err != nil || s.Threshold < 0 {
			return SLO{}, fmt.Errorf("slo %q: achieved_rate needs a rate per second such as 500", expr)
		}
	default:
		return SLO{}, fmt.Errorf("slo %q: unknown metric %q (want p50, p90, p99, p999, max, error_rate or achieved_rate)", expr, s.Metric)
	}
	return s, nil
}

// ParseSLOs parses several checks.
func ParseSLOs(exprs []string) ([]SLO, error) {
	var out []SLO
	var errs []error
	for _, e := range exprs {
		s, err := ParseSLO(e)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, s)
	}
	return out, errors.Join(errs...)
}

// Evaluate checks the SLO against a result. An operation that never ran
// fails.
func (s SLO) Evaluate(r *Result) SLOResult {
	out := SLOResult{Expr: s.Expr, Op: s.Op, Metric: s.Metric, Cmp: s.Cmp, Threshold: s.Threshold}
	op := r.Op(s.Op)
	if op == nil || op.Count == 0 {
		out.Detail = fmt.Sprintf("no %s calls were made", s.Op)
		return out
	}
	switch s.Metric {
	case MetricP50:
		out.Value = op.Latency.P50
	case MetricP90:
		out.Value = op.Latency.P90
	case MetricP99:
		out.Value = op.Latency.P99
	case MetricP999:
		out.Value = op.Latency.P999
	case MetricMax:
		out.Value = op.Latency.Max
	case MetricErrorRate:
		out.Value = op.ErrorRate
	case MetricAchievedRate:
		out.Value = op.AchievedRate
	}
	switch s.Cmp {
	case "<":
		out.Pass = out.Value < s.Threshold
	case "<=":
		out.Pass = out.Value <= s.Threshold
	case ">":
		out.Pass = out.Value > s.Threshold
	case ">=":
		out.Pass = out.Value >= s.Threshold
	}
	return out
}

// EvaluateSLOs evaluates every check, stores the results in r.SLOs and
// reports whether all passed.
func EvaluateSLOs(r *Result, slos []SLO) bool {
	r.SLOs = nil
	ok := true
	for _, s := range slos {
		res := s.Evaluate(r)
		ok = ok && res.Pass
		r.SLOs = append(r.SLOs, res)
	}
	return ok
}

// formatValue renders a value in the metric's unit.
func (s SLOResult) formatValue(v float64) string {
	switch s.Metric {
	case MetricErrorRate:
		return fmt.Sprintf("%.3g%%", v*100)
	case MetricAchievedRate:
		return fmt.Sprintf("%.1f/s", v)
	}
	return fmtMs(v)
}
