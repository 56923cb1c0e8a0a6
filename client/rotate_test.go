package client_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// registerOn starts a server, registers the terminal serial on it and
// returns the server's address, an admin client, the registration and a
// client with the terminal's credential.
func registerOn(t *testing.T, serial string) (string, *client.Client, *pb.RegisterResponse, *client.Client) {
	t.Helper()
	addr, admin, enrollment := fleetServer(t, serial)
	reg, err := admin.Register(t.Context(), serial, enrollment, &pb.DeviceInfo{Model: "A920"})
	if err != nil {
		t.Fatal(err)
	}
	term, err := client.Dial(addr, client.WithInsecure(), client.WithBearer(reg.GetCredential()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { term.Close() })
	return addr, admin, reg, term
}

// rotationTerminal is a registered terminal whose config watch carries
// out rotation commands, against a real server.
type rotationTerminal struct {
	addr  string
	admin *client.Client
	id    string
	term  *client.Client

	mu       sync.Mutex // guards the fields below
	stored   []string   // credentials SaveCredential stored, in order
	failSave bool       // SaveCredential fails
	versions []uint64   // versions applied
	others   []pb.CommandType
}

func startRotationTerminal(t *testing.T) (*rotationTerminal, string) {
	t.Helper()
	addr, admin, reg, term := registerOn(t, "SN-ROT")
	rt := &rotationTerminal{addr: addr, admin: admin, id: reg.GetTerminalId(), term: term}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := term.WatchConfig(ctx, client.ConfigWatch{
			KnownVersion: reg.GetConfig().GetVersion(),
			MinBackoff:   20 * time.Millisecond,
			Apply: func(_ context.Context, cfg *pb.WatchConfigResponse) error {
				rt.mu.Lock()
				defer rt.mu.Unlock()
				rt.versions = append(rt.versions, cfg.GetVersion())
				return nil
			},
			Commands: func(ctx context.Context, cmds []*pb.RemoteCommand) {
				rt.mu.Lock()
				defer rt.mu.Unlock()
				for _, c := range cmds {
					rt.others = append(rt.others, c.GetType())
				}
			},
			SaveCredential: func(_ context.Context, cred string) error {
				rt.mu.Lock()
				defer rt.mu.Unlock()
				if rt.failSave {
					return errors.New("flash full")
				}
				rt.stored = append(rt.stored, cred)
				return nil
			},
		})
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("WatchConfig ended with %v, want context.Canceled", err)
		}
	})
	return rt, reg.GetCredential()
}

