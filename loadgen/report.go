package loadgen

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
)

// Report file names inside the report directory.
const (
	ReportJSON = "report.json"
	ReportHTML = "report.html"
	ReportText = "summary.txt"
	ReportHlog = "latency.hlog"
)

// fmtMs renders milliseconds with a unit suited to the magnitude.
func fmtMs(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 1:
		return fmt.Sprintf("%.0fµs", v*1000)
	case v < 10:
		return fmt.Sprintf("%.2fms", v)
	case v < 1000:
		return fmt.Sprintf("%.1fms", v)
	default:
		return fmt.Sprintf("%.2fs", v/1000)
	}
}

// sortOps orders operation names: the transaction first, then by count,
// then by name.
func sortOps(names []string, ops map[string]IntervalOp) {
	sort.Slice(names, func(i, j int) bool {
		a, b := names[i], names[j]
		if (a == OpTxn) != (b == OpTxn) {
			return a == OpTxn
		}
		if ops[a].Count != ops[b].Count {
			return ops[a].Count > ops[b].Count
		}
		return a < b
	})
}

// WriteTable writes the human-readable summary: target and achieved rates,
// latency percentiles per operation and stage, errors by status code,
// declines by response code, the generator's health and SLO verdicts.
func WriteTable(w io.Writer, r *Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "profile %s (%s arrivals), measured %.1fs", r.Profile, r.Arrivals, r.MeasuredSeconds)
	if r.Interrupted {
		b.WriteString(" — INTERRUPTED")
	}
	b.WriteString("\n")
	if e := r.Environment; e.Version != "" {
		fmt.Fprintf(&b, "  posfleet %s", e.Version)
		if e.Commit != "" {
			fmt.Fprintf(&b, " (commit %.12s)", e.Commit)
		}
		fmt.Fprintf(&b, ", %s, host %s, %d CPUs\n", e.GoVersion, e.Host, e.CPUs)
	}
	for _, k := range sortedKeys(r.Info) {
		fmt.Fprintf(&b, "  %s: %s\n", k, r.Info[k])
	}
	fmt.Fprintf(&b, "target %.1f/s   achieved %.1f/s   issued %d of %.0f expected   dropped %d\n\n",
		r.TargetRate, r.AchievedRate, r.Generator.Issued, r.Generator.Expected, r.Generator.Dropped)

	tw := tabwriter.NewWriter(&b, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "op\tcalls\tok\tdeclined\terrors\trate/s\tp50\tp90\tp99\tp99.9\tmax\tservice p99\tsend-lag p99\t")
	for _, op := range r.Ops {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			op.Name, op.Count, op.OK, op.Declined, op.Errors, op.AchievedRate,
			fmtMs(op.Latency.P50), fmtMs(op.Latency.P90), fmtMs(op.Latency.P99), fmtMs(op.Latency.P999), fmtMs(op.Latency.Max),
			fmtMs(op.Service.P99), fmtMs(op.SendLag.P99))
	}
	tw.Flush()

	b.WriteString("\nstages (latency of the transaction, or of every op in setup and close)\n")
	tw = tabwriter.NewWriter(&b, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "stage\tstart\tlength\ttarget/s\tissued\tachieved/s\top\tcalls\terrors\tp50\tp99\tmax\t")
	for _, s := range r.Stages {
		name := s.Name
		if s.Warmup {
			name += " (warm-up)"
		}
		ops := s.Ops
		if s.Kind == "profile" {
			ops = nil
			for _, o := range s.Ops {
				if o.Name == OpTxn || len(s.Ops) == 1 {
					ops = append(ops, o)
				}
			}
			if len(ops) == 0 && len(s.Ops) > 0 {
				ops = s.Ops
			}
		}
		if len(ops) == 0 {
			ops = []StageOp{{Name: "-"}}
		}
		for i, o := range ops {
			if i == 0 && s.Kind == "profile" {
				fmt.Fprintf(tw, "%s\t%.0fs\t%.0fs\t%.1f\t%d\t%.1f\t", name, s.StartSeconds, s.DurationSeconds, s.TargetRate, s.Issued, s.AchievedRate)
			} else if i == 0 {
				fmt.Fprintf(tw, "%s\t\t\t\t\t\t", name)
			} else {
				fmt.Fprint(tw, "\t\t\t\t\t\t")
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t\n", o.Name, o.Count, o.Errors, fmtMs(o.Latency.P50), fmtMs(o.Latency.P99), fmtMs(o.Latency.Max))
		}
	}
	tw.Flush()

	var errs, decl []string
	for _, op := range r.Ops {
		for _, o := range op.Outcomes {
			oc := ParseOutcome(o.Outcome)
			line := fmt.Sprintf("  %-14s %-28s %d", op.Name, o.Outcome, o.Count)
			switch {
			case oc.IsError():
				errs = append(errs, line)
			case oc.Class == ClassDeclined:
				decl = append(decl, line)
			}
		}
	}
	b.WriteString("\nerrors by status code\n")
	if len(errs) == 0 {
		b.WriteString("  none\n")
	}
	for _, l := range errs {
		b.WriteString(l + "\n")
	}
	b.WriteString("declines by response code\n")
	if len(decl) == 0 {
		b.WriteString("  none\n")
	}
	for _, l := range decl {
		b.WriteString(l + "\n")
	}

	g := r.Generator
	fmt.Fprintf(&b, "\ngenerator: dispatch lag p50 %s p99 %s max %s; cpu %.0f%% of one core (user %.2fs, sys %.2fs, %d cores), %.1fµs per call over %d calls\n",
		fmtMs(g.DispatchLag.P50), fmtMs(g.DispatchLag.P99), fmtMs(g.DispatchLag.Max),
		g.CPUPercent, g.CPUUserSeconds, g.CPUSystemSeconds, g.GOMAXPROCS, g.CPUMicrosPerCall, g.Calls)
	if g.Behind {
		b.WriteString("GENERATOR FELL BEHIND: the offered load was late or incomplete\n")
	}
	for _, w := range g.Warnings {
		b.WriteString("warning: " + w + "\n")
	}
	if ro := r.Rollout; ro != nil {
		fmt.Fprintf(&b, "\nconfig rollout %s (version %d) published at %.1fs: %d of %d terminals reached",
			ro.RolloutID, ro.Version, ro.PublishedSeconds, ro.Reached, ro.Terminals)
		if ro.AllReachedMs != nil {
			fmt.Fprintf(&b, ", all within %s", fmtMs(*ro.AllReachedMs))
		}
		fmt.Fprintf(&b, "; propagation p50 %s p99 %s max %s\n", fmtMs(ro.Propagation.P50), fmtMs(ro.Propagation.P99), fmtMs(ro.Propagation.Max))
		if ro.Error != "" {
			fmt.Fprintf(&b, "rollout error: %s\n", ro.Error)
		}
		if g := ro.Gate; g != nil {
			fmt.Fprintf(&b, "payment gate: stopped %d of %d rollouts within %s of the publish, at stage %d; %d terminals and %d payments touched\n",
				g.Stopped, g.Rollouts, fmtMs(g.StoppedMs), g.Stage, g.Terminals, g.Payments)
			if g.Reason != "" {
				fmt.Fprintf(&b, "  %s: %s\n", g.State, g.Reason)
			}
		}
	}
	if bt := r.Batches; bt != nil {
		fmt.Fprintf(&b, "\nbatch closes: %d in balance, %d out of balance, %d without an answer", bt.InBalance, bt.OutOfBalance, bt.Failed)
		if bt.UnknownReversed > 0 {
			fmt.Fprintf(&b, "; %d approvals whose answer was lost were reversed", bt.UnknownReversed)
		}
		t := bt.Balanced
		fmt.Fprintf(&b, "\n  balanced totals: %d sales (%d), %d refunds (%d), %d reversals (%d) in minor units\n",
			t.SaleCount, t.SaleAmount, t.RefundCount, t.RefundAmount, t.ReversalCount, t.ReversalAmount)
	}
	if cl := r.Cluster; cl != nil {
		writeCluster(&b, cl)
	}
	if len(r.SLOs) > 0 {
		b.WriteString("\nSLOs\n")
		for _, s := range r.SLOs {
			verdict := "PASS"
			if !s.Pass {
				verdict = "FAIL"
			}
			got := s.formatValue(s.Value)
			if s.Detail != "" {
				got = s.Detail
			}
			fmt.Fprintf(&b, "  %s  %-32s got %s\n", verdict, s.Expr, got)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// WriteJSON writes the result as indented JSON.
func WriteJSON(w io.Writer, r *Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ReadResult reads a report.json.
func ReadResult(path string) (*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// WriteReport writes report.json, report.html and summary.txt into dir,
// creating it. The interval log (latency.hlog) is written during the run
// through Config.IntervalLog.
func WriteReport(dir string, r *Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	write := func(name string, fn func(io.Writer, *Result) error) error {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		return errors.Join(fn(f, r), f.Close())
	}
	return errors.Join(
		write(ReportJSON, WriteJSON),
		write(ReportHTML, WriteHTML),
		write(ReportText, WriteTable),
	)
}
