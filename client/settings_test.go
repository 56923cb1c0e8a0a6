package client_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

func TestCheckSettings(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settings *pb.Settings
		want     string // "" for valid
	}{
		{"empty", &pb.Settings{}, ""},
		{"nil", nil, ""},
		{"everything in range", &pb.Settings{
			HeartbeatInterval: durationpb.New(time.Minute), CardVelocityWindow: durationpb.New(24 * time.Hour),
			AcceptedEntryModes: []pb.EntryMode{pb.EntryMode_ENTRY_MODE_CHIP, pb.EntryMode_ENTRY_MODE_QR},
			DailyLimit:         &pb.Money{MinorUnits: 0, Currency: "NZD"},
			Extra:              map[string]string{"app.mode_2": strings.Repeat("x", 1024)},
		}, ""},
		{"bounds of the heartbeat", &pb.Settings{HeartbeatInterval: durationpb.New(client.MinHeartbeatInterval)}, ""},
		{"heartbeat below 5s", &pb.Settings{HeartbeatInterval: durationpb.New(time.Second)}, "heartbeat_interval 1s is outside 5s-1h0m0s"},
		{"heartbeat above 1h", &pb.Settings{HeartbeatInterval: durationpb.New(time.Hour + time.Second)}, "heartbeat_interval"},
		{"unknown entry mode", &pb.Settings{AcceptedEntryModes: []pb.EntryMode{99}}, "accepted_entry_modes holds 99"},
		{"unspecified entry mode", &pb.Settings{AcceptedEntryModes: []pb.EntryMode{pb.EntryMode_ENTRY_MODE_UNSPECIFIED}}, "accepted_entry_modes"},
		{"zero velocity window", &pb.Settings{CardVelocityWindow: durationpb.New(0)}, "card_velocity_window"},
		{"negative limit", &pb.Settings{PerTransactionLimit: &pb.Money{MinorUnits: -1, Currency: "NZD"}}, "per_transaction_limit is negative"},
		{"extra key with a space", &pb.Settings{Extra: map[string]string{"bad key": "v"}}, `extra key "bad key"`},
		{"extra value too long", &pb.Settings{Extra: map[string]string{"k": strings.Repeat("é", 1025)}}, "longer than 1024"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := client.CheckSettings(tc.settings)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v, want valid", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// A pushed config that breaks the protocol's rules is acknowledged
// REJECTED without reaching Apply; the next good one is applied.
func TestWatchConfigRejectsInvalidSettings(t *testing.T) {
	fake := &scriptedTerminal{}
	fake.script = []func(pb.TerminalService_WatchConfigServer) error{
		func(st pb.TerminalService_WatchConfigServer) error {
			if err := send(st,
				&pb.WatchConfigResponse{Version: 3, Settings: &pb.Settings{HeartbeatInterval: durationpb.New(time.Second)}},
				&pb.WatchConfigResponse{Version: 4, Settings: &pb.Settings{ReceiptHeader: proto.String("ok")}}); err != nil {
				return err
			}
			return status.Error(codes.PermissionDenied, "done")
		},
	}
	c := dialFake(t, fake)
	var applied []uint64
	_, err := c.WatchConfig(t.Context(), client.ConfigWatch{
		KnownVersion: 2,
		Apply: func(_ context.Context, cfg *pb.WatchConfigResponse) error {
			applied = append(applied, cfg.GetVersion())
			return nil
		},
	})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("WatchConfig returned %v, want the PermissionDenied that ends it", err)
	}
	if len(applied) != 1 || applied[0] != 4 {
		t.Errorf("applied %v, want [4]: version 3 breaks the heartbeat bounds", applied)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if len(fake.acks) != 2 {
		t.Fatalf("got %d acks, want 2", len(fake.acks))
	}
	if a := fake.acks[0]; a.GetVersion() != 3 || a.GetResult() != pb.ConfigApplyResult_CONFIG_APPLY_RESULT_REJECTED || !strings.Contains(a.GetDetail(), "heartbeat_interval 1s") {
		t.Errorf("first ack %v, want version 3 REJECTED naming heartbeat_interval", a)
	}
	if a := fake.acks[1]; a.GetVersion() != 4 || a.GetResult() != pb.ConfigApplyResult_CONFIG_APPLY_RESULT_APPLIED {
		t.Errorf("second ack %v, want version 4 APPLIED", a)
	}
}
