package loadgen

import (
	"fmt"
	"math"
	"runtime"
	"time"
)

// build assembles the Result: the measured window, then the operations,
// stages, intervals and the generator's own health, in that order.
func (r *Run) build() *Result {
	cfg := r.cfg
	p := cfg.Profile
	start := r.Started()
	res := &Result{
		Version:     ResultVersion,
		Profile:     p.Name,
		Arrivals:    cfg.Arrivals.String(),
		Info:        cfg.Info,
		Environment: CurrentEnvironment(),
		StartTime:   start,
		EndTime:     time.Now(),
	}
	r.measureWindow(res)

	rec := mergeShards(r.shards)
	ops, stageOps := buildOps(rec, r.tl, res.MeasuredSeconds)
	res.Ops = ops
	if txn := res.Op(OpTxn); txn != nil {
		res.AchievedRate = txn.AchievedRate
	}
	res.Stages = r.stageResults(stageOps)

	r.mu.Lock()
	ivs := r.intervals
	res.Rollout = r.rollout
	res.Batches = r.batches
	if r.cluster != nil {
		res.Cluster = r.cluster.Result()
	}
	r.mu.Unlock()
	res.Intervals = r.intervalResults(ivs)

	res.Generator = r.generatorResult(rec.clamped, res.Interrupted)
	return res
}

// measureWindow sets the result's target rate, end time, interruption and
// measured seconds.
//
// Measured window: the non-warm-up stages, extended past the end of the
// profile to the last error-free completion of a measured arrival (failed
// and cancelled calls never extend it). An interrupted run counts only the
// part of each measured stage that elapsed before dispatching stopped.
func (r *Run) measureWindow(res *Result) {
	p := r.cfg.Profile
	start := res.StartTime
	var measured time.Duration
	var expected float64
	for _, s := range p.Stages {
		if !s.Warmup {
			measured += s.Duration
			expected += s.Expected()
		}
	}
	if measured > 0 {
		res.TargetRate = expected / measured.Seconds()
	}
	if !start.IsZero() {
		end := start.Add(p.Duration())
		if ld := r.lastDone.Load(); ld != 0 && time.Unix(0, ld).After(end) {
			measured += time.Unix(0, ld).Sub(end)
			res.EndTime = time.Unix(0, ld)
		} else {
			res.EndTime = end
		}
		if r.interrupt.Load() {
			res.Interrupted = true
			stop := time.Unix(0, r.stoppedAt.Load())
			res.EndTime = stop
			measured = interruptedWindow(p, stop.Sub(start))
		}
	}
	res.MeasuredSeconds = measured.Seconds()
}

// stageResults is one StageResult per timeline stage: setup, each profile
// stage, close. Setup and close appear only when they recorded operations.
func (r *Run) stageResults(stageOps [][]StageOp) []StageResult {
	p := r.cfg.Profile
	var out []StageResult
	for i, name := range r.tl.names {
		sr := StageResult{Name: name, Warmup: r.tl.warmup[i], Ops: stageOps[i]}
		switch {
		case i == 0:
			sr.Kind = "setup"
		case i == len(r.tl.names)-1:
			sr.Kind = "close"
			sr.StartSeconds = p.Duration().Seconds()
		default:
			s := p.Stages[i-1]
			sr.Kind = "profile"
			sr.StartSeconds = p.StageStart(i - 1).Seconds()
			sr.DurationSeconds = s.Duration.Seconds()
			sr.TargetRate = (s.From + s.To) / 2
			sr.Issued = r.stageIss[i-1].Load()
			for _, so := range sr.Ops {
				if so.Name == OpTxn {
					sr.AchievedRate = float64(so.Count-so.Errors) / sr.DurationSeconds
				}
			}
		}
		if sr.Kind != "profile" && len(sr.Ops) == 0 {
			continue
		}
		out = append(out, sr)
	}
	return out
}

