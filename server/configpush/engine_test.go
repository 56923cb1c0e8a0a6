package configpush_test

import (
	"errors"
	"testing"

	"github.com/posfleet/posfleet/server/configpush"
)

func TestPublishPushesToWatchers(t *testing.T) {
	dir := newFakeDir()
	dir.add("M1", "S1", tids("A", 20)...)
	dir.add("M2", "S1", "B0000000")
	e := newEnv(t, dir)
	watchers := map[string]*configpush.Watcher{}
	for _, tid := range append(tids("A", 20), "B0000000") {
		w, err := e.eng.Watch(tid, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		watchers[tid] = w
	}
	ro := e.publish(merchant, &configpush.Settings{ReceiptHeader: ptr("hello")}, all)
	for _, tid := range tids("A", 20) {
		cfg, _, err := watchers[tid].Next(t.Context())
		if err != nil {
			t.Fatalf("Next(%s): %v", tid, err)
		}
		if cfg.Version != ro.Version || *cfg.Settings.ReceiptHeader != "hello" || cfg.RolloutID != ro.ID {
			t.Errorf("%s got version %d header %q rollout %q, want %d hello %s", tid, cfg.Version, *cfg.Settings.ReceiptHeader, cfg.RolloutID, ro.Version, ro.ID)
		}
	}
	// The other merchant's terminal got nothing: its next message is the
	// global publish below, not the merchant one.
	g := e.publish(global, &configpush.Settings{ReceiptFooter: ptr("bye")}, all)
	cfg, _, err := watchers["B0000000"].Next(t.Context())
	if err != nil || cfg.Version != g.Version {
		t.Fatalf("other merchant's watcher got %v, %v; want version %d", cfg, err, g.Version)
	}
}

func TestSlowWatcherNeverBlocksAndGetsLatest(t *testing.T) {
	dir := newFakeDir()
	dir.add("M1", "S1", "T0000001")
	e := newEnv(t, dir)
	w, err := e.eng.Watch("T0000001", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var last configpush.Rollout
	for i := range 50 { // nobody reads: every publish must still return
		last = e.publish(termT1, &configpush.Settings{Extra: map[string]string{"n": string(rune('a' + i%26))}}, all)
	}
	cfg, _, err := w.Next(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Version != last.Version {
		t.Errorf("slow watcher got version %d, want the latest %d", cfg.Version, last.Version)
	}
	// Resuming from the latest gives nothing until the next publish.
	w2, err := e.eng.Watch("T0000001", last.Version)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	next := e.publish(termT1, &configpush.Settings{}, all)
	cfg, _, err = w2.Next(t.Context())
	if err != nil || cfg.Version != next.Version {
		t.Errorf("resumed watcher got %v, %v; want version %d with no repeat", cfg, err, next.Version)
	}
}

func TestOfflineTerminalConvergesOnReconnect(t *testing.T) {
	dir := newFakeDir()
	dir.add("M1", "S1", "T0000001")
	e := newEnv(t, dir)
	first := e.publish(global, &configpush.Settings{ReceiptHeader: ptr("v1")}, all)
	// The terminal goes offline knowing first; two publishes happen.
	e.publish(merchant, &configpush.Settings{ReceiptHeader: ptr("v2")}, all)
	latest := e.publish(storeS1, &configpush.Settings{ReceiptFooter: ptr("v3")}, all)
	e.restart()
	cfg := e.next(e.watch("T0000001", first.Version))
	if cfg.Version != latest.Version || *cfg.Settings.ReceiptHeader != "v2" || *cfg.Settings.ReceiptFooter != "v3" {
		t.Errorf("reconnect got version %d header %q footer %q, want %d v2 v3", cfg.Version, *cfg.Settings.ReceiptHeader, *cfg.Settings.ReceiptFooter, latest.Version)
	}
	// A terminal ahead of the server (restored backup) is resynchronized.
	w2, err := e.eng.Watch("T0000001", latest.Version+100)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	if cfg, _, err := w2.Next(t.Context()); err != nil || cfg.Version != latest.Version {
		t.Errorf("terminal ahead got %v, %v; want version %d", cfg, err, latest.Version)
	}
}

func TestRebindAndRetire(t *testing.T) {
	dir := newFakeDir()
	dir.add("M1", "S1", "T0000001")
	dir.add("M2", "S2")
	e := newEnv(t, dir)
	e.publish(configpush.Scope{MerchantID: "M2"}, &configpush.Settings{ReceiptHeader: ptr("m2")}, all)
	e.publish(merchant, &configpush.Settings{ReceiptHeader: ptr("m1")}, all)
	before := e.eff("T0000001")
	if *before.Settings.ReceiptHeader != "m1" {
		t.Fatalf("header %q, want m1", *before.Settings.ReceiptHeader)
	}
	w, err := e.eng.Watch("T0000001", before.Version)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	dir.add("M2", "S2", "T0000001")
	e.eng.TerminalChanged("T0000001")
	cfg, _, err := w.Next(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// M2's layer is older than M1's, yet the rebound terminal's version grows.
	if *cfg.Settings.ReceiptHeader != "m2" || cfg.Version <= before.Version {
		t.Errorf("after rebind: header %q version %d, want m2 above %d", *cfg.Settings.ReceiptHeader, cfg.Version, before.Version)
	}
	e.restart()
	if got := e.eff("T0000001"); got.Version != cfg.Version {
		t.Errorf("after restart version %d, want %d", got.Version, cfg.Version)
	}
	w2, err := e.eng.Watch("T0000001", 0)
	if err != nil {
		t.Fatal(err)
	}
	dir.retire("T0000001")
	e.eng.TerminalChanged("T0000001")
	for {
		if _, _, err := w2.Next(t.Context()); err != nil {
			if !errors.Is(err, configpush.ErrClosed) {
				t.Errorf("watch of retired terminal ended with %v, want ErrClosed", err)
			}
			break
		}
	}
	if _, ok := e.eng.Effective("T0000001"); ok {
		t.Error("retired terminal still has an effective config")
	}
}

func TestNewTerminalGetsCurrentState(t *testing.T) {
	dir := newFakeDir()
	dir.add("M1", "S1", "T0000001")
	e := newEnv(t, dir)
	base := e.publish(merchant, &configpush.Settings{ReceiptHeader: ptr("base")}, all)
	ro := e.publish(merchant, &configpush.Settings{ReceiptHeader: ptr("staged")}, configpush.Plan{StagePercents: []uint32{50, 100}})
	ids := tids("N", 200)
	dir.add("M1", "S1", ids...)
	in := 0
	for _, tid := range ids {
		e.eng.TerminalChanged(tid)
		cfg := e.eff(tid)
		switch *cfg.Settings.ReceiptHeader {
		case "staged":
			in++
			if cfg.Version != ro.Version || cfg.RolloutID != ro.ID {
				t.Errorf("%s in the stage: version %d rollout %q, want %d %s", tid, cfg.Version, cfg.RolloutID, ro.Version, ro.ID)
			}
		case "base":
			if cfg.Version != base.Version {
				t.Errorf("%s outside the stage: version %d, want %d", tid, cfg.Version, base.Version)
			}
		default:
			t.Fatalf("%s header %q", tid, *cfg.Settings.ReceiptHeader)
		}
	}
	if in < 70 || in > 130 {
		t.Errorf("%d of 200 new terminals in the 50%% stage", in)
	}
	if got := e.rollout(ro.ID); got.Targeted != 201 {
		t.Errorf("rollout targets %d terminals after provisioning, want 201", got.Targeted)
	}
}

// A terminal's acknowledgement counts for every live rollout whose layer
// its current config carries. It counted only for the rollout that issued
// the version, so a rollout froze for good once a publish at another
// scope, or a rebind into its scope, gave a terminal a newer version
// before it acknowledged.
func TestAcksCountForEveryLayerTheTerminalSees(t *testing.T) {
	t.Run("publish at another scope", func(t *testing.T) {
		dir := newFakeDir()
		dir.add("M1", "S1", "T0000001", "T0000002")
		e := newEnv(t, dir)
		r1 := e.publish(merchant, &configpush.Settings{ReceiptHeader: ptr("m1")}, all)
		r2 := e.publish(termT1, &configpush.Settings{ReceiptFooter: ptr("t1")}, all)
		e.ackAll(configpush.AckApplied, "T0000001", "T0000002")
		e.waitState(r1.ID, configpush.StateCompleted)
		e.waitState(r2.ID, configpush.StateCompleted)
	})
	t.Run("rebind into the scope", func(t *testing.T) {
		dir := newFakeDir()
		dir.add("M1", "S1", "T0000001")
		dir.add("M2", "S2", "T0000002")
		e := newEnv(t, dir)
		r := e.publish(configpush.Scope{MerchantID: "M2"}, &configpush.Settings{ReceiptHeader: ptr("m2")}, all)
		dir.add("M2", "S2", "T0000001")
		e.eng.TerminalChanged("T0000001")
		if h := e.eff("T0000001").Settings.ReceiptHeader; h == nil || *h != "m2" {
			t.Fatalf("T0000001's header after the rebind: %v, want m2", h)
		}
		e.ackAll(configpush.AckApplied, "T0000001", "T0000002")
		e.waitState(r.ID, configpush.StateCompleted)
		e.restart()
		if got := e.rollout(r.ID); got.State != configpush.StateCompleted {
			t.Errorf("after restart: %s, want COMPLETED", got.State)
		}
	})
}

// A terminal rebound out of a rollout's scope and back has no
// acknowledgement for it, before and after a restart. The stored one was
// kept and counted again after the restart.
func TestRebindOutAndBackForgetsTheAck(t *testing.T) {
	dir := newFakeDir()
	dir.add("M1", "S1", "T0000001", "T0000002")
	dir.add("M2", "S2")
	e := newEnv(t, dir)
	r := e.publish(merchant, &configpush.Settings{ReceiptHeader: ptr("m1")}, all)
	e.ackAll(configpush.AckApplied, "T0000001")
	dir.add("M2", "S2", "T0000001")
	e.eng.TerminalChanged("T0000001")
	dir.add("M1", "S1", "T0000001")
	e.eng.TerminalChanged("T0000001")
	before := e.rollout(r.ID)
	e.restart()
	after := e.rollout(r.ID)
	if before.Applied != 0 || after.Applied != before.Applied || after.State != before.State {
		t.Fatalf("applied %d (%s) before the restart, %d (%s) after; want 0 both times", before.Applied, before.State, after.Applied, after.State)
	}
}

// The fleet stores a rebind before it tells config push; after a crash in
// between, the terminal's config is computed from its new chain alone, at
// a lower version than it holds. Versions never go down for a terminal:
// when it reconnects reporting the higher version, it gets its current
// config under a fresh, higher version. It used to be sent the lower one.
func TestTerminalAheadAfterLostRebindGetsAHigherVersion(t *testing.T) {
	dir := newFakeDir()
	dir.add("M1", "S1", "T0000001")
	dir.add("M2", "S2")
	e := newEnv(t, dir)
	e.publish(configpush.Scope{MerchantID: "M2"}, &configpush.Settings{ReceiptHeader: ptr("m2")}, all)
	e.publish(merchant, &configpush.Settings{ReceiptHeader: ptr("m1")}, all)
	held := e.eff("T0000001")
	e.close()
	dir.add("M2", "S2", "T0000001") // the fleet's rebind; config push never heard of it
	e.open()
	cfg := e.next(e.watch("T0000001", held.Version))
	if cfg.Version <= held.Version || cfg.Settings.ReceiptHeader == nil || *cfg.Settings.ReceiptHeader != "m2" {
		t.Fatalf("reconnect holding v%d (m1): got v%d %v; want m2 above v%d", held.Version, cfg.Version, cfg.Settings.ReceiptHeader, held.Version)
	}
	e.restart()
	if again := e.eff("T0000001"); again.Version != cfg.Version {
		t.Errorf("after restart: v%d, want v%d", again.Version, cfg.Version)
	}
}
