package configpush

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/posfleet/posfleet/server/audit"
)

// PaymentSignals reports how a terminal's payments go. The server connects
// it to the payment service; config push only reads it, so payments never
// depend on config push. PaymentStats is called with the engine's lock held
// for every terminal of a gated rollout's scope, once per evaluation
// interval: it must answer from memory without blocking, and may be called
// concurrently with the payments it counts.
type PaymentSignals interface {
	// PaymentStats returns the terminal's cumulative counters since the
	// server started (zero for a terminal that has not paid).
	PaymentStats(terminalID string) PaymentStats
}

// PaymentStats are cumulative Authorize outcome counters.
type PaymentStats struct {
	// Payments counts decided authorizations (replays excluded).
	Payments uint64
	// Approved counts approvals; SystemErrors responses with code 96 and
	// calls that failed inside the server.
	Approved, SystemErrors uint64
	// Latency is the total handling time of the counted payments.
	Latency time.Duration
}

func (a PaymentStats) add(b PaymentStats) PaymentStats {
	return PaymentStats{a.Payments + b.Payments, a.Approved + b.Approved, a.SystemErrors + b.SystemErrors, a.Latency + b.Latency}
}

// sub returns a-b, clamped at zero (a terminal that left the cohort takes its
// counts with it).
func (a PaymentStats) sub(b PaymentStats) PaymentStats {
	d := func(x, y uint64) uint64 {
		if x < y {
			return 0
		}
		return x - y
	}
	lat := a.Latency - b.Latency
	if lat < 0 {
		lat = 0
	}
	return PaymentStats{d(a.Payments, b.Payments), d(a.Approved, b.Approved), d(a.SystemErrors, b.SystemErrors), lat}
}

// ApprovalRatio is approved / payments (0 without payments).
func (a PaymentStats) ApprovalRatio() float64 { return ratio(a.Approved, a.Payments) }

// SystemErrorRatio is system errors / payments (0 without payments).
func (a PaymentStats) SystemErrorRatio() float64 { return ratio(a.SystemErrors, a.Payments) }

// MeanLatency is the mean handling time (0 without payments).
func (a PaymentStats) MeanLatency() time.Duration {
	if a.Payments == 0 {
		return 0
	}
	return a.Latency / time.Duration(a.Payments)
}

func ratio(n, d uint64) float64 {
	if d == 0 {
		return 0
	}
	return float64(n) / float64(d)
}

// PaymentGate makes a stage wait for payment evidence before it advances:
// the terminals running the new layer (the treatment) must take payments
// as well as the reference: terminals of the scope not yet in the rollout
// over the same period, or, when those paid too little, the treatment's own
// payments before the stage started.
type PaymentGate struct {
	// SoakTime is how long a stage's payments are watched before it may
	// advance or complete.
	SoakTime time.Duration `json:"soak"`
	// MinPayments is the number of treatment payments needed to judge
	// (DefaultGateMinPayments when zero); fewer, and the stage waits.
	MinPayments uint64 `json:"minp,omitempty"`
	// MaxApprovalDrop halts when the treatment's approval ratio is lower
	// than the reference's by more than this (DefaultMaxApprovalDrop when
	// zero).
	MaxApprovalDrop float64 `json:"mad,omitempty"`
	// MaxSystemErrorIncrease halts when the treatment's system-error (96)
	// ratio exceeds the reference's by more than this
	// (DefaultMaxSystemErrorIncrease when zero).
	MaxSystemErrorIncrease float64 `json:"msei,omitempty"`
	// MaxLatencyIncrease halts when the treatment's mean Authorize latency
	// exceeds the reference's by more than this fraction
	// (DefaultMaxLatencyIncrease when zero; 1 means twice as slow).
	MaxLatencyIncrease float64 `json:"mli,omitempty"`
	// AutoRollback aborts the rollout on a breach, so that its terminals
	// fall back to the previous layer, instead of only halting it.
	AutoRollback bool `json:"arb,omitempty"`
}

// Payment gate defaults and limits.
const (
	DefaultGateMinPayments        = 20
	DefaultMaxApprovalDrop        = 0.05
	DefaultMaxSystemErrorIncrease = 0.02
	DefaultMaxLatencyIncrease     = 1.0
	MaxGateMinPayments            = 1_000_000_000
	MaxGateLatencyIncrease        = 100
)

// normalize fills the gate's defaults.
func (g PaymentGate) normalize() PaymentGate {
	if g.MinPayments == 0 {
		g.MinPayments = DefaultGateMinPayments
	}
	if g.MaxApprovalDrop == 0 {
		g.MaxApprovalDrop = DefaultMaxApprovalDrop
	}
	if g.MaxSystemErrorIncrease == 0 {
		g.MaxSystemErrorIncrease = DefaultMaxSystemErrorIncrease
	}
	if g.MaxLatencyIncrease == 0 {
		g.MaxLatencyIncrease = DefaultMaxLatencyIncrease
	}
	return g
}

