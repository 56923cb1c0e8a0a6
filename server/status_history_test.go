package server_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// GetTerminal returns the status history, newest first, with the battery,
// paper and signal each heartbeat reported.
func TestGetTerminalStatusHistory(t *testing.T) {
	e := newFleetEnv(t)
	e.merchant("MID1", "akl-01")
	tid, cred := e.registered("SN-0001", "MID1", "akl-01")
	ctx := bearer(t.Context(), cred)
	sent := []*pb.TerminalStatus{
		{BatteryPercent: proto.Uint32(90), Paper: pb.PaperStatus_PAPER_STATUS_OK, Network: pb.NetworkType_NETWORK_TYPE_WIFI, SignalDbm: proto.Int32(-60)},
		{BatteryPercent: proto.Uint32(55), Paper: pb.PaperStatus_PAPER_STATUS_OK, Network: pb.NetworkType_NETWORK_TYPE_WIFI, SignalDbm: proto.Int32(-60)},
		{BatteryPercent: proto.Uint32(54), Paper: pb.PaperStatus_PAPER_STATUS_OK, Network: pb.NetworkType_NETWORK_TYPE_WIFI, SignalDbm: proto.Int32(-62)},
		{BatteryPercent: proto.Uint32(54), Paper: pb.PaperStatus_PAPER_STATUS_OUT, Network: pb.NetworkType_NETWORK_TYPE_WIFI, SignalDbm: proto.Int32(-62)},
	}
	for _, st := range sent {
		if _, err := e.term.Heartbeat(ctx, &pb.HeartbeatRequest{Status: st}); err != nil {
			t.Fatalf("Heartbeat: %v", err)
		}
	}
	got, err := e.admin.GetTerminal(e.adminCtx(), &pb.GetTerminalRequest{TerminalId: tid})
	if err != nil {
		t.Fatal(err)
	}
	// The third heartbeat changes too little to be sampled within the
	// sampling interval.
	want := []*pb.TerminalStatus{sent[3], sent[1], sent[0]}
	h := got.GetStatusHistory()
	if len(h) != len(want) {
		t.Fatalf("got %d samples, want %d: %v", len(h), len(want), h)
	}
	for i, s := range h {
		if !proto.Equal(s.GetStatus(), want[i]) {
			t.Errorf("sample %d: got %v, want %v", i, s.GetStatus(), want[i])
		}
		if s.GetSampleTime() == nil || (i > 0 && s.GetSampleTime().AsTime().After(h[i-1].GetSampleTime().AsTime())) {
			t.Errorf("sample %d time %v is missing or newer than the sample before it", i, s.GetSampleTime())
		}
	}
}
