package console

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

func TestBatteryLine(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 8, 0, 0, 0, time.UTC)
	sample := func(after time.Duration, level *uint32) *pb.TerminalStatusSample {
		return &pb.TerminalStatusSample{SampleTime: timestamppb.New(t0.Add(after)), Status: &pb.TerminalStatus{BatteryPercent: level}}
	}
	tests := []struct {
		name    string
		history []*pb.TerminalStatusSample // newest first
		want    string
	}{
		{"none", nil, ""},
		{"one level", []*pb.TerminalStatusSample{sample(0, proto.Uint32(50))}, ""},
		{"oldest on the left, placed by time",
			[]*pb.TerminalStatusSample{sample(60*time.Minute, proto.Uint32(0)), sample(15*time.Minute, nil), sample(15*time.Minute, proto.Uint32(50)), sample(0, proto.Uint32(100))},
			"0.0,0.0 60.0,20.0 240.0,40.0"},
		{"one instant", []*pb.TerminalStatusSample{sample(0, proto.Uint32(25)), sample(0, proto.Uint32(75))}, "0.0,10.0 240.0,30.0"},
	}
	for _, tc := range tests {
		if got := batteryLine(tc.history); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}