func (g *PaymentGate) validate(v *violations) {
	if g == nil {
		return
	}
	const f = "rollout.payment_gate."
	if g.SoakTime < 0 || g.SoakTime > MaxMinStageDuration {
		v.add(f+"soak_time", "must be between 0 and %s", MaxMinStageDuration)
	}
	if g.MinPayments > MaxGateMinPayments {
		v.add(f+"min_payments", "must be at most %d", MaxGateMinPayments)
	}
	for _, r := range []struct {
		name string
		x    float64
		max  float64
	}{{"max_approval_drop", g.MaxApprovalDrop, 1}, {"max_system_error_increase", g.MaxSystemErrorIncrease, 1}, {"max_latency_increase", g.MaxLatencyIncrease, MaxGateLatencyIncrease}} {
		if math.IsNaN(r.x) || r.x < 0 || r.x > r.max {
			v.add(f+r.name, "must be between 0 and %g", r.max)
		}
	}
}

// GateStatus is the latest payment-gate judgement of a rollout's current
// stage.
type GateStatus struct {
	// Since is when the stage's watch started (stage start, resume or
	// server start).
	Since time.Time
	// Treatment counts the payments of the terminals running the rollout's
	// layer since then; TreatmentTerminals how many terminals that is.
	Treatment          PaymentStats
	TreatmentTerminals uint64
	// Reference is what the treatment is compared with; ReferenceKind says
	// which: "control" (terminals not yet in the rollout, same period),
	// "before" (the treatment before the stage) or "" (no reference yet).
	Reference     PaymentStats
	ReferenceKind string
	// Verdict is "waiting", "passed" or "breached"; Reason explains it with
	// the numbers.
	Verdict string
	Reason  string
}

// gateState is a rollout's payment watch of its current stage.
type gateState struct {
	stage int
	epoch uint64
	since time.Time
	// base holds the counters at since: treatment, control, and the
	// treatment's counters then (its history before the stage).
	baseTreat, baseCtrl PaymentStats
	// terminals is the treatment's size at since.
	terminals uint64
	last      GateStatus
}

// cohortStats sums the counters of r's treatment (terminals it includes
// and, under a maintenance window, has released its version to) and control
// (the other terminals of its scope, which run the previous layer). Called
// with mu held.
func (e *Engine) cohortStats(r *rollout) (treat, ctrl PaymentStats, nTreat uint64) {
	for _, t := range e.termsIn(r.rec.Scope) {
		st := e.signals.PaymentStats(t.ref.TerminalID)
		if c, ok := r.includes(t.ref.TerminalID); ok && e.released(r, c, t) {
			treat = treat.add(st)
			nTreat++
		} else {
			ctrl = ctrl.add(st)
		}
	}
	return treat, ctrl, nTreat
}