// command queues a command for the terminal and waits until it is
// finished, returning it.
func (rt *rotationTerminal) command(t *testing.T, typ pb.CommandType) *pb.RemoteCommand {
	t.Helper()
	ctx := t.Context()
	sent, err := rt.admin.SendCommand(ctx, rt.id, typ, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		cs, err := rt.admin.AllCommands(ctx, rt.id)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if c.GetCommandId() == sent.GetCommandId() && (c.GetState() == pb.CommandState_COMMAND_STATE_SUCCEEDED || c.GetState() == pb.CommandState_COMMAND_STATE_FAILED) {
				return c
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("command %s (%s) never acknowledged", sent.GetCommandId(), typ)
	return nil
}

// waitUntil fails the test unless cond, checked with rt.mu held, comes
// to hold within 10 seconds.
func (rt *rotationTerminal) waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rt.mu.Lock()
		ok := cond()
		rt.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// heartbeatCode returns the status code of a Heartbeat made with cred.
func heartbeatCode(t *testing.T, addr, cred string) codes.Code {
	t.Helper()
	c, err := client.Dial(addr, client.WithInsecure(), client.WithBearer(cred))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Heartbeat(t.Context(), &pb.TerminalStatus{})
	return status.Code(err)
}

// The server asks for a rotation with a remote command: the watch
// rotates, stores the new credential before switching to it,
// acknowledges the command with it, and goes on watching with it, so that
// the next config still arrives; the old credential is refused.
func TestWatchRotatesCredentialOnCommand(t *testing.T) {
	rt, old := startRotationTerminal(t)
	ctx := t.Context()

	c := rt.command(t, pb.CommandType_COMMAND_TYPE_ROTATE_CREDENTIAL)
	if c.GetState() != pb.CommandState_COMMAND_STATE_SUCCEEDED {
		t.Fatalf("rotation command = %v; want SUCCEEDED", c)
	}
	rt.mu.Lock()
	stored := append([]string(nil), rt.stored...)
	rt.mu.Unlock()
	if len(stored) != 1 || stored[0] == old || stored[0] == "" {
		t.Fatalf("stored credentials: %d, want one new credential", len(stored))
	}
	if got := heartbeatCode(t, rt.addr, old); got != codes.Unauthenticated {
		t.Errorf("Heartbeat with the old credential: got %s, want Unauthenticated", got)
	}
	if got := heartbeatCode(t, rt.addr, stored[0]); got != codes.OK {
		t.Errorf("Heartbeat with the stored credential: got %s, want OK", got)
	}
	if _, err := rt.term.Heartbeat(ctx, &pb.TerminalStatus{}); err != nil {
		t.Errorf("Heartbeat of the switched client: %v", err)
	}

	// The watch goes on with the new credential: a config published now
	// arrives, and other commands still reach Commands.
	header := "after rotation"
	pub, err := rt.admin.Admin().PublishConfig(ctx, &pb.PublishConfigRequest{
		Scope: &pb.ConfigScope{TerminalId: rt.id}, Settings: &pb.Settings{ReceiptHeader: &header}})
	if err != nil {
		t.Fatal(err)
	}
	rt.waitUntil(t, "the config published after the rotation applied", func() bool {
		return len(rt.versions) > 0 && rt.versions[len(rt.versions)-1] == pub.GetVersion()
	})
	rt.mu.Lock()
	others := rt.others
	rt.mu.Unlock()
	if len(others) != 0 {
		t.Errorf("Commands got %v; want the rotation handled by the watch, not passed on", others)
	}
}

// A terminal that cannot store the new credential keeps the one it has,
// which still works, and acknowledges the command FAILED saying why.
func TestWatchRotationThatCannotStoreKeepsTheCredential(t *testing.T) {
	rt, old := startRotationTerminal(t)
	rt.mu.Lock()
	rt.failSave = true
	rt.mu.Unlock()
	c := rt.command(t, pb.CommandType_COMMAND_TYPE_ROTATE_CREDENTIAL)
	if c.GetState() != pb.CommandState_COMMAND_STATE_FAILED || c.GetResultDetail() == "" {
		t.Errorf("rotation command = %v; want FAILED with a detail", c)
	}
	if got := heartbeatCode(t, rt.addr, old); got != codes.OK {
		t.Errorf("Heartbeat with the credential kept: got %s, want OK", got)
	}
	// Other commands go to Commands; the watch is still up.
	sent, err := rt.admin.SendCommand(t.Context(), rt.id, pb.CommandType_COMMAND_TYPE_REBOOT, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rt.waitUntil(t, "the REBOOT command passed to Commands", func() bool {
		return len(rt.others) == 1 && rt.others[0] == sent.GetType()
	})
}

// A rotation command that came in a heartbeat answer: RotateForCommand
// rotates, stores, switches and acknowledges it with the new credential.
func TestRotateForCommandFromHeartbeat(t *testing.T) {
	addr, admin, reg, term := registerOn(t, "SN-HB")
	ctx := t.Context()
	sent, err := admin.SendCommand(ctx, reg.GetTerminalId(), pb.CommandType_COMMAND_TYPE_ROTATE_CREDENTIAL, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	hb, err := term.Heartbeat(ctx, &pb.TerminalStatus{})
	if err != nil || len(hb.GetCommands()) != 1 {
		t.Fatalf("Heartbeat = %v, %v; want the rotation command", hb, err)
	}
	if err := term.RotateForCommand(ctx, &pb.RemoteCommand{CommandId: "x", Type: pb.CommandType_COMMAND_TYPE_REBOOT}, nil); err == nil {
		t.Error("RotateForCommand(REBOOT command) = nil; want an error")
	}
	if err := term.RotateAndSwitch(ctx, nil); err == nil {
		t.Error("RotateAndSwitch(nil save) = nil; want an error")
	}
	var stored string
	if err := term.RotateForCommand(ctx, hb.GetCommands()[0], func(_ context.Context, cred string) error { stored = cred; return nil }); err != nil {
		t.Fatalf("RotateForCommand: %v", err)
	}
	cs, err := admin.AllCommands(ctx, reg.GetTerminalId())
	if err != nil || len(cs) != 1 || cs[0].GetCommandId() != sent.GetCommandId() || cs[0].GetState() != pb.CommandState_COMMAND_STATE_SUCCEEDED {
		t.Fatalf("commands = %v, %v; want the rotation SUCCEEDED", cs, err)
	}
	if got := heartbeatCode(t, addr, reg.GetCredential()); got != codes.Unauthenticated {
		t.Errorf("Heartbeat with the old credential: got %s, want Unauthenticated", got)
	}
	if got := heartbeatCode(t, addr, stored); stored == "" || got != codes.OK {
		t.Errorf("Heartbeat with the stored credential: got %s, want OK", got)
	}
}
