package configpush_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/configpush"
)

// fakeSignals is a settable PaymentSignals.
type fakeSignals struct {
	mu    sync.Mutex // guards stats
	stats map[string]configpush.PaymentStats
}

func (f *fakeSignals) PaymentStats(tid string) configpush.PaymentStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats[tid]
}

// pay adds n payments of terminal tid, approved or declined, each taking
// latency.
func (f *fakeSignals) pay(tid string, n uint64, approved bool, latency time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stats[tid]
	s.Payments += n
	if approved {
		s.Approved += n
	}
	s.Latency += time.Duration(n) * latency
	f.stats[tid] = s
}

// gateEnv is an engine with payment signals over 100 terminals of M1/S1.
func gateEnv(t *testing.T) (*env, *fakeSignals, []string) {
	dir := newFakeDir()
	ids := tids("T", 100)
	dir.add("M1", "S1", ids...)
	sig := &fakeSignals{stats: map[string]configpush.PaymentStats{}}
	e := &env{t: t, dir: t.TempDir(), fleet: dir, clock: newClock(), signals: sig}
	e.open()
	return e, sig, ids
}

// waitRollout polls rollout id until cond holds (the evaluation loop runs
// every 5ms).
func (e *env) waitRollout(id string, cond func(configpush.Rollout) bool) configpush.Rollout {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := e.rollout(id)
		if cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("rollout %s stuck: state %s stage %d reason %q gate %+v", id, r.State, r.Stage, r.Reason, r.Gate)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPaymentGateHaltsOrRollsBackADecliningStage(t *testing.T) {
	for _, autoRollback := range []bool{false, true} {
		t.Run(map[bool]string{false: "halt", true: "rollback"}[autoRollback], func(t *testing.T) {
			e, sig, ids := gateEnv(t)
			e.publish(merchant, &configpush.Settings{DailyLimit: usd(500000)}, all)
			ro := e.publish(merchant, &configpush.Settings{PerTransactionLimit: usd(1)}, configpush.Plan{
				StagePercents: []uint32{20, 100}, AutoAdvance: true,
				Gate: &configpush.PaymentGate{SoakTime: time.Hour, MinPayments: 50, AutoRollback: autoRollback},
			})
			var treated, control []string
			for _, tid := range ids {
				if e.eff(tid).RolloutID == ro.ID {
					treated = append(treated, tid)
				} else {
					control = append(control, tid)
				}
			}
			e.ackAll(configpush.AckApplied, treated...)
			// Let the gate take its baseline, then the new layer's terminals
			// decline while the others approve.
			e.waitRollout(ro.ID, func(r configpush.Rollout) bool { return r.Gate != nil })
			for _, tid := range treated {
				sig.pay(tid, 5, false, time.Millisecond)
			}
			for _, tid := range control {
				sig.pay(tid, 5, true, time.Millisecond)
			}
			want := configpush.StateHalted
			if autoRollback {
				want = configpush.StateAborted
			}
			got := e.waitRollout(ro.ID, func(r configpush.Rollout) bool { return r.State == want })
			if got.Stage != 0 || !strings.Contains(got.Reason, "approval ratio dropped") || !strings.Contains(got.Reason, "reference (control)") {
				t.Errorf("rollout %s at stage %d: %q; want the approval breach in stage 1", got.State, got.Stage, got.Reason)
			}
			for _, tid := range treated {
				lim := e.eff(tid).Settings.PerTransactionLimit
				if autoRollback && lim != nil {
					t.Fatalf("%s keeps the declining limit %v after the automatic rollback", tid, lim)
				}
				if !autoRollback && lim == nil {
					t.Fatalf("%s lost the limit on a halt", tid)
				}
			}
			for _, tid := range control {
				if lim := e.eff(tid).Settings.PerTransactionLimit; lim != nil {
					t.Fatalf("%s outside the first stage got the limit %v", tid, lim)
				}
			}
			var found bool
			if err := e.audit.Flush(t.Context()); err != nil {
				t.Fatal(err)
			}
			evs, _, err := e.audit.List(t.Context(), audit.Filter{Type: audit.RolloutChanged}, 100, "")
			if err != nil {
				t.Fatal(err)
			}
			var rolledBack bool
			for _, ev := range evs {
				if ev.Attributes["verdict"] == "breached" && ev.Attributes["rollout_id"] == ro.ID {
					found = ev.Attributes["treatment_payments"] != "" && ev.Attributes["reference_approval_ratio"] == "1.0000"
				}
				if ev.Attributes["rollout_id"] == ro.ID && ev.Attributes["state"] == "ABORTED" {
					rolledBack = ev.Attributes[configpush.RolledBackByAttr] == "payment_gate"
				}
			}
			if !found {
				t.Errorf("no audited gate decision with its numbers")
			}
			// The automatic rollback's event names the gate, which makes it
			// a rollout_halted webhook.
			if rolledBack != autoRollback {
				t.Errorf("audited an ABORTED change marked rolled back by the gate: %v, want %v", rolledBack, autoRollback)
			}
		})
	}
}

func TestPaymentGateAdvancesAfterAHealthySoak(t *testing.T) {
	e, sig, ids := gateEnv(t)
	e.publish(merchant, &configpush.Settings{ReceiptFooter: ptr("old")}, all)
	ro := e.publish(merchant, &configpush.Settings{ReceiptFooter: ptr("new")}, configpush.Plan{
		StagePercents: []uint32{20, 100}, AutoAdvance: true,
		Gate: &configpush.PaymentGate{SoakTime: time.Hour, MinPayments: 50},
	})
	e.ackAll(configpush.AckApplied, ids...)
	e.waitRollout(ro.ID, func(r configpush.Rollout) bool { return r.Gate != nil })
	for i, tid := range ids {
		sig.pay(tid, 10, i%10 != 0, time.Millisecond) // 90% approvals everywhere
	}
	got := e.waitRollout(ro.ID, func(r configpush.Rollout) bool {
		return r.Gate != nil && strings.HasPrefix(r.Gate.Reason, "soaking")
	})
	if got.Stage != 0 {
		t.Fatalf("advanced to stage %d before the soak ended", got.Stage+1)
	}
	e.clock.Advance(time.Hour)
	got = e.waitRollout(ro.ID, func(r configpush.Rollout) bool { return r.Stage == 1 })
	if got.State != configpush.StateRunning {
		t.Errorf("after a healthy soak: %s, want RUNNING in stage 2", got.State)
	}
}

func TestRolloutsStandStillDuringAFreeze(t *testing.T) {
	dir := newFakeDir()
	ids := tids("T", 50)
	dir.add("M1", "S1", ids...)
	e := newEnv(t, dir)
	e.publish(merchant, &configpush.Settings{ReceiptFooter: ptr("old")}, all)
	now := e.clock.Now()
	ro := e.publish(merchant, &configpush.Settings{ReceiptFooter: ptr("new")}, configpush.Plan{
		StagePercents: []uint32{20, 100}, AutoAdvance: true,
		Freezes: []configpush.Freeze{{Start: now.Add(-time.Minute), End: now.Add(time.Hour)}},
	})
	e.ackAll(configpush.AckApplied, ids...)
	time.Sleep(50 * time.Millisecond) // ten evaluation intervals
	if got := e.rollout(ro.ID); got.Stage != 0 || got.State != configpush.StateRunning {
		t.Fatalf("during the freeze: %s at stage %d, want RUNNING at stage 1", got.State, got.Stage+1)
	}
	e.clock.Advance(time.Hour)
	e.waitRollout(ro.ID, func(r configpush.Rollout) bool { return r.Stage == 1 })
	if _, err := e.eng.Publish(t.Context(), configpush.PublishRequest{Scope: merchant, Settings: &configpush.Settings{ReceiptHeader: ptr("x")},
		Plan: configpush.Plan{Freezes: []configpush.Freeze{{Start: now, End: now}}}}, admin); violationFields(err) == nil {
		t.Errorf("an empty freeze period was accepted: %v", err)
	}
}
