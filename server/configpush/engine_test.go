package configpush_test

import (
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/configpush"
)

var (
	global   = configpush.Scope{}
	merchant = configpush.Scope{MerchantID: "M1"}
	storeS1  = configpush.Scope{MerchantID: "M1", StoreID: "S1"}
	termT1   = configpush.Scope{TerminalID: "T0000001"}
	all      = configpush.Plan{}
)

func usd(n int64) *configpush.Money { return &configpush.Money{MinorUnits: n, Currency: "USD"} }

func TestMergePrecedence(t *testing.T) {
	type layer struct {
		scope configpush.Scope
		s     *configpush.Settings
	}
	tests := []struct {
		name   string
		layers []layer
		check  func(t *testing.T, s *configpush.Settings)
	}{
		{
			name: "defaults when nothing is published",
			check: func(t *testing.T, s *configpush.Settings) {
				if got := *s.HeartbeatInterval; got != configpush.DefaultHeartbeatInterval {
					t.Errorf("heartbeat = %v, want %v", got, configpush.DefaultHeartbeatInterval)
				}
				if got := *s.TimeZone; got != "UTC" {
					t.Errorf("time zone = %q, want UTC", got)
				}
				if !slices.Equal(s.EntryModes, configpush.AllEntryModes) {
					t.Errorf("entry modes = %v, want all", s.EntryModes)
				}
				if s.PerTransactionLimit != nil || s.DailyLimit != nil || s.OfflineFloorLimit != nil {
					t.Errorf("limits = %v %v %v, want none", s.PerTransactionLimit, s.DailyLimit, s.OfflineFloorLimit)
				}
				if *s.CardVelocityLimit != 0 || *s.ReceiptHeader != "" {
					t.Errorf("velocity %d header %q, want 0 and empty", *s.CardVelocityLimit, *s.ReceiptHeader)
				}
			},
		},
		{
			name: "narrower scope wins field by field",
			layers: []layer{
				{global, &configpush.Settings{ReceiptHeader: ptr("global"), ReceiptFooter: ptr("global"), DailyLimit: usd(100000), TimeZone: ptr("Europe/Berlin")}},
				{merchant, &configpush.Settings{ReceiptHeader: ptr("merchant"), PerTransactionLimit: usd(5000)}},
				{storeS1, &configpush.Settings{ReceiptHeader: ptr("store"), DailyLimit: usd(200000)}},
				{termT1, &configpush.Settings{ReceiptHeader: ptr("terminal")}},
			},
			check: func(t *testing.T, s *configpush.Settings) {
				if *s.ReceiptHeader != "terminal" || *s.ReceiptFooter != "global" || *s.TimeZone != "Europe/Berlin" {
					t.Errorf("header %q footer %q tz %q, want terminal, global, Europe/Berlin", *s.ReceiptHeader, *s.ReceiptFooter, *s.TimeZone)
				}
				if *s.DailyLimit != *usd(200000) || *s.PerTransactionLimit != *usd(5000) {
					t.Errorf("daily %v per-tx %v, want store's 200000 and merchant's 5000", *s.DailyLimit, *s.PerTransactionLimit)
				}
			},
		},
		{
			name: "empty entry modes inherit, non-empty replace",
			layers: []layer{
				{global, &configpush.Settings{EntryModes: []configpush.EntryMode{configpush.EntryChip, configpush.EntryContactless}}},
				{storeS1, &configpush.Settings{}},
				{termT1, &configpush.Settings{EntryModes: []configpush.EntryMode{configpush.EntryQR}}},
			},
			check: func(t *testing.T, s *configpush.Settings) {
				if want := []configpush.EntryMode{configpush.EntryQR}; !slices.Equal(s.EntryModes, want) {
					t.Errorf("entry modes = %v, want %v", s.EntryModes, want)
				}
			},
		},
		{
			name: "extra merges key by key and empty values remove",
			layers: []layer{
				{global, &configpush.Settings{Extra: map[string]string{"a": "1", "b": "1", "c": "1"}}},
				{merchant, &configpush.Settings{Extra: map[string]string{"b": "2", "c": ""}}},
				{termT1, &configpush.Settings{Extra: map[string]string{"d": "4", "x": ""}}},
			},
			check: func(t *testing.T, s *configpush.Settings) {
				want := map[string]string{"a": "1", "b": "2", "d": "4"}
				if !maps.Equal(s.Extra, want) {
					t.Errorf("extra = %v, want %v", s.Extra, want)
				}
			},
		},
		{
			name: "heartbeat and velocity from different scopes",
			layers: []layer{
				{global, &configpush.Settings{HeartbeatInterval: ptr(30 * time.Second)}},
				{merchant, &configpush.Settings{CardVelocityLimit: ptr(uint32(3))}},
			},
			check: func(t *testing.T, s *configpush.Settings) {
				if *s.HeartbeatInterval != 30*time.Second || *s.CardVelocityLimit != 3 || *s.CardVelocityWindow != configpush.DefaultCardVelocityWindow {
					t.Errorf("heartbeat %v velocity %d/%v, want 30s, 3/24h", *s.HeartbeatInterval, *s.CardVelocityLimit, *s.CardVelocityWindow)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := newFakeDir()
			dir.add("M1", "S1", "T0000001")
			dir.add("M2", "S1", "T0000002")
			e := newEnv(t, dir)
			for _, l := range tc.layers {
				e.publish(l.scope, l.s, all)
			}
			tc.check(t, e.eff("T0000001").Settings)
			// The other merchant's terminal sees only the global layer.
			other := e.eff("T0000002").Settings
			if len(tc.layers) > 0 && tc.layers[0].scope == global {
				want := tc.layers[0].s
				if want.ReceiptHeader != nil && *other.ReceiptHeader != *want.ReceiptHeader {
					t.Errorf("other merchant header = %q, want global %q", *other.ReceiptHeader, *want.ReceiptHeader)
				}
			}
		})
	}
}

func TestPublishValidation(t *testing.T) {
	dir := newFakeDir()
	dir.add("M1", "S1", "T0000001")
	e := newEnv(t, dir)
	tests := []struct {
		name  string
		req   configpush.PublishRequest
		field string
	}{
		{"currency", configpush.PublishRequest{Settings: &configpush.Settings{DailyLimit: &configpush.Money{MinorUnits: 1, Currency: "usd"}}}, "settings.daily_limit.currency"},
		{"mixed currencies", configpush.PublishRequest{Settings: &configpush.Settings{DailyLimit: usd(1), PerTransactionLimit: &configpush.Money{MinorUnits: 1, Currency: "EUR"}}}, "settings.daily_limit.currency"},
		{"negative limit", configpush.PublishRequest{Settings: &configpush.Settings{PerTransactionLimit: usd(-1)}}, "settings.per_transaction_limit.minor_units"},
		{"heartbeat too short", configpush.PublishRequest{Settings: &configpush.Settings{HeartbeatInterval: ptr(time.Second)}}, "settings.heartbeat_interval"},
		{"heartbeat too long", configpush.PublishRequest{Settings: &configpush.Settings{HeartbeatInterval: ptr(2 * time.Hour)}}, "settings.heartbeat_interval"},
		{"time zone", configpush.PublishRequest{Settings: &configpush.Settings{TimeZone: ptr("Mars/Olympus")}}, "settings.time_zone"},
		{"entry mode", configpush.PublishRequest{Settings: &configpush.Settings{EntryModes: []configpush.EntryMode{9}}}, "settings.accepted_entry_modes[0]"},
		{"duplicate entry mode", configpush.PublishRequest{Settings: &configpush.Settings{EntryModes: []configpush.EntryMode{1, 1}}}, "settings.accepted_entry_modes[1]"},
		{"extra key", configpush.PublishRequest{Settings: &configpush.Settings{Extra: map[string]string{"bad key": "v"}}}, "settings.extra[?]"},
		{"extra value", configpush.PublishRequest{Settings: &configpush.Settings{Extra: map[string]string{"k": string(make([]byte, 1025))}}}, "settings.extra[k]"},
		{"card number in extra", configpush.PublishRequest{Settings: &configpush.Settings{Extra: map[string]string{"k": "4111 1111 1111 1111"}}}, "settings.extra[k]"},
		{"card number inside extra text", configpush.PublishRequest{Settings: &configpush.Settings{Extra: map[string]string{"k": "ref 4111.1111.1111.1111"}}}, "settings.extra[k]"},
		{"card number in receipt text", configpush.PublishRequest{Settings: &configpush.Settings{ReceiptFooter: ptr("note:4111111111111111:end")}}, "settings.receipt_footer"},
		{"full-width card number in receipt text", configpush.PublishRequest{Settings: &configpush.Settings{ReceiptHeader: ptr("４１１１－１１１１－１１１１－１１１１")}}, "settings.receipt_header"},
		{"velocity window", configpush.PublishRequest{Settings: &configpush.Settings{CardVelocityWindow: ptr(time.Second)}}, "settings.card_velocity_window"},
		{"stages not increasing", configpush.PublishRequest{Plan: configpush.Plan{StagePercents: []uint32{10, 10, 100}}}, "rollout.stage_percents[1]"},
		{"stages not ending at 100", configpush.PublishRequest{Plan: configpush.Plan{StagePercents: []uint32{10, 50}}}, "rollout.stage_percents"},
		{"stage zero", configpush.PublishRequest{Plan: configpush.Plan{StagePercents: []uint32{0, 100}}}, "rollout.stage_percents[0]"},
		{"ratio", configpush.PublishRequest{Plan: configpush.Plan{MaxFailureRatio: 1.5}}, "rollout.max_failure_ratio"},
		{"store without merchant", configpush.PublishRequest{Scope: configpush.Scope{StoreID: "S1"}}, "scope.merchant_id"},
		{"terminal with merchant", configpush.PublishRequest{Scope: configpush.Scope{MerchantID: "M1", TerminalID: "T0000001"}}, "scope.terminal_id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.eng.Publish(t.Context(), tc.req, admin)
			var ve *configpush.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Publish: %v, want a ValidationError", err)
			}
			var fields []string
			for _, v := range ve.Violations {
				fields = append(fields, v.Field)
			}
			if !slices.Contains(fields, tc.field) {
				t.Errorf("violations on %v, want one on %s", fields, tc.field)
			}
		})
	}
	for _, scope := range []configpush.Scope{{MerchantID: "NOPE"}, {MerchantID: "M1", StoreID: "NOPE"}, {TerminalID: "T9999999"}} {
		if _, err := e.eng.Publish(t.Context(), configpush.PublishRequest{Scope: scope}, admin); !errors.Is(err, configpush.ErrScopeNotFound) {
			t.Errorf("Publish at %v: %v, want ErrScopeNotFound", scope, err)
		}
	}
	if v := e.eff("T0000001").Version; v != 0 {
		t.Errorf("version after refused publishes = %d, want 0", v)
	}
}

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

