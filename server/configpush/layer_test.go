package configpush_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/configpush"
)

// violationFields returns the fields of a ValidationError, nil for another
// error.
func violationFields(err error) []string {
	var ve *configpush.ValidationError
	if !errors.As(err, &ve) {
		return nil
	}
	var out []string
	for _, v := range ve.Violations {
		out = append(out, v.Field)
	}
	return out
}

func TestPublishPatchesAndFailsClosed(t *testing.T) {
	dir := newFakeDir()
	dir.add("M1", "S1", "T0000001")
	dir.add("M2", "S1", "T0000002")
	dir.setCurrency("M2", "NZD")
	e := newEnv(t, dir)
	base := e.publish(merchant, &configpush.Settings{DailyLimit: usd(500000), ReceiptHeader: ptr("Kia ora"), Extra: map[string]string{"a": "1", "b": "2"}}, all)

	// A patch keeps what it does not name: the daily limit survives a
	// footer change.
	e.publish(merchant, &configpush.Settings{ReceiptFooter: ptr("Thank you")}, all)
	s := e.eff("T0000001").Settings
	if s.DailyLimit == nil || *s.DailyLimit != *usd(500000) || *s.ReceiptHeader != "Kia ora" || *s.ReceiptFooter != "Thank you" {
		t.Fatalf("after a footer patch: limit %v header %q footer %q, want the limit and header kept", s.DailyLimit, *s.ReceiptHeader, *s.ReceiptFooter)
	}

	tests := []struct {
		name string
		req  configpush.PublishRequest
		want []string
	}{
		{"empty patch", configpush.PublishRequest{Scope: merchant}, []string{"settings"}},
		{"same value", configpush.PublishRequest{Scope: merchant, Settings: &configpush.Settings{DailyLimit: usd(500000)}}, []string{"settings"}},
		{"empty global", configpush.PublishRequest{}, []string{"settings"}},
		{"empty replace at global", configpush.PublishRequest{Replace: true}, []string{"settings"}},
		{"replace drops a limit", configpush.PublishRequest{Scope: merchant, Replace: true,
			Settings: &configpush.Settings{ReceiptHeader: ptr("Kia ora"), ReceiptFooter: ptr("x"), Extra: map[string]string{"a": "1", "b": "2"}}},
			[]string{"settings.daily_limit"}},
		{"replace drops an extra key", configpush.PublishRequest{Scope: merchant, Replace: true, Clear: []string{"daily_limit"},
			Settings: &configpush.Settings{ReceiptHeader: ptr("Kia ora"), ReceiptFooter: ptr("x"), Extra: map[string]string{"a": "1"}}},
			[]string{"settings.extra[b]"}},
		{"clear of an unset field", configpush.PublishRequest{Scope: merchant, Clear: []string{"per_transaction_limit"}}, []string{"clear_fields[0]"}},
		{"clear of an unknown field", configpush.PublishRequest{Scope: merchant, Clear: []string{"daily-limit"}}, []string{"clear_fields[0]"}},
		{"clear and set", configpush.PublishRequest{Scope: merchant, Clear: []string{"daily_limit"}, Settings: &configpush.Settings{DailyLimit: usd(1)}}, []string{"clear_fields[0]"}},
		{"limit in another currency", configpush.PublishRequest{Scope: configpush.Scope{MerchantID: "M2"}, Settings: &configpush.Settings{DailyLimit: usd(1)}},
			[]string{"settings.daily_limit.currency"}},
		{"global limit reaches a merchant of another currency", configpush.PublishRequest{Settings: &configpush.Settings{PerTransactionLimit: usd(100000)}},
			[]string{"settings.per_transaction_limit.currency"}},
		{"not a currency", configpush.PublishRequest{Scope: merchant, Settings: &configpush.Settings{DailyLimit: &configpush.Money{MinorUnits: 1, Currency: "XXX"}}},
			[]string{"settings.daily_limit.currency"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := e.eff("T0000001").Version
			_, err := e.eng.Publish(t.Context(), tc.req, admin)
			if got := violationFields(err); !slices.Equal(got, tc.want) {
				t.Errorf("Publish: %v; got fields %v, want %v", err, got, tc.want)
			}
			if v := e.eff("T0000001").Version; v != before {
				t.Errorf("a refused publish changed the version %d → %d", before, v)
			}
		})
	}

	// Removal works when named: a replace with clears, then a patch that
	// clears one extra key.
	e.publishReq(configpush.PublishRequest{Scope: merchant, Replace: true, Clear: []string{"daily_limit", "extra.b"},
		Settings: &configpush.Settings{ReceiptHeader: ptr("Kia ora"), ReceiptFooter: ptr("x"), Extra: map[string]string{"a": "1"}}})
	if s := e.eff("T0000001").Settings; s.DailyLimit != nil || s.Extra["b"] != "" || s.Extra["a"] != "1" {
		t.Errorf("after clearing daily_limit and extra.b: limit %v extra %v", s.DailyLimit, s.Extra)
	}
	e.publishReq(configpush.PublishRequest{Scope: merchant, Clear: []string{"extra"}})
	if s := e.eff("T0000001").Settings; len(s.Extra) != 0 || *s.ReceiptHeader != "Kia ora" {
		t.Errorf("after clearing extra: extra %v header %q", s.Extra, *s.ReceiptHeader)
	}

	// The history lists every version of the scope, newest first, and the
	// diff of the first and last names what changed.
	hist, _, err := e.eng.History(t.Context(), merchant, 10, "")
	if err != nil || len(hist) != 4 || hist[3].Version != base.Version {
		t.Fatalf("History = %d versions (%v), want 4 ending at %d", len(hist), err, base.Version)
	}
	_, _, changes, err := e.eng.DiffVersions(t.Context(), base.Version, hist[0].Version)
	if err != nil {
		t.Fatal(err)
	}
	var changed []string
	for _, c := range changes {
		changed = append(changed, c.Field)
	}
	if want := []string{"receipt_footer", "daily_limit", "extra.a", "extra.b"}; !slices.Equal(changed, want) {
		t.Errorf("diff %d→%d changed %v, want %v", base.Version, hist[0].Version, changed, want)
	}
	if _, _, _, err := e.eng.DiffVersions(t.Context(), base.Version, 999); !errors.Is(err, configpush.ErrVersionNotFound) {
		t.Errorf("diff with an unknown version: %v, want ErrVersionNotFound", err)
	}
	layer, ok, err := e.eng.Layer(merchant)
	if err != nil || !ok || layer.Version != hist[0].Version || *layer.Settings.ReceiptFooter != "x" {
		t.Errorf("Layer(merchant) = %+v, %v, %v; want version %d", layer, ok, err, hist[0].Version)
	}
	if _, ok, err := e.eng.Layer(storeS1); ok || err != nil {
		t.Errorf("Layer of a scope without a layer: ok %v err %v", ok, err)
	}
}

