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
