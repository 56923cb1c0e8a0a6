package configpush_test

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/configpush"
)

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