func TestStagedShareIsCloseAndStableAcrossRestarts(t *testing.T) {
	const n = 10000
	dir := newFakeDir()
	ids := tids("T", n)
	dir.add("M1", "S1", ids...)
	e := newEnv(t, dir)
	base := e.publish(global, &configpush.Settings{ReceiptHeader: ptr("old")}, all)
	ro := e.publish(global, &configpush.Settings{ReceiptHeader: ptr("new")}, configpush.Plan{StagePercents: []uint32{5, 25, 100}})
	included := func() map[string]bool {
		in := map[string]bool{}
		for _, tid := range ids {
			cfg := e.eff(tid)
			switch {
			case cfg.RolloutID == ro.ID:
				in[tid] = true
				if *cfg.Settings.ReceiptHeader != "new" {
					t.Fatalf("%s in the rollout has header %q", tid, *cfg.Settings.ReceiptHeader)
				}
			case cfg.Version != base.Version || *cfg.Settings.ReceiptHeader != "old":
				t.Fatalf("%s outside the stage has version %d header %q, want %d old", tid, cfg.Version, *cfg.Settings.ReceiptHeader, base.Version)
			}
		}
		return in
	}
	first := included()
	if got := len(first); got < 400 || got > 600 {
		t.Errorf("stage 1 of 5%% includes %d of %d terminals, want about 500", got, n)
	}
	if got := e.rollout(ro.ID); got.Included != uint64(len(first)) || got.Targeted != n {
		t.Errorf("rollout counts included %d targeted %d, want %d and %d", got.Included, got.Targeted, len(first), n)
	}
	e.restart()
	again := included()
	if !maps.Equal(first, again) {
		t.Errorf("stage membership changed across restart: %d before, %d after", len(first), len(again))
	}
}

