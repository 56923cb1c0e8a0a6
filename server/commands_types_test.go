package server_test

import (
	"testing"
	"time"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// Every command type of the protocol can be queued, and is delivered and
// listed as the type it was queued as: a value added to the enum (such as
// COMMAND_TYPE_ROTATE_CREDENTIAL) that the fleet did not know would be
// refused as InvalidArgument, or listed under another name.
func TestEveryCommandTypeCanBeSent(t *testing.T) {
	e := newFleetEnv(t)
	ctx := t.Context()
	e.merchant("MID1", "s1")
	admin := e.dial(testAdminToken)
	tid, cred := e.registered("SN1", "MID1", "s1")
	want := map[string]pb.CommandType{}
	for n := range pb.CommandType_name {
		typ := pb.CommandType(n)
		if typ == pb.CommandType_COMMAND_TYPE_UNSPECIFIED {
			continue
		}
		c, err := admin.SendCommand(ctx, tid, typ, nil, time.Hour)
		if err != nil {
			t.Fatalf("SendCommand(%s): %v", typ, err)
		}
		if c.GetType() != typ {
			t.Errorf("SendCommand(%s) queued %s", typ, c.GetType())
		}
		want[c.GetCommandId()] = typ
	}
	hb, err := e.dial(cred).Heartbeat(ctx, &pb.TerminalStatus{})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(hb.GetCommands()); got != len(want) {
		t.Errorf("heartbeat delivered %d commands, want %d", got, len(want))
	}
	for _, c := range hb.GetCommands() {
		if c.GetType() != want[c.GetCommandId()] {
			t.Errorf("command %s delivered as %s, want %s", c.GetCommandId(), c.GetType(), want[c.GetCommandId()])
		}
	}
	list, err := admin.AllCommands(ctx, tid)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list {
		if c.GetType() != want[c.GetCommandId()] {
			t.Errorf("command %s listed as %s, want %s", c.GetCommandId(), c.GetType(), want[c.GetCommandId()])
		}
	}
}
