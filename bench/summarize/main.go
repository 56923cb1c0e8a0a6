// Command summarize prints a Markdown table of loadgen reports, with each
// result's throughput and CPU cost as a ratio to a baseline run from the
// same invocation (the health-check ceiling).
//
//	go run ./bench/summarize [-baseline LABEL] LABEL=DIR/report.json ...
//
// Each argument names a report.json; the label defaults to the file's
// directory name. The baseline defaults to the first argument. Each run's
// SLO verdicts, if it was given any, follow the table.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/posfleet/posfleet/loadgen"
)

func main() {
	baseline := flag.String("baseline", "", "label of the run the ratios are quoted against (default: the first)")
	op := flag.String("op", "", "operation to report (default: txn)")
	flag.Parse()
	if err := run(os.Stdout, flag.Args(), *baseline, *op); err != nil {
		fmt.Fprintln(os.Stderr, "summarize:", err)
		os.Exit(1)
	}
}

type entry struct {
	label string
	res   *loadgen.Result
}

func run(w io.Writer, args []string, baseline, opName string) error {
	if len(args) == 0 {
		return errors.New("usage: summarize [-baseline LABEL] LABEL=PATH/report.json [LABEL=PATH/report.json ...]")
	}
	if opName == "" {
		opName = loadgen.OpTxn
	}
	var entries []entry
	for _, a := range args {
		label, path, ok := strings.Cut(a, "=")
		if !ok {
			path, label = a, filepath.Base(filepath.Dir(a))
		}
		res, err := loadgen.ReadResult(path)
		if err != nil {
			return err
		}
		entries = append(entries, entry{label, res})
	}
	base := entries[0]
	if baseline != "" {
		found := false
		for _, e := range entries {
			if e.label == baseline {
				base, found = e, true
			}
		}
		if !found {
			return fmt.Errorf("no run labelled %q", baseline)
		}
	}
	baseRate := base.res.AchievedRate
	baseCPU := base.res.Generator.CPUMicrosPerCall

	fmt.Fprintf(w, "| run | target/s | achieved/s | × %s | %s p50 | p99 | p99.9 | max | errors | loadgen CPU µs/call | behind |\n", base.label, opName)
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, e := range entries {
		r := e.res
		o := r.Op(opName)
		if o == nil {
			o = &loadgen.OpResult{}
		}
		ratio := "–"
		if baseRate > 0 {
			ratio = fmt.Sprintf("%.3f", r.AchievedRate/baseRate)
		}
		cpu := fmt.Sprintf("%.1f", r.Generator.CPUMicrosPerCall)
		if baseCPU > 0 && e.label != base.label {
			cpu += fmt.Sprintf(" (%.2f×)", r.Generator.CPUMicrosPerCall/baseCPU)
		}
		behind := "no"
		if r.Generator.Behind {
			behind = "yes"
		}
		fmt.Fprintf(w, "| %s | %.0f | %.0f | %s | %s | %s | %s | %s | %.2f%% | %s | %s |\n",
			e.label, r.TargetRate, r.AchievedRate, ratio,
			ms(o.Latency.P50), ms(o.Latency.P99), ms(o.Latency.P999), ms(o.Latency.Max),
			100*o.ErrorRate, cpu, behind)
	}
	for _, e := range entries {
		if len(e.res.SLOs) == 0 {
			continue
		}
		var checks []string
		for _, s := range e.res.SLOs {
			verdict := "PASS"
			if !s.Pass {
				verdict = "FAIL"
			}
			got := sloValue(s)
			if s.Detail != "" {
				got = s.Detail
			}
			checks = append(checks, fmt.Sprintf("%s `%s` (got %s)", verdict, s.Expr, got))
		}
		fmt.Fprintf(w, "\n%s SLOs: %s\n", e.label, strings.Join(checks, "; "))
	}
	for _, e := range entries {
		if ro := e.res.Rollout; ro != nil {
			all := "not all reached"
			if ro.AllReachedMs != nil {
				all = "all within " + ms(*ro.AllReachedMs)
			}
			fmt.Fprintf(w, "\n%s: config reached %d of %d terminals, %s (p50 %s, p99 %s)\n", e.label, ro.Reached, ro.Terminals, all, ms(ro.Propagation.P50), ms(ro.Propagation.P99))
		}
	}
	return nil
}

// sloValue renders an SLO's measured value in its metric's unit.
func sloValue(s loadgen.SLOResult) string {
	switch s.Metric {
	case loadgen.MetricErrorRate:
		return fmt.Sprintf("%.3g%%", 100*s.Value)
	case loadgen.MetricAchievedRate:
		return fmt.Sprintf("%.1f/s", s.Value)
	}
	return ms(s.Value)
}

func ms(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 1:
		return fmt.Sprintf("%.0fµs", v*1000)
	case v < 100:
		return fmt.Sprintf("%.2fms", v)
	case v < 1000:
		return fmt.Sprintf("%.0fms", v)
	}
	return fmt.Sprintf("%.2fs", v/1000)
}