func TestAutoAdvanceThroughStagesToCompletion(t *testing.T) {
	dir := newFakeDir()
	ids := tids("T", 200)
	dir.add("M1", "S1", ids...)
	e := newEnv(t, dir)
	ro := e.publish(merchant, &configpush.Settings{ReceiptHeader: ptr("new")}, configpush.Plan{StagePercents: []uint32{10, 50, 100}, AutoAdvance: true})
	prev := map[string]uint64{}
	for stage := range 3 {
		got := e.rollout(ro.ID)
		if got.Stage != stage || got.State != configpush.StateRunning {
			t.Fatalf("rollout at stage %d state %s, want stage %d RUNNING", got.Stage, got.State, stage)
		}
		var inStage []string
		for _, tid := range ids {
			cfg := e.eff(tid)
			if cfg.Version < prev[tid] {
				t.Fatalf("%s version went from %d to %d", tid, prev[tid], cfg.Version)
			}
			if cfg.RolloutID == ro.ID && cfg.Version != prev[tid] {
				inStage = append(inStage, tid)
			}
			prev[tid] = cfg.Version
		}
		if len(inStage) == 0 {
			t.Fatalf("stage %d reached no terminal", stage)
		}
		e.ackAll(configpush.AckApplied, inStage...)
	}
	got := e.rollout(ro.ID)
	if got.State != configpush.StateCompleted || got.Applied != uint64(len(ids)) || got.Included != uint64(len(ids)) {
		t.Errorf("final rollout state %s applied %d included %d, want COMPLETED %d %d", got.State, got.Applied, got.Included, len(ids), len(ids))
	}
	for _, tid := range ids {
		if h := *e.eff(tid).Settings.ReceiptHeader; h != "new" {
			t.Fatalf("%s header %q after completion, want new", tid, h)
		}
	}
}

