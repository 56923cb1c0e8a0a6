package fleet_test

import (
	"errors"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/fleet"
)

func TestCommandsDeliveryExpiryAndAck(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.merchant("MID1", "s1")
	a := e.registered("SN1", "MID1", "s1").Terminal.ID
	b := e.registered("SN2", "MID1", "s1").Terminal.ID
	var notified []string
	e.f.OnCommand(func(id string) { notified = append(notified, id) })

	reboot, err := e.f.SendCommand(ctx, a, fleet.CommandReboot, map[string]string{"reason": "update"}, time.Hour, admin)
	if err != nil {
		t.Fatal(err)
	}
	short, err := e.f.SendCommand(ctx, a, fleet.CommandUploadLogs, nil, time.Minute, admin)
	if err != nil {
		t.Fatal(err)
	}
	if len(notified) != 2 || notified[0] != a {
		t.Errorf("OnCommand calls = %v, want two for %s", notified, a)
	}
	e.clock.Advance(2 * time.Minute) // short expired while the terminal was offline
	res, err := e.f.Heartbeat(a, fleet.Status{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Commands) != 1 || res.Commands[0].ID != reboot.ID || res.Commands[0].State != fleet.CommandDelivered {
		t.Fatalf("delivered %+v, want only %s, DELIVERED", res.Commands, reboot.ID)
	}
	if got := e.f.PendingCommands(b); len(got) != 0 {
		t.Errorf("terminal b has commands %+v", got)
	}
	for _, tc := range []struct {
		name     string
		terminal string
		id       string
		ok       bool
		want     error
	}{
		{"other terminal's command", b, reboot.ID, true, fleet.ErrCommandNotOwned},
		{"unknown command", a, a + "-00000000000000ff", true, fleet.ErrCommandNotFound},
		{"malformed ID", a, "nope", true, fleet.ErrCommandNotFound},
		{"expired command", a, short.ID, true, fleet.ErrCommandExpired},
		{"ack", a, reboot.ID, true, nil},
		{"repeated ack", a, reboot.ID, true, nil},
		{"conflicting ack", a, reboot.ID, false, fleet.ErrCommandFinished},
	} {
		err := e.f.AckCommand(ctx, tc.terminal, tc.id, tc.ok, "done", audit.Actor{Name: "terminal:" + tc.terminal})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: AckCommand = %v, want %v", tc.name, err, tc.want)
		}
	}
	if got := e.f.PendingCommands(a); len(got) != 0 {
		t.Errorf("pending after ack and expiry: %+v", got)
	}
	if err := e.f.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	e = e.reopen()
	list, next, err := e.f.ListCommands(ctx, a, 10, "")
	if err != nil || next != "" {
		t.Fatalf("ListCommands: %v (next %q)", err, next)
	}
	got := map[string]fleet.CommandState{}
	for _, c := range list {
		got[c.ID] = c.State
	}
	if len(list) != 2 || list[0].ID != short.ID || got[reboot.ID] != fleet.CommandSucceeded || got[short.ID] != fleet.CommandExpired {
		t.Errorf("commands after restart = %+v, want newest first: %s EXPIRED, %s SUCCEEDED", list, short.ID, reboot.ID)
	}
	if list[1].Parameters["reason"] != "update" || list[1].Detail != "done" {
		t.Errorf("reboot after restart = %+v, want its parameters and ack detail", list[1])
	}
}

func TestUndeliveredCommandSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	e.merchant("MID1", "s1")
	a := e.registered("SN1", "MID1", "s1").Terminal.ID
	c, err := e.f.SendCommand(t.Context(), a, fleet.CommandLock, nil, 0, admin)
	if err != nil {
		t.Fatal(err)
	}
	e = e.reopen()
	got := e.f.PendingCommands(a)
	if len(got) != 1 || got[0].ID != c.ID || got[0].Type != fleet.CommandLock {
		t.Fatalf("pending after restart = %+v, want %s", got, c.ID)
	}
}