// judgeGate updates r's payment-gate status: it starts a new watch when the
// stage or health window changed, then compares the treatment's payments
// since with the reference. Called with mu held, from the evaluation loop.
func (e *Engine) judgeGate(r *rollout, now time.Time) {
	g := *r.rec.Plan.Gate // normalized when published
	treat, ctrl, n := e.cohortStats(r)
	gs := r.gate
	// Under a maintenance window the treatment grows as windows open; the
	// watch restarts then, so that a newly released terminal's payments on
	// the old layer never count as the new layer's.
	grew := r.rec.Plan.Window != nil && gs != nil && gs.terminals != n
	if gs == nil || gs.stage != r.rec.Stage || gs.epoch != r.rec.HealthEpoch || grew {
		gs = &gateState{stage: r.rec.Stage, epoch: r.rec.HealthEpoch, since: now, baseTreat: treat, baseCtrl: ctrl, terminals: n}
		r.gate = gs
	}
	st := GateStatus{Since: gs.since, Treatment: treat.sub(gs.baseTreat), TreatmentTerminals: n, Verdict: "waiting"}
	switch c := ctrl.sub(gs.baseCtrl); {
	case c.Payments >= g.MinPayments:
		st.Reference, st.ReferenceKind = c, "control"
	case gs.baseTreat.Payments >= g.MinPayments:
		st.Reference, st.ReferenceKind = gs.baseTreat, "before"
	}
	t, ref := st.Treatment, st.Reference
	numbers := fmt.Sprintf("treatment %d terminals, %d payments, approval %.3f, system errors %.3f, mean latency %s",
		n, t.Payments, t.ApprovalRatio(), t.SystemErrorRatio(), t.MeanLatency())
	if st.ReferenceKind != "" {
		numbers += fmt.Sprintf("; reference (%s) %d payments, approval %.3f, system errors %.3f, mean latency %s",
			st.ReferenceKind, ref.Payments, ref.ApprovalRatio(), ref.SystemErrorRatio(), ref.MeanLatency())
	}
	switch {
	case t.Payments < g.MinPayments:
		st.Reason = fmt.Sprintf("waiting for %d payments: %s", g.MinPayments, numbers)
	case st.ReferenceKind != "" && t.ApprovalRatio() < ref.ApprovalRatio()-g.MaxApprovalDrop:
		st.Verdict, st.Reason = "breached", fmt.Sprintf("approval ratio dropped by more than %.3f: %s", g.MaxApprovalDrop, numbers)
	case st.ReferenceKind != "" && t.SystemErrorRatio() > ref.SystemErrorRatio()+g.MaxSystemErrorIncrease:
		st.Verdict, st.Reason = "breached", fmt.Sprintf("system-error ratio rose by more than %.3f: %s", g.MaxSystemErrorIncrease, numbers)
	case st.ReferenceKind != "" && ref.Payments > 0 && float64(t.MeanLatency()) > float64(ref.MeanLatency())*(1+g.MaxLatencyIncrease):
		st.Verdict, st.Reason = "breached", fmt.Sprintf("mean latency rose by more than %.0f%%: %s", 100*g.MaxLatencyIncrease, numbers)
	case now.Sub(gs.since) < g.SoakTime:
		st.Reason = fmt.Sprintf("soaking until %s: %s", gs.since.Add(g.SoakTime).Format(time.RFC3339), numbers)
	case st.ReferenceKind == "":
		st.Verdict, st.Reason = "passed", "soak done without a reference to compare with: "+numbers
	default:
		st.Verdict, st.Reason = "passed", "soak done within bounds: "+numbers
	}
	gs.last = st
}

// gateBlocks applies the payment gate of r's current stage in evaluate: a
// breach halts the rollout (or aborts it with auto-rollback) and is
// audited with its numbers; anything but a pass holds the stage. It reports
// whether evaluate must stop. Called with mu held.
func (e *Engine) gateBlocks(r *rollout, now time.Time) bool {
	if r.rec.Plan.Gate == nil || e.signals == nil {
		return false
	}
	if r.gate == nil || r.gate.stage != r.rec.Stage || r.gate.epoch != r.rec.HealthEpoch {
		e.judgeGate(r, now)
	}
	st := r.gate.last
	switch st.Verdict {
	case "breached":
		e.recordGate(r, st)
		reason := fmt.Sprintf("payment gate breached in stage %d: %s", r.rec.Stage+1, st.Reason)
		if r.rec.Plan.Gate.AutoRollback {
			if e.abortLocked(r, reason, audit.Actor{Name: "system"}, true) {
				e.logger.Warn("rollout rolled back by its payment gate", "rollout", r.id, "reason", reason)
			}
			return true
		}
		rec := r.rec
		rec.State, rec.Reason, rec.Updated = StateHalted, reason, now
		if e.storeChange(r, rec, nil, audit.Actor{Name: "system"}, "halted") {
			e.logger.Warn("rollout halted by its payment gate", "rollout", r.id, "reason", reason)
		}
		return true
	case "passed":
		return false
	}
	return true
}

// recordGate audits a gate decision with its numbers.
func (e *Engine) recordGate(r *rollout, st GateStatus) {
	t, ref := st.Treatment, st.Reference
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', 4, 64) }
	e.record(audit.Event{
		Type: audit.RolloutChanged, Actor: "system",
		MerchantID: r.rec.Scope.MerchantID, StoreID: r.rec.Scope.StoreID, TerminalID: r.rec.Scope.TerminalID,
		Message: fmt.Sprintf("rollout %s payment gate %s in stage %d", r.id, st.Verdict, r.rec.Stage+1),
		Attributes: map[string]string{
			"rollout_id": r.id, "stage": strconv.Itoa(r.rec.Stage + 1), "verdict": st.Verdict, "reason": st.Reason,
			"treatment_terminals": strconv.FormatUint(st.TreatmentTerminals, 10),
			"treatment_payments":  strconv.FormatUint(t.Payments, 10), "treatment_approval_ratio": f(t.ApprovalRatio()),
			"treatment_system_error_ratio": f(t.SystemErrorRatio()), "treatment_mean_latency": t.MeanLatency().String(),
			"reference": st.ReferenceKind, "reference_payments": strconv.FormatUint(ref.Payments, 10),
			"reference_approval_ratio": f(ref.ApprovalRatio()), "reference_system_error_ratio": f(ref.SystemErrorRatio()),
			"reference_mean_latency": ref.MeanLatency().String(),
		},
	})
}