func TestAutoHaltOnFailures(t *testing.T) {
	dir := newFakeDir()
	ids := tids("T", 100)
	dir.add("M1", "S1", ids...)
	e := newEnv(t, dir)
	ro := e.publish(global, &configpush.Settings{ReceiptHeader: ptr("bad")}, configpush.Plan{StagePercents: []uint32{50, 100}, MaxFailureRatio: 0.2, AutoAdvance: true})
	var inStage []string
	for _, tid := range ids {
		if e.eff(tid).RolloutID == ro.ID {
			inStage = append(inStage, tid)
		}
	}
	// 4 applied, then rejections until the ratio passes 0.2.
	e.ackAll(configpush.AckApplied, inStage[:4]...)
	e.ackAll(configpush.AckRejected, inStage[4])
	if got := e.rollout(ro.ID); got.State != configpush.StateRunning {
		t.Fatalf("after 1 of 5 rejected: state %s, want RUNNING (0.2 is within bounds)", got.State)
	}
	e.ackAll(configpush.AckRejected, inStage[5])
	got := e.rollout(ro.ID)
	if got.State != configpush.StateHalted || got.Rejected != 2 || got.Applied != 4 {
		t.Fatalf("after 2 of 6 rejected: state %s applied %d rejected %d, want HALTED 4 2", got.State, got.Applied, got.Rejected)
	}
	if got.FailureRatio < 0.33 || got.FailureRatio > 0.34 {
		t.Errorf("failure ratio %v, want 1/3", got.FailureRatio)
	}
	// Halted: the remaining acks do not advance it.
	e.ackAll(configpush.AckApplied, inStage[6:]...)
	if got := e.rollout(ro.ID); got.State != configpush.StateHalted || got.Stage != 0 {
		t.Errorf("halted rollout moved on: state %s stage %d", got.State, got.Stage)
	}
	if err := e.audit.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	evs, _, err := e.audit.List(t.Context(), audit.Filter{Type: audit.RolloutChanged}, 10, "")
	if err != nil || len(evs) == 0 || evs[0].Attributes["state"] != "HALTED" {
		t.Errorf("audit ROLLOUT_CHANGED = %v, %v; want a HALTED event", evs, err)
	}
	// Resuming starts a fresh health window: the stage is healthy (all
	// acknowledged, nothing rejected since) and advances.
	if _, err := e.eng.Resume(t.Context(), ro.ID, admin); err != nil {
		t.Fatal(err)
	}
	if got := e.rollout(ro.ID); got.State != configpush.StateRunning || got.Stage != 1 {
		t.Errorf("after resume: state %s stage %d, want RUNNING at stage 1", got.State, got.Stage)
	}
}

