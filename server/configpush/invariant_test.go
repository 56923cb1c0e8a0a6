package configpush_test

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/posfleet/posfleet/server/configpush"
)

// TestVersionsMonotonicUnderRandomOperations drives the engine with a random
// mix of publishes at every scope, staged plans, acknowledgements, pauses,
// resumes, aborts, rebinds, new and retired terminals and restarts, and checks after
// every step that no terminal's version ever decreases, that a terminal
// whose settings changed got a higher version, and that a restart changes
// nothing a terminal sees.
func TestVersionsMonotonicUnderRandomOperations(t *testing.T) {
	steps := 200
	if testing.Short() {
		steps = 60
	}
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) { randomOperations(t, seed, steps) })
	}
}

func randomOperations(t *testing.T, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, 2))
	dir := newFakeDir()
	merchants := []string{"M1", "M2"}
	stores := []string{"S1", "S2"}
	n := 0
	newTerminal := func() configpush.TerminalRef {
		n++
		m, s := merchants[rng.IntN(2)], stores[rng.IntN(2)]
		return dir.add(m, s, fmt.Sprintf("T%07d", n))[0]
	}
	for range 40 {
		newTerminal()
	}
	for _, m := range merchants {
		for _, s := range stores {
			dir.add(m, s)
		}
	}
	e := newEnv(t, dir)

	seen := map[string]*configpush.Effective{}
	var rollouts []string
	check := func(step int, what string) {
		t.Helper()
		for _, ref := range dir.Terminals() {
			cfg := e.eff(ref.TerminalID)
			prev := seen[ref.TerminalID]
			if prev != nil {
				if cfg.Version < prev.Version {
					t.Fatalf("step %d (%s): %s version %d < %d", step, what, ref.TerminalID, cfg.Version, prev.Version)
				}
				if cfg.Version == prev.Version && !reflect.DeepEqual(cfg.Settings, prev.Settings) {
					t.Fatalf("step %d (%s): %s settings changed under the same version %d", step, what, ref.TerminalID, cfg.Version)
				}
			}
			seen[ref.TerminalID] = cfg
		}
	}
	pick := func() string {
		refs := dir.Terminals()
		return refs[rng.IntN(len(refs))].TerminalID
	}
	scopes := func() configpush.Scope {
		switch rng.IntN(4) {
		case 0:
			return configpush.Scope{}
		case 1:
			return configpush.Scope{MerchantID: merchants[rng.IntN(2)]}
		case 2:
			return configpush.Scope{MerchantID: merchants[rng.IntN(2)], StoreID: stores[rng.IntN(2)]}
		}
		return configpush.Scope{TerminalID: pick()}
	}
	plans := [][]uint32{nil, {50, 100}, {10, 40, 100}, {30, 100}}
	for step := range steps {
		var what string
		switch k := rng.IntN(20); {
		case k < 6:
			what = "publish"
			ro, err := e.eng.Publish(t.Context(), configpush.PublishRequest{
				Scope:    scopes(),
				Settings: &configpush.Settings{Extra: map[string]string{"step": fmt.Sprint(step)}, ReceiptHeader: ptr(fmt.Sprint(rng.IntN(3)))},
				Plan:     configpush.Plan{StagePercents: plans[rng.IntN(len(plans))], AutoAdvance: rng.IntN(2) == 0, MaxFailureRatio: 0.5},
			}, admin)
			if err != nil {
				t.Fatalf("step %d publish: %v", step, err)
			}
			rollouts = append(rollouts, ro.ID)
		case k < 11:
			what = "ack"
			for range 10 {
				tid := pick()
				if cfg, ok := e.eng.Effective(tid); ok && cfg.Version > 0 {
					res := configpush.AckApplied
					if rng.IntN(8) == 0 {
						res = configpush.AckRejected
					}
					if err := e.eng.Ack(t.Context(), tid, cfg.Version, res, ""); err != nil {
						t.Fatalf("step %d ack: %v", step, err)
					}
				}
			}
		case k < 15 && len(rollouts) > 0:
			id := rollouts[rng.IntN(len(rollouts))]
			switch rng.IntN(3) {
			case 0:
				what = "pause " + id
				e.eng.Pause(t.Context(), id, "", admin)
			case 1:
				what = "resume " + id
				e.eng.Resume(t.Context(), id, admin)
			default:
				what = "abort " + id
				e.eng.Abort(t.Context(), id, "", admin)
			}
		case k < 17:
			what = "rebind"
			tid := pick()
			dir.add(merchants[rng.IntN(2)], stores[rng.IntN(2)], tid)
			e.eng.TerminalChanged(tid)
		case k < 19:
			what = "provision"
			e.eng.TerminalChanged(newTerminal().TerminalID)
			if rng.IntN(3) == 0 {
				what = "provision and retire"
				tid := pick()
				dir.retire(tid)
				e.eng.TerminalChanged(tid)
				if _, ok := e.eng.Effective(tid); ok {
					t.Fatalf("step %d: retired %s still has a config", step, tid)
				}
				delete(seen, tid)
			}
		default:
			what = "restart"
			before := map[string]*configpush.Effective{}
			for _, ref := range dir.Terminals() {
				before[ref.TerminalID] = e.eff(ref.TerminalID)
			}
			e.restart()
			for tid, b := range before {
				got := e.eff(tid)
				if got.Version != b.Version || !reflect.DeepEqual(got.Settings, b.Settings) || got.RolloutID != b.RolloutID {
					t.Fatalf("step %d: restart changed %s from v%d %q to v%d %q", step, tid, b.Version, b.RolloutID, got.Version, got.RolloutID)
				}
			}
		}
		check(step, what)
	}
}
