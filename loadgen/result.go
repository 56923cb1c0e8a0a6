package loadgen

import (
	"math"
	"sort"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// ResultVersion is the version of the report.json schema.
const ResultVersion = 1

// Result is everything a run measured. It is written as report.json; times
// in milliseconds, rates per second.
type Result struct {
	// Version is ResultVersion.
	Version int `json:"version"`
	// Profile is the profile's name.
	Profile string `json:"profile"`
	// Arrivals is "poisson" or "uniform".
	Arrivals string `json:"arrivals"`
	// Environment says which generator ran, where.
	Environment Environment `json:"environment"`
	// Info holds free-form facts about the run (target, terminals, mix…).
	Info map[string]string `json:"info,omitempty"`
	// StartTime is when the profile started.
	StartTime time.Time `json:"start_time"`
	// EndTime is the end of the measured window: the end of the profile, or
	// the last error-free completion of a measured arrival if later, or,
	// for an interrupted run, when dispatching stopped.
	EndTime time.Time `json:"end_time"`
	// MeasuredSeconds is the measured window: the non-warm-up stages'
	// durations, extended past the end of the profile to the last
	// error-free completion of an arrival intended in them. Failed and
	// cancelled calls (such as those cut off at the drain deadline) never
	// extend it. For an interrupted run it is the part of the non-warm-up
	// stages that elapsed before dispatching stopped.
	MeasuredSeconds float64 `json:"measured_seconds"`
	// TargetRate is the profile's mean rate over the measured stages.
	TargetRate float64 `json:"target_rate"`
	// AchievedRate is arrivals served without error per second of the
	// measured window.
	AchievedRate float64 `json:"achieved_rate"`
	// Interrupted is true when the run was cut short.
	Interrupted bool `json:"interrupted,omitempty"`
	// Ops are the operations, warm-up excluded, by name.
	Ops []OpResult `json:"ops"`
	// Stages are the setup phase, the profile's stages and the close phase.
	Stages []StageResult `json:"stages"`
	// Intervals are the per-interval series (warm-up included).
	Intervals []IntervalResult `json:"intervals"`
	// Generator reports the generator's own health.
	Generator GeneratorResult `json:"generator"`
	// Rollout is the config propagation measurement of a config-rollout run.
	Rollout *RolloutResult `json:"rollout,omitempty"`
	// Cluster is the per-node account of a run against several targets.
	Cluster *ClusterResult `json:"cluster,omitempty"`
	// Batches is the account of the fleet's batch closes at the end of the
	// run (fleet driver).
	Batches *BatchesResult `json:"batches,omitempty"`
	// SLOs are the checks evaluated against this result.
	SLOs []SLOResult `json:"slos,omitempty"`
}

// Latency summarises a histogram in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

// SpectrumPoint is one point of a percentile spectrum.
type SpectrumPoint struct {
	Percentile float64 `json:"percentile"`
	Ms         float64 `json:"ms"`
}

// OutcomeResult is one outcome of one operation.
type OutcomeResult struct {
	// Outcome is "ok", "declined:CODE", "error:STATUS" or "dropped:REASON".
	Outcome string `json:"outcome"`
	Count   int64  `json:"count"`
	// Latency of the timed calls with this outcome (absent for drops).
	Latency *Latency `json:"latency,omitempty"`
}

// OpResult is one operation's measurements, warm-up excluded.
type OpResult struct {
	Name string `json:"name"`
	// Count is every call: completed, failed and dropped.
	Count    int64 `json:"count"`
	OK       int64 `json:"ok"`
	Declined int64 `json:"declined"`
	Errors   int64 `json:"errors"`
	// ErrorRate is Errors / Count.
	ErrorRate float64 `json:"error_rate"`
	// AchievedRate is calls without error intended during the measured
	// profile stages, per second of the measured window.
	AchievedRate float64 `json:"achieved_rate"`
	// Latency is from intended time to response.
	Latency Latency `json:"latency"`
	// Service is from actual send to response.
	Service Latency `json:"service"`
	// SendLag is from intended time to actual send.
	SendLag  Latency         `json:"send_lag"`
	Outcomes []OutcomeResult `json:"outcomes"`
	// Spectrum is the latency percentile spectrum.
	Spectrum []SpectrumPoint `json:"spectrum"`
}

// StageOp is one operation within a stage.
type StageOp struct {
	Name    string  `json:"name"`
	Count   int64   `json:"count"`
	Errors  int64   `json:"errors"`
	Latency Latency `json:"latency"`
}

// StageResult is one stage of the run.
type StageResult struct {
	Name string `json:"name"`
	// Kind is "setup", "profile" or "close".
	Kind   string `json:"kind"`
	Warmup bool   `json:"warmup,omitempty"`
	// StartSeconds is the stage's offset from the profile start (profile
	// stages only).
	StartSeconds    float64 `json:"start_s"`
	DurationSeconds float64 `json:"duration_s"`
	// TargetRate is the stage's mean rate from the profile.
	TargetRate float64 `json:"target_rate"`
	// Issued is how many arrivals the generator dispatched in the stage.
	Issued int64 `json:"issued"`
	// AchievedRate is arrivals intended in the stage and served without
	// error, per second of the stage.
	AchievedRate float64   `json:"achieved_rate"`
	Ops          []StageOp `json:"ops"`
}

// IntervalOp is one operation's calls completed in one interval.
type IntervalOp struct {
	Count  int64   `json:"count"`
	Errors int64   `json:"errors"`
	P50    float64 `json:"p50_ms"`
	P90    float64 `json:"p90_ms"`
	P99    float64 `json:"p99_ms"`
	Max    float64 `json:"max_ms"`
}

// IntervalResult is one interval of the run.
type IntervalResult struct {
	// StartSeconds and EndSeconds are offsets from the profile start
	// (negative during setup).
	StartSeconds float64 `json:"start_s"`
	EndSeconds   float64 `json:"end_s"`
	Stage        string  `json:"stage"`
	Warmup       bool    `json:"warmup,omitempty"`
	// TargetRate is the profile's mean rate over the interval.
	TargetRate float64 `json:"target_rate"`
	// Issued is arrivals dispatched during the interval.
	Issued int64 `json:"issued"`
	// Dropped is arrivals dropped during the interval.
	Dropped int64 `json:"dropped,omitempty"`
	// DispatchLagMax is the generator's largest dispatch lag in the interval.
	DispatchLagMax float64 `json:"dispatch_lag_max_ms"`
	// CPUPercent is the generator process's CPU use (100 = one core).
	CPUPercent float64               `json:"cpu_percent"`
	Ops        map[string]IntervalOp `json:"ops"`
}

// GeneratorResult is the generator's own health: if it fell behind, the
// latencies above understate nothing (they are timed from intended times),
// but the offered load was late or incomplete, and this says so.
type GeneratorResult struct {
	// Expected is the profile's expected arrival count.
	Expected float64 `json:"expected"`
	// Issued is how many arrivals were dispatched.
	Issued int64 `json:"issued"`
	// Dropped counts arrivals that found their queue full.
	Dropped int64 `json:"dropped"`
	// DispatchLag is intended time to hand-off to the user's queue: pure
	// generator delay (warm-up excluded).
	DispatchLag Latency `json:"dispatch_lag"`
	// Clamped counts values beyond the histogram range (5 minutes).
	Clamped int64 `json:"clamped,omitempty"`
	// CPU use of the generator process during the profile.
	CPUUserSeconds   float64 `json:"cpu_user_s"`
	CPUSystemSeconds float64 `json:"cpu_system_s"`
	// CPUPercent is CPU seconds per wall second (100 = one core).
	CPUPercent float64 `json:"cpu_percent"`
	// CPUMicrosPerCall is CPU time per RPC issued during the profile.
	CPUMicrosPerCall float64 `json:"cpu_us_per_call"`
	// Calls is the number of RPCs made during the profile.
	Calls      int64 `json:"calls"`
	GOMAXPROCS int   `json:"gomaxprocs"`
	// Behind is true when the generator could not offer the load on time.
	Behind   bool     `json:"behind"`
	Warnings []string `json:"warnings,omitempty"`
}

// RolloutResult measures a config publish: how long until every watching
// terminal received the new version.
type RolloutResult struct {
	// RolloutID and Version are from PublishConfig.
	RolloutID string `json:"rollout_id"`
	Version   uint64 `json:"version"`
	// PublishedSeconds is the publish time as an offset from the profile start.
	PublishedSeconds float64 `json:"published_s"`
	// Terminals is how many terminals were watching; Reached how many got
	// the new version before the run ended.
	Terminals int `json:"terminals"`
	Reached   int `json:"reached"`
	// AllReachedMs is the time from publish until the last terminal had the
	// version; absent when some never did.
	AllReachedMs *float64 `json:"all_reached_ms,omitempty"`
	// Propagation summarises per-terminal publish-to-receipt times.
	Propagation Latency `json:"propagation"`
	// Error is set when the publish itself failed.
	Error string `json:"error,omitempty"`
	// Gate is the payment gate's verdict on a harmful publish
	// (FleetConfig.RolloutGate).
	Gate *GateResult `json:"gate,omitempty"`
}

// GateResult is how the payment gate handled a harmful config rollout.
type GateResult struct {
	// Rollouts published (one per merchant) and how many the gate stopped
	// (halted or rolled back) before the run ended.
	Rollouts int `json:"rollouts"`
	Stopped  int `json:"stopped"`
	// StoppedMs is the time from publish until the last of them stopped.
	StoppedMs float64 `json:"stopped_ms"`
	// Stage is the furthest stage (1-based) any of them reached.
	Stage int `json:"stage"`
	// Terminals is how many terminals got the harmful layer, Payments how
	// many payments they made while the gate watched them.
	Terminals uint64 `json:"terminals"`
	Payments  uint64 `json:"payments"`
	// State and Reason are those of the first stopped rollout.
	State  string `json:"state,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// BatchesResult is the account of the batch closes that end a fleet run:
// each terminal closes its open batch with its own totals, and the server
// says whether they match its ledger.
type BatchesResult struct {
	// Closed counts the closes the server answered, InBalance and
	// OutOfBalance split them; Failed counts the closes that got no
	// answer.
	Closed       int64 `json:"closed"`
	InBalance    int64 `json:"in_balance"`
	OutOfBalance int64 `json:"out_of_balance"`
	Failed       int64 `json:"failed"`
	// Balanced sums the terminals' own totals of the batches that closed
	// in balance: what the server's ledger holds for them, to the unit.
	Balanced TotalsResult `json:"balanced"`
	// UnknownReversed counts the authorizations whose answer never came
	// and which the client SDK reversed (reason TIMEOUT), finding them
	// approved: approvals the server made that the terminal was never told
	// of. They are in the reversal totals.
	UnknownReversed int64 `json:"unknown_reversed"`
}

// TotalsResult are a batch's totals in minor units, as in
// CloseBatchRequest.terminal_totals: sales exclude reversed ones, reversals
// count the reversed approvals.
type TotalsResult struct {
	SaleCount      uint64 `json:"sale_count"`
	SaleAmount     int64  `json:"sale_amount"`
	RefundCount    uint64 `json:"refund_count"`
	RefundAmount   int64  `json:"refund_amount"`
	ReversalCount  uint64 `json:"reversal_count"`
	ReversalAmount int64  `json:"reversal_amount"`
}

// Op returns the named operation's result, or nil.
func (r *Result) Op(name string) *OpResult {
	for i := range r.Ops {
		if r.Ops[i].Name == name {
			return &r.Ops[i]
		}
	}
	return nil
}

// summarize returns the latency summary of h.
func summarize(h *hdr.Histogram) Latency {
	if h == nil || h.TotalCount() == 0 {
		return Latency{}
	}
	v := h.ValueAtPercentilesSlice([]float64{50, 90, 99, 99.9})
	return Latency{
		Count: h.TotalCount(),
		Mean:  h.Mean() / 1e6,
		P50:   ms(v[0]),
		P90:   ms(v[1]),
		P99:   ms(v[2]),
		P999:  ms(v[3]),
		Max:   ms(h.Max()),
	}
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

// spectrumPercentiles are log-spaced towards 100: 0, 50, 68.4, 90, 96.8, 99,
// … 99.999, then 100 (the max).
func spectrumPercentiles() []float64 {
	var out []float64
	for k := 0; k <= 50; k++ {
		out = append(out, 100*(1-math.Pow(10, -float64(k)/10)))
	}
	return append(out, 100)
}

func spectrum(h *hdr.Histogram) []SpectrumPoint {
	if h == nil || h.TotalCount() == 0 {
		return nil
	}
	ps := spectrumPercentiles()
	v := h.ValueAtPercentilesSlice(ps)
	out := make([]SpectrumPoint, 0, len(v))
	for i, p := range ps {
		// Stop once the percentile needs more samples than were taken.
		if p < 100 && (100-p)/100*float64(h.TotalCount()) < 1 {
			continue
		}
		out = append(out, SpectrumPoint{Percentile: round(p, 4), Ms: ms(v[i])})
	}
	return out
}

func round(f float64, digits int) float64 {
	m := math.Pow(10, float64(digits))
	return math.Round(f*m) / m
}

// opAgg accumulates one operation across stages and outcomes.
type opAgg struct {
	lat      *hdr.Histogram
	outcomes map[Outcome]*hdr.Histogram
	drops    map[Outcome]int64
	measured int64 // non-error calls intended during measured profile stages
}

// buildOps aggregates the recordings into per-operation and per-stage
// results. measured reports whether a recorder stage counts towards the
// rates (a profile stage other than warm-up).
func buildOps(rec *recordings, tl *timeline, measuredSeconds float64) ([]OpResult, [][]StageOp) {
	aggs := map[string]*opAgg{}
	agg := func(op string) *opAgg {
		a := aggs[op]
		if a == nil {
			a = &opAgg{lat: newHist(), outcomes: map[Outcome]*hdr.Histogram{}, drops: map[Outcome]int64{}}
			aggs[op] = a
		}
		return a
	}
	nst := len(tl.names)
	stageLat := make([]map[string]*hdr.Histogram, nst)
	stageErr := make([]map[string]int64, nst)
	stageCnt := make([]map[string]int64, nst)
	for i := range nst {
		stageLat[i] = map[string]*hdr.Histogram{}
		stageErr[i] = map[string]int64{}
		stageCnt[i] = map[string]int64{}
	}
	isMeasured := func(stage int) bool { return stage > 0 && stage < nst-1 && !tl.warmup[stage] }
	for k, h := range rec.lat {
		histFor(stageLat[k.stage], k.op).Merge(h)
		stageCnt[k.stage][k.op] += h.TotalCount()
		if k.outcome.IsError() {
			stageErr[k.stage][k.op] += h.TotalCount()
		}
		if tl.warmup[k.stage] {
			continue
		}
		a := agg(k.op)
		a.lat.Merge(h)
		histFor(a.outcomes, k.outcome).Merge(h)
		if isMeasured(k.stage) && !k.outcome.IsError() {
			a.measured += h.TotalCount()
		}
	}
	for k, n := range rec.drops {
		stageCnt[k.stage][k.op] += n
		stageErr[k.stage][k.op] += n
		if tl.warmup[k.stage] {
			continue
		}
		agg(k.op).drops[k.outcome] += n
	}

	var ops []OpResult
	for name, a := range aggs {
		r := OpResult{
			Name:     name,
			Latency:  summarize(a.lat),
			Service:  summarize(rec.svc[name]),
			SendLag:  summarize(rec.lag[name]),
			Spectrum: spectrum(a.lat),
		}
		for o, h := range a.outcomes {
			l := summarize(h)
			r.Outcomes = append(r.Outcomes, OutcomeResult{Outcome: o.String(), Count: h.TotalCount(), Latency: &l})
			r.add(o, h.TotalCount())
		}
		for o, n := range a.drops {
			r.Outcomes = append(r.Outcomes, OutcomeResult{Outcome: o.String(), Count: n})
			r.add(o, n)
		}
		sort.Slice(r.Outcomes, func(i, j int) bool {
			if r.Outcomes[i].Count != r.Outcomes[j].Count {
				return r.Outcomes[i].Count > r.Outcomes[j].Count
			}
			return r.Outcomes[i].Outcome < r.Outcomes[j].Outcome
		})
		if r.Count > 0 {
			r.ErrorRate = float64(r.Errors) / float64(r.Count)
		}
		if measuredSeconds > 0 {
			r.AchievedRate = float64(a.measured) / measuredSeconds
		}
		ops = append(ops, r)
	}
	sort.Slice(ops, func(i, j int) bool { return opLess(ops[i].Name, ops[j].Name) })

	stages := make([][]StageOp, nst)
	for i := range nst {
		for op, h := range stageLat[i] {
			stages[i] = append(stages[i], StageOp{Name: op, Count: stageCnt[i][op], Errors: stageErr[i][op], Latency: summarize(h)})
		}
		for op, n := range stageCnt[i] {
			if stageLat[i][op] == nil {
				stages[i] = append(stages[i], StageOp{Name: op, Count: n, Errors: stageErr[i][op]})
			}
		}
		sort.Slice(stages[i], func(a, b int) bool { return opLess(stages[i][a].Name, stages[i][b].Name) })
	}
	return ops, stages
}

func (r *OpResult) add(o Outcome, n int64) {
	r.Count += n
	switch o.Class {
	case ClassOK:
		r.OK += n
	case ClassDeclined:
		r.Declined += n
	default:
		r.Errors += n
	}
}

// opLess orders operations with the transaction first, then by name.
func opLess(a, b string) bool {
	if (a == OpTxn) != (b == OpTxn) {
		return a == OpTxn
	}
	return a < b
}