func TestAbortRollsBack(t *testing.T) {
	dir := newFakeDir()
	ids := tids("T", 100)
	dir.add("M1", "S1", ids...)
	e := newEnv(t, dir)
	base := e.publish(storeS1, &configpush.Settings{ReceiptHeader: ptr("old"), DailyLimit: usd(1000)}, all)
	ro := e.publishReq(configpush.PublishRequest{
		Scope: storeS1, Settings: &configpush.Settings{ReceiptHeader: ptr("new")}, Replace: true, Clear: []string{"daily_limit"},
		Plan: configpush.Plan{StagePercents: []uint32{30, 100}},
	})
	before := map[string]*configpush.Effective{}
	reached := 0
	for _, tid := range ids {
		before[tid] = e.eff(tid)
		if before[tid].RolloutID == ro.ID {
			reached++
			if before[tid].Settings.DailyLimit != nil {
				t.Fatalf("%s in the rollout still has the old layer's daily limit", tid)
			}
		}
	}
	if reached == 0 || reached == len(ids) {
		t.Fatalf("30%% stage reached %d of %d", reached, len(ids))
	}
	got, err := e.eng.Abort(t.Context(), ro.ID, "receipts misprint", admin)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != configpush.StateAborted || got.Reason != "receipts misprint" {
		t.Errorf("abort: state %s reason %q", got.State, got.Reason)
	}
	for _, tid := range ids {
		cfg := e.eff(tid)
		if *cfg.Settings.ReceiptHeader != "old" || cfg.Settings.DailyLimit == nil {
			t.Fatalf("%s after abort: header %q limit %v, want the previous layer", tid, *cfg.Settings.ReceiptHeader, cfg.Settings.DailyLimit)
		}
		if before[tid].RolloutID == ro.ID {
			if cfg.Version <= before[tid].Version {
				t.Errorf("%s fell back under version %d, not above %d", tid, cfg.Version, before[tid].Version)
			}
		} else if cfg.Version != base.Version {
			t.Errorf("%s never reached changed version %d → %d", tid, base.Version, cfg.Version)
		}
	}
	if _, err := e.eng.Abort(t.Context(), ro.ID, "", admin); !errors.Is(err, configpush.ErrRolloutState) {
		t.Errorf("second abort: %v, want ErrRolloutState", err)
	}
	// The fallback survives a restart.
	e.restart()
	for _, tid := range ids {
		if cfg := e.eff(tid); *cfg.Settings.ReceiptHeader != "old" {
			t.Fatalf("%s after restart: header %q", tid, *cfg.Settings.ReceiptHeader)
		}
	}
}