func TestPreviewPublishesNothing(t *testing.T) {
	dir := newFakeDir()
	ids := tids("T", 200)
	dir.add("M1", "S1", ids...)
	e := newEnv(t, dir)
	e.publish(merchant, &configpush.Settings{DailyLimit: usd(1000)}, all)
	before := e.eff(ids[0]).Version
	p, err := e.eng.Preview(t.Context(), configpush.PublishRequest{Scope: merchant, Settings: &configpush.Settings{DailyLimit: usd(10)},
		Plan: configpush.Plan{StagePercents: []uint32{10, 100}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Changes) != 1 || p.Changes[0].Field != "daily_limit" || p.Changes[0].Before != "USD:1000" || p.Changes[0].After != "USD:10" {
		t.Errorf("preview changes %+v, want daily_limit USD:1000 → USD:10", p.Changes)
	}
	if p.Targeted != 200 || p.StageCounts[0]+p.StageCounts[1] != 200 || uint64(len(p.FirstStage)) != p.StageCounts[0] || p.StageCounts[0] == 0 || p.StageCounts[0] > 60 {
		t.Errorf("preview reaches %d, stages %v, first stage %d terminals; want 200 split about 10/90", p.Targeted, p.StageCounts, len(p.FirstStage))
	}
	// The preview's first stage is the one the publish then reaches.
	ro := e.publishReq(configpush.PublishRequest{Scope: merchant, Settings: &configpush.Settings{DailyLimit: usd(10)}, Plan: configpush.Plan{StagePercents: []uint32{10, 100}}})
	var reached []string
	for _, tid := range ids {
		if e.eff(tid).RolloutID == ro.ID {
			reached = append(reached, tid)
		}
	}
	if !slices.Equal(reached, p.FirstStage) {
		t.Errorf("publish reached %d terminals, preview said %d", len(reached), len(p.FirstStage))
	}
	if v := e.eff(ids[0]).Version; before == 0 || (v != before && !slices.Contains(reached, ids[0])) {
		t.Errorf("version of a terminal outside the first stage went %d → %d", before, v)
	}
}

func TestRollbackPublishesThePreviousLayer(t *testing.T) {
	dir := newFakeDir()
	ids := tids("T", 50)
	dir.add("M1", "S1", ids...)
	e := newEnv(t, dir)
	if _, err := e.eng.Rollback(t.Context(), configpush.RollbackRequest{Scope: merchant}, admin); !errors.Is(err, configpush.ErrRolloutState) {
		t.Errorf("rollback with nothing published: %v, want ErrRolloutState", err)
	}
	v1 := e.publish(merchant, &configpush.Settings{DailyLimit: usd(500000)}, all)
	v2 := e.publish(merchant, &configpush.Settings{DailyLimit: usd(10)}, all)
	rb, err := e.eng.Rollback(t.Context(), configpush.RollbackRequest{Scope: merchant, Plan: configpush.Plan{StagePercents: []uint32{50, 100}}}, admin)
	if err != nil {
		t.Fatal(err)
	}
	if rb.Version <= v2.Version || rb.RollbackOf != v2.Version || *rb.Settings.DailyLimit != *usd(500000) || len(rb.Plan.StagePercents) != 2 {
		t.Fatalf("rollback = version %d of %d limit %v stages %v; want a new staged version restoring %d", rb.Version, rb.RollbackOf, rb.Settings.DailyLimit, rb.Plan.StagePercents, v1.Version)
	}
	// Staged like any publish: only the first stage has it yet.
	var in, out int
	for _, tid := range ids {
		switch s := e.eff(tid).Settings; *s.DailyLimit {
		case *usd(500000):
			in++
		case *usd(10):
			out++
		}
	}
	if in == 0 || out == 0 || in+out != len(ids) {
		t.Errorf("after a staged rollback: %d terminals restored, %d not yet; want both", in, out)
	}
	// Advancing the manual stage reaches the rest.
	got, err := e.eng.Advance(t.Context(), rb.ID, admin)
	if err != nil || got.Stage != 1 {
		t.Fatalf("Advance = stage %d, %v; want stage 1", got.Stage, err)
	}
	for _, tid := range ids {
		if s := e.eff(tid).Settings; *s.DailyLimit != *usd(500000) {
			t.Fatalf("%s after advance: limit %v", tid, s.DailyLimit)
		}
	}
	if _, err := e.eng.Advance(t.Context(), rb.ID, admin); !errors.Is(err, configpush.ErrRolloutState) {
		t.Errorf("advance past the last stage: %v, want ErrRolloutState", err)
	}
	// A rollback to a named version; the current layer cannot be the
	// target, nor can a version of another scope.
	if _, err := e.eng.Rollback(t.Context(), configpush.RollbackRequest{Scope: merchant, ToVersion: rb.Version}, admin); violationFields(err) == nil {
		t.Errorf("rollback to the current version: %v, want a violation", err)
	}
	rb2, err := e.eng.Rollback(t.Context(), configpush.RollbackRequest{Scope: merchant, ToVersion: v2.Version}, admin)
	if err != nil || *rb2.Settings.DailyLimit != *usd(10) {
		t.Fatalf("rollback to version %d: %v, %v", v2.Version, rb2.Settings, err)
	}
	if _, err := e.eng.Rollback(t.Context(), configpush.RollbackRequest{Scope: storeS1, ToVersion: v2.Version}, admin); err == nil {
		t.Errorf("rollback of a store to a merchant's version succeeded")
	}
}

func TestStoreTimeZoneAndProvenance(t *testing.T) {
	dir := newFakeDir()
	dir.add("M1", "S1", "T0000001", "T0000002")
	dir.add("M1", "S2", "T0000003")
	dir.setZone("M1", "S1", "Pacific/Auckland")
	e := newEnv(t, dir)
	if tz := *e.eff("T0000001").Settings.TimeZone; tz != "Pacific/Auckland" {
		t.Errorf("terminal of an Auckland store has time zone %q", tz)
	}
	if tz := *e.eff("T0000003").Settings.TimeZone; tz != "UTC" {
		t.Errorf("terminal of a store without a zone has %q, want UTC", tz)
	}
	// A merchant-wide zone does not move a store that has its own; a
	// terminal layer does.
	e.publish(merchant, &configpush.Settings{TimeZone: ptr("Europe/Berlin"), HeartbeatInterval: ptr(30 * time.Second)}, all)
	ro := e.publish(termT1, &configpush.Settings{TimeZone: ptr("Asia/Tokyo")}, all)
	for tid, want := range map[string]string{"T0000001": "Asia/Tokyo", "T0000002": "Pacific/Auckland", "T0000003": "Europe/Berlin"} {
		if tz := *e.eff(tid).Settings.TimeZone; tz != want {
			t.Errorf("%s time zone %q, want %q", tid, tz, want)
		}
	}
	src, err := e.eng.Sources("T0000002")
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]configpush.Source{}
	for _, s := range src {
		by[s.Field] = s
	}
	if s := by["time_zone"]; s.Origin != configpush.OriginStore || s.Value != `"Pacific/Auckland"` {
		t.Errorf("time_zone source %+v, want the store record", s)
	}
	if s := by["heartbeat_interval"]; s.Origin != configpush.OriginLayer || s.Scope != merchant || s.Value != "30s" {
		t.Errorf("heartbeat source %+v, want the merchant layer", s)
	}
	if s := by["daily_limit"]; s.Origin != configpush.OriginDefault || s.Value != "" {
		t.Errorf("daily_limit source %+v, want the default", s)
	}
	src, _ = e.eng.Sources("T0000001")
	for _, s := range src {
		if s.Field == "time_zone" && (s.Origin != configpush.OriginLayer || s.RolloutID != ro.ID) {
			t.Errorf("T0000001 time_zone source %+v, want %s", s, ro.ID)
		}
	}
}

func TestTerminalsEnrolledDuringARolloutJoinIt(t *testing.T) {
	dir := newFakeDir()
	dir.add("M1", "S1", tids("T", 20)...)
	e := newEnv(t, dir)
	ro := e.publish(merchant, &configpush.Settings{ReceiptHeader: ptr("new")}, configpush.Plan{StagePercents: []uint32{50, 100}})
	late := tids("L", 40)
	dir.add("M1", "S1", late...)
	joined := 0
	for _, tid := range late {
		e.eng.TerminalChanged(tid)
		if cfg := e.eff(tid); cfg.RolloutID == ro.ID {
			joined++
			if *cfg.Settings.ReceiptHeader != "new" {
				t.Errorf("%s joined %s without its layer", tid, ro.ID)
			}
		}
	}
	if joined == 0 || joined == len(late) {
		t.Errorf("%d of %d late terminals joined the 50%% stage, want some", joined, len(late))
	}
	if got := e.rollout(ro.ID); got.Targeted != 60 {
		t.Errorf("rollout targets %d terminals, want 60 with the late ones", got.Targeted)
	}
}