// intervalResults converts the collected intervals to times relative to the
// start of the profile (or of the run, when Drive never started), each with
// the stage its midpoint falls in and the rate the profile asked for.
func (r *Run) intervalResults(ivs []intervalRec) []IntervalResult {
	p := r.cfg.Profile
	start := r.Started()
	ref := start
	if ref.IsZero() {
		ref = r.born
	}
	var out []IntervalResult
	for _, iv := range ivs {
		ir := IntervalResult{
			StartSeconds:   round(iv.start.Sub(ref).Seconds(), 3),
			EndSeconds:     round(iv.end.Sub(ref).Seconds(), 3),
			Issued:         iv.issued,
			Dropped:        iv.dropped,
			DispatchLagMax: ms(int64(iv.lagMax)),
			CPUPercent:     round(iv.cpu, 1),
			Ops:            iv.ops,
		}
		mid := (iv.start.Sub(ref) + iv.end.Sub(ref)) / 2
		switch i, _ := p.StageAt(mid); {
		case start.IsZero() || i < 0:
			ir.Stage = "setup"
		case i >= len(p.Stages):
			ir.Stage = "close"
		default:
			ir.Stage = p.Stages[i].Name
			ir.Warmup = p.Stages[i].Warmup
		}
		if w := iv.end.Sub(iv.start); w > 0 && !start.IsZero() {
			ir.TargetRate = round(p.Expected(iv.start.Sub(ref), iv.end.Sub(ref))/w.Seconds(), 3)
		}
		out = append(out, ir)
	}
	return out
}

// generatorResult reports on the generator itself: what it sent and
// dropped, how late, its CPU, and warnings when it may have distorted the
// measurement.
func (r *Run) generatorResult(clamped int64, interrupted bool) GeneratorResult {
	p := r.cfg.Profile
	g := GeneratorResult{
		Expected:    round(p.Expected(0, p.Duration()), 1),
		Issued:      r.issued.Load(),
		Dropped:     r.dropped.Load(),
		DispatchLag: summarize(r.dispatchLag),
		Clamped:     clamped,
		GOMAXPROCS:  runtime.GOMAXPROCS(0),
		Calls:       r.driveCalls,
	}
	g.CPUUserSeconds = round(r.cpuUser.Seconds(), 3)
	g.CPUSystemSeconds = round(r.cpuSys.Seconds(), 3)
	if r.driveWall > 0 {
		g.CPUPercent = round(100*(r.cpuUser+r.cpuSys).Seconds()/r.driveWall.Seconds(), 1)
	}
	if r.driveCalls > 0 {
		g.CPUMicrosPerCall = round(float64((r.cpuUser+r.cpuSys).Microseconds())/float64(r.driveCalls), 2)
	}
	g.Warnings = r.generatorWarnings(g, interrupted)
	g.Behind = g.Dropped > 0 || time.Duration(g.DispatchLag.P99*1e6) > r.cfg.LagThreshold
	if math.IsNaN(g.CPUPercent) {
		g.CPUPercent = 0
	}
	return g
}

// generatorWarnings says, in words, where the generator may have failed to
// deliver the offered load on time.
func (r *Run) generatorWarnings(g GeneratorResult, interrupted bool) []string {
	var w []string
	if g.Dropped > 0 {
		w = append(w, fmt.Sprintf("%d arrivals were dropped (queue full or not sent before the drain deadline): the offered load was not fully delivered", g.Dropped))
	}
	if lagP99 := time.Duration(g.DispatchLag.P99 * 1e6); lagP99 > r.cfg.LagThreshold {
		w = append(w, fmt.Sprintf("dispatch lag p99 %s exceeds %s: the generator could not send on time (latencies still count from intended times)", fmtMs(g.DispatchLag.P99), r.cfg.LagThreshold))
	}
	if g.CPUPercent > 0.9*100*float64(g.GOMAXPROCS) {
		w = append(w, fmt.Sprintf("generator used %.0f%% CPU of %d cores: it may be the bottleneck", g.CPUPercent, g.GOMAXPROCS))
	}
	if g.Clamped > 0 {
		w = append(w, fmt.Sprintf("%d latencies exceeded %s and were recorded as %s", g.Clamped, time.Duration(histHighest), time.Duration(histHighest)))
	}
	if interrupted {
		w = append(w, "the run was interrupted before the profile finished")
	}
	return w
}