func TestManualAdvanceAndPause(t *testing.T) {
	dir := newFakeDir()
	ids := tids("T", 50)
	dir.add("M1", "S1", ids...)
	e := newEnv(t, dir)
	ro := e.publish(global, &configpush.Settings{}, configpush.Plan{StagePercents: []uint32{20, 100}})
	var inStage []string
	for _, tid := range ids {
		if e.eff(tid).RolloutID == ro.ID {
			inStage = append(inStage, tid)
		}
	}
	e.ackAll(configpush.AckApplied, inStage...)
	got := e.rollout(ro.ID)
	if got.State != configpush.StatePaused || got.Stage != 0 {
		t.Fatalf("healthy stage without auto-advance: state %s stage %d, want PAUSED at 0", got.State, got.Stage)
	}
	got, err := e.eng.Resume(t.Context(), ro.ID, admin)
	if err != nil {
		t.Fatal(err)
	}
	if got.Stage != 1 || got.State != configpush.StateRunning || got.Included != uint64(len(ids)) {
		t.Fatalf("resume: stage %d state %s included %d, want 1 RUNNING %d", got.Stage, got.State, got.Included, len(ids))
	}
	if got, err = e.eng.Pause(t.Context(), ro.ID, "lunch", admin); err != nil || got.State != configpush.StatePaused {
		t.Fatalf("pause: %v %v", got.State, err)
	}
	if _, err := e.eng.Pause(t.Context(), "ro-999", "", admin); !errors.Is(err, configpush.ErrRolloutNotFound) {
		t.Errorf("pause unknown: %v, want ErrRolloutNotFound", err)
	}
	if got, err = e.eng.Resume(t.Context(), ro.ID, admin); err != nil || got.State != configpush.StateRunning {
		t.Fatalf("resume after pause: %v %v", got.State, err)
	}
}

func TestMinStageDurationWithHalfAcknowledged(t *testing.T) {
	dir := newFakeDir()
	ids := tids("T", 40)
	dir.add("M1", "S1", ids...)
	e := newEnv(t, dir)
	ro := e.publish(global, &configpush.Settings{}, configpush.Plan{StagePercents: []uint32{100}, MinStageDuration: time.Hour})
	e.ackAll(configpush.AckApplied, ids[:20]...)
	if got := e.rollout(ro.ID); got.State != configpush.StateRunning {
		t.Fatalf("before min stage duration: %s, want RUNNING", got.State)
	}
	e.clock.Advance(time.Hour)
	e.waitState(ro.ID, configpush.StateCompleted)
}

func TestSupersede(t *testing.T) {
	dir := newFakeDir()
	ids := tids("T", 100)
	dir.add("M1", "S1", ids...)
	e := newEnv(t, dir)
	r1 := e.publish(global, &configpush.Settings{ReceiptHeader: ptr("r1")}, configpush.Plan{StagePercents: []uint32{50, 100}})
	r2 := e.publish(global, &configpush.Settings{ReceiptHeader: ptr("r2")}, configpush.Plan{StagePercents: []uint32{20, 100}})
	if got := e.rollout(r1.ID); got.State != configpush.StateSuperseded {
		t.Errorf("r1 state %s, want SUPERSEDED", got.State)
	}
	for _, tid := range ids {
		cfg := e.eff(tid)
		want := "" // default: reached by neither
		switch {
		case cfg.RolloutID == r2.ID:
			want = "r2"
		case cfg.RolloutID == r1.ID:
			want = "r1"
		}
		if *cfg.Settings.ReceiptHeader != want {
			t.Errorf("%s (rollout %q) header %q, want %q", tid, cfg.RolloutID, *cfg.Settings.ReceiptHeader, want)
		}
	}
	// Aborting r2 leaves r1's terminals on r1.
	if _, err := e.eng.Abort(t.Context(), r2.ID, "", admin); err != nil {
		t.Fatal(err)
	}
	n1 := 0
	for _, tid := range ids {
		if h := *e.eff(tid).Settings.ReceiptHeader; h == "r2" {
			t.Fatalf("%s still on r2 after abort", tid)
		} else if h == "r1" {
			n1++
		}
	}
	if n1 < 30 || n1 > 70 {
		t.Errorf("%d terminals on r1 after aborting r2, want about 50", n1)
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

func TestAckValidation(t *testing.T) {
	dir := newFakeDir()
	dir.add("M1", "S1", "T0000001")
	e := newEnv(t, dir)
	ro := e.publish(global, &configpush.Settings{}, all)
	ctx := t.Context()
	var ve *configpush.ValidationError
	if err := e.eng.Ack(ctx, "T0000001", ro.Version, configpush.AckUnspecified, ""); !errors.As(err, &ve) {
		t.Errorf("ack without result: %v, want ValidationError", err)
	}
	if err := e.eng.Ack(ctx, "T0000001", ro.Version+1, configpush.AckApplied, ""); !errors.Is(err, configpush.ErrVersionNotIssued) {
		t.Errorf("ack of a future version: %v, want ErrVersionNotIssued", err)
	}
	if err := e.eng.Ack(ctx, "T9999999", 1, configpush.AckApplied, ""); !errors.Is(err, configpush.ErrUnknownTerminal) {
		t.Errorf("ack of unknown terminal: %v, want ErrUnknownTerminal", err)
	}
	// Acks survive a restart.
	if err := e.eng.Ack(ctx, "T0000001", ro.Version, configpush.AckRejected, "no printer"); err != nil {
		t.Fatal(err)
	}
	e.restart()
	if got := e.rollout(ro.ID); got.Rejected != 1 || got.State != configpush.StateHalted {
		t.Errorf("after restart rejected %d state %s, want 1 HALTED", got.Rejected, got.State)
	}
}

func TestListRollouts(t *testing.T) {
	dir := newFakeDir()
	dir.add("M1", "S1", "T0000001")
	e := newEnv(t, dir)
	var ids []string
	for range 5 {
		ids = append(ids, e.publish(global, &configpush.Settings{}, configpush.Plan{StagePercents: []uint32{1, 100}}).ID)
	}
	var got []string
	token := ""
	for {
		page, next, err := e.eng.ListRollouts(t.Context(), configpush.StateUnspecified, 2, token)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page {
			got = append(got, r.ID)
		}
		if next == "" {
			break
		}
		token = next
	}
	slices.Reverse(ids)
	if !slices.Equal(got, ids) {
		t.Errorf("listed %v, want newest first %v", got, ids)
	}
	sup, _, err := e.eng.ListRollouts(t.Context(), configpush.StateSuperseded, 100, "")
	if err != nil || len(sup) != 4 {
		t.Errorf("superseded: %d, %v; want 4", len(sup), err)
	}
	if _, _, err := e.eng.ListRollouts(t.Context(), 0, 10, "garbage"); !errors.Is(err, configpush.ErrBadPageToken) {
		t.Errorf("bad token: %v, want ErrBadPageToken", err)
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

// After a halted rollout is resumed, the failure-ratio window holds only
// the acknowledgements that came after the resume, even one stamped at the
// same instant. Such an acknowledgement replacing an earlier one was
// counted out of the new window, wrapping its counter and hiding a
// rejection; a restart then computed another ratio.
func TestFailureWindowAfterResumeCountsEachAckOnce(t *testing.T) {
	dir := newFakeDir()
	ids := tids("T", 20)
	dir.add("M1", "S1", ids...)
	e := newEnv(t, dir)
	r := e.publish(merchant, &configpush.Settings{ReceiptHeader: ptr("x")}, configpush.Plan{MaxFailureRatio: 0.4})
	e.ackAll(configpush.AckRejected, ids[0])
	e.waitState(r.ID, configpush.StateHalted)
	if _, err := e.eng.Resume(t.Context(), r.ID, admin); err != nil {
		t.Fatal(err)
	}
	// The clock has not moved: since the resume, one applied and one
	// rejected, 0.5 > 0.4.
	e.ackAll(configpush.AckApplied, ids[0])
	e.ackAll(configpush.AckRejected, ids[1])
	got := e.waitState(r.ID, configpush.StateHalted)
	e.restart()
	if again := e.rollout(r.ID); again.State != got.State || again.FailureRatio != got.FailureRatio {
		t.Errorf("after restart: %s, failure ratio %v; before: %s, %v", again.State, again.FailureRatio, got.State, got.FailureRatio)
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
