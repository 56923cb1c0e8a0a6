package client_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// scriptedTerminal is a TerminalService whose WatchConfig calls follow a
// script and whose AckConfig calls are recorded.
type scriptedTerminal struct {
	pb.UnimplementedTerminalServiceServer
	script []func(stream pb.TerminalService_WatchConfigServer) error

	mu     sync.Mutex // guards the fields below
	known  []uint64
	acks   []*pb.AckConfigRequest // the AckConfig calls that succeeded
	tried  []uint64               // the version of every AckConfig call
	failAc int                    // AckConfig calls to fail with Unavailable first
	// ackErr, when set, decides (with mu held) whether an AckConfig call
	// that failAc lets through fails.
	ackErr func(*pb.AckConfigRequest) error
}

func (s *scriptedTerminal) WatchConfig(req *pb.WatchConfigRequest, stream pb.TerminalService_WatchConfigServer) error {
	s.mu.Lock()
	call := len(s.known)
	s.known = append(s.known, req.GetKnownVersion())
	s.mu.Unlock()
	if call >= len(s.script) {
		return status.Error(codes.Unauthenticated, "script over")
	}
	return s.script[call](stream)
}

func (s *scriptedTerminal) AckConfig(_ context.Context, req *pb.AckConfigRequest) (*pb.AckConfigResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tried = append(s.tried, req.GetVersion())
	if s.failAc > 0 {
		s.failAc--
		return nil, status.Error(codes.Unavailable, "try again")
	}
	if s.ackErr != nil {
		if err := s.ackErr(req); err != nil {
			return nil, err
		}
	}
	s.acks = append(s.acks, req)
	return &pb.AckConfigResponse{}, nil
}

// waitFor reports whether cond, checked with s.mu held, comes to hold
// before ctx ends or a generous deadline passes.
func (s *scriptedTerminal) waitFor(ctx context.Context, cond func() bool) bool {
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		ok := cond()
		s.mu.Unlock()
		if ok {
			return true
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
}

func dialFake(t *testing.T, impl pb.TerminalServiceServer) *client.Client {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer()
	pb.RegisterTerminalServiceServer(gs, impl)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	c, err := client.Dial("passthrough:///bufnet", client.WithInsecure(),
		client.WithDialOptions(grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) })))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func send(stream pb.TerminalService_WatchConfigServer, msgs ...*pb.WatchConfigResponse) error {
	for _, m := range msgs {
		if err := stream.Send(m); err != nil {
			return err
		}
	}
	return nil
}

func TestWatchConfigResumesAppliesAndAcks(t *testing.T) {
	fake := &scriptedTerminal{failAc: 2}
	fake.script = []func(pb.TerminalService_WatchConfigServer) error{
		func(st pb.TerminalService_WatchConfigServer) error {
			err := send(st,
				&pb.WatchConfigResponse{Version: 6, Commands: []*pb.RemoteCommand{{CommandId: "c1"}}},
				&pb.WatchConfigResponse{Version: 7})
			if err != nil {
				return err
			}
			return status.Error(codes.Unavailable, "connection lost")
		},
		func(st pb.TerminalService_WatchConfigServer) error {
			return status.Error(codes.Unavailable, "still down") // a failure before any message
		},
		func(st pb.TerminalService_WatchConfigServer) error {
			if err := send(st, &pb.WatchConfigResponse{Version: 9, Settings: &pb.Settings{ReceiptHeader: proto.String("h")}}); err != nil {
				return err
			}
			return status.Error(codes.PermissionDenied, "terminal suspended")
		},
	}
	c := dialFake(t, fake)
	var applied []uint64
	var cmds []string
	var brokenStreams int
	last, err := c.WatchConfig(t.Context(), client.ConfigWatch{
		KnownVersion: 5,
		MinBackoff:   time.Millisecond,
		MaxBackoff:   4 * time.Millisecond,
		Apply: func(_ context.Context, cfg *pb.WatchConfigResponse) error {
			applied = append(applied, cfg.GetVersion())
			if cfg.GetVersion() == 7 {
				return errors.New("printer does not support density 9")
			}
			return nil
		},
		Commands: func(_ context.Context, cs []*pb.RemoteCommand) {
			for _, c := range cs {
				cmds = append(cmds, c.GetCommandId())
			}
		},
		OnError: func(err error, retryIn time.Duration) {
			if retryIn > 0 {
				brokenStreams++
			}
		},
	})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("WatchConfig returned %v, want the PermissionDenied that ends it", err)
	}
	if last != 9 {
		t.Errorf("last version %d, want 9", last)
	}
	if want := []uint64{6, 7, 9}; !slices.Equal(applied, want) {
		t.Errorf("applied %v, want %v", applied, want)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if want := []uint64{5, 7, 7}; !slices.Equal(fake.known, want) {
		t.Errorf("streams opened with known versions %v, want %v (resume from the last received)", fake.known, want)
	}
	if !slices.Equal(cmds, []string{"c1"}) || brokenStreams != 2 {
		t.Errorf("commands %v broken streams %d, want [c1] and 2", cmds, brokenStreams)
	}
	var results []string
	for _, a := range fake.acks {
		results = append(results, a.GetResult().String()+":"+a.GetDetail())
	}
	want := []string{
		"CONFIG_APPLY_RESULT_APPLIED:",
		"CONFIG_APPLY_RESULT_REJECTED:printer does not support density 9",
		"CONFIG_APPLY_RESULT_APPLIED:",
	}
	if !slices.Equal(results, want) {
		t.Errorf("acks %v, want %v (the first retried through Unavailable)", results, want)
	}
}

func TestWatchConfigStopsWithContext(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	fake := &scriptedTerminal{script: []func(pb.TerminalService_WatchConfigServer) error{
		func(st pb.TerminalService_WatchConfigServer) error {
			select {
			case <-block:
			case <-st.Context().Done():
			}
			return nil
		},
	}}
	c := dialFake(t, fake)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := c.WatchConfig(ctx, client.ConfigWatch{Apply: func(context.Context, *pb.WatchConfigResponse) error { return nil }})
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("WatchConfig after cancel: %v, want context.Canceled", err)
	}
	if _, err := c.WatchConfig(t.Context(), client.ConfigWatch{}); err == nil {
		t.Error("WatchConfig without Apply: nil error")
	}
}

// TestWatchConfigAgainstServer runs the loop against a real server: a
// publish reaches it, a rejected version shows up in the rollout's health.
func TestWatchConfigAgainstServer(t *testing.T) {
	addr, admin, enrollment := fleetServer(t, "SN-1")
	ctx := t.Context()
	anon, err := client.Dial(addr, client.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	reg, err := anon.Register(ctx, "SN-1", enrollment, &pb.DeviceInfo{Model: "A920"})
	if err != nil {
		t.Fatal(err)
	}
	term, err := client.Dial(addr, client.WithInsecure(), client.WithBearer(reg.GetCredential()))
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()

	got := make(chan *pb.WatchConfigResponse, 4)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go term.WatchConfig(wctx, client.ConfigWatch{
		KnownVersion: reg.GetConfig().GetVersion(),
		Apply: func(_ context.Context, cfg *pb.WatchConfigResponse) error {
			defer func() { got <- cfg }()
			if cfg.GetSettings().GetExtra()["mode"] == "bad" {
				return errors.New("unsupported mode")
			}
			return nil
		},
	})
	for _, mode := range []string{"good", "bad"} {
		resp, err := admin.Admin().PublishConfig(ctx, &pb.PublishConfigRequest{Settings: &pb.Settings{Extra: map[string]string{"mode": mode}}})
		if err != nil {
			t.Fatal(err)
		}
		if cfg := <-got; cfg.GetVersion() != resp.GetVersion() {
			t.Fatalf("applied version %d, want %d", cfg.GetVersion(), resp.GetVersion())
		}
		// The acknowledgement follows Apply; wait for the rollout to count it.
		deadline := time.Now().Add(10 * time.Second)
		for {
			ro, err := admin.Admin().GetRollout(ctx, &pb.GetRolloutRequest{RolloutId: resp.GetRolloutId()})
			if err != nil {
				t.Fatal(err)
			}
			r := ro.GetRollout()
			if r.GetApplied()+r.GetRejected() == 1 {
				if (mode == "bad") != (r.GetRejected() == 1) {
					t.Errorf("mode %s: applied %d rejected %d", mode, r.GetApplied(), r.GetRejected())
				}
				if mode == "bad" && r.GetState() != pb.RolloutState_ROLLOUT_STATE_HALTED {
					t.Errorf("rejected rollout state %s, want HALTED", r.GetState())
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("mode %s: rollout never counted the acknowledgement", mode)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// ackVersions lists the versions of acks.
func ackVersions(acks []*pb.AckConfigRequest) []uint64 {
	var vs []uint64
	for _, a := range acks {
		vs = append(vs, a.GetVersion())
	}
	return vs
}

// TestWatchConfigResendsAckAfterReconnect: the server goes away (a restart)
// right after delivering a version, for longer than the acknowledgement's
// immediate retries (about 1.5s). The loop used to drop the acknowledgement
// then; the reconnect resumes from that version, so the server never pushed
// it again and the version was never acknowledged, which stalls a staged
// rollout for good. The acknowledgement must be sent once the server is
// back.
func TestWatchConfigResendsAckAfterReconnect(t *testing.T) {
	fake := &scriptedTerminal{}
	down := false
	fake.ackErr = func(*pb.AckConfigRequest) error {
		if down {
			return status.Error(codes.Unavailable, "connection refused")
		}
		return nil
	}
	fake.script = []func(pb.TerminalService_WatchConfigServer) error{
		func(st pb.TerminalService_WatchConfigServer) error {
			// Delivers version 6 as it shuts down; down until the next stream.
			fake.mu.Lock()
			down = true
			fake.mu.Unlock()
			if err := send(st, &pb.WatchConfigResponse{Version: 6}); err != nil {
				return err
			}
			return status.Error(codes.Unavailable, "shutting down")
		},
		func(st pb.TerminalService_WatchConfigServer) error {
			// Back up. The terminal is current, so nothing is pushed: only
			// a resent acknowledgement can reach the server.
			fake.mu.Lock()
			down = false
			fake.mu.Unlock()
			fake.waitFor(st.Context(), func() bool { return len(fake.acks) > 0 })
			return status.Error(codes.PermissionDenied, "end of test")
		},
	}
	c := dialFake(t, fake)
	last, err := c.WatchConfig(t.Context(), client.ConfigWatch{
		KnownVersion: 5, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
		Apply: func(context.Context, *pb.WatchConfigResponse) error { return nil },
	})
	if status.Code(err) != codes.PermissionDenied || last != 6 {
		t.Errorf("WatchConfig returned %d, %v; want 6 and the PermissionDenied that ends it", last, err)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if want := []uint64{5, 6}; !slices.Equal(fake.known, want) {
		t.Errorf("streams opened with known versions %v, want %v", fake.known, want)
	}
	if len(fake.acks) != 1 || fake.acks[0].GetVersion() != 6 || fake.acks[0].GetResult() != pb.ConfigApplyResult_CONFIG_APPLY_RESULT_APPLIED {
		t.Fatalf("acknowledged %v, want version 6 APPLIED once (ack attempts for versions %v)", fake.acks, fake.tried)
	}
}

// TestWatchConfigResendsAckWhileConnected: an acknowledgement that fails
// past its immediate retries while the stream stays up is sent again with
// backoff, without waiting for the stream to break.
func TestWatchConfigResendsAckWhileConnected(t *testing.T) {
	fake := &scriptedTerminal{failAc: 6} // one more than the immediate retries
	fake.script = []func(pb.TerminalService_WatchConfigServer) error{
		func(st pb.TerminalService_WatchConfigServer) error {
			if err := send(st, &pb.WatchConfigResponse{Version: 6}); err != nil {
				return err
			}
			fake.waitFor(st.Context(), func() bool { return len(fake.acks) > 0 })
			return status.Error(codes.PermissionDenied, "end of test")
		},
	}
	c := dialFake(t, fake)
	_, err := c.WatchConfig(t.Context(), client.ConfigWatch{
		KnownVersion: 5, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
		Apply: func(context.Context, *pb.WatchConfigResponse) error { return nil },
	})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("WatchConfig returned %v, want the PermissionDenied that ends it", err)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if got := ackVersions(fake.acks); !slices.Equal(got, []uint64{6}) {
		t.Errorf("acknowledged versions %v, want [6]", got)
	}
	if len(fake.known) != 1 {
		t.Errorf("streams opened with known versions %v, want just the one", fake.known)
	}
}

// TestWatchConfigDropsRefusedAck: an acknowledgement the server refuses for
// good (here FailedPrecondition: a version it did not issue) is not sent
// again after a reconnect.
func TestWatchConfigDropsRefusedAck(t *testing.T) {
	fake := &scriptedTerminal{}
	fake.ackErr = func(req *pb.AckConfigRequest) error {
		if req.GetVersion() == 6 {
			return status.Error(codes.FailedPrecondition, "config version was not issued to this terminal")
		}
		return nil
	}
	fake.script = []func(pb.TerminalService_WatchConfigServer) error{
		func(st pb.TerminalService_WatchConfigServer) error {
			if err := send(st, &pb.WatchConfigResponse{Version: 6}); err != nil {
				return err
			}
			fake.waitFor(st.Context(), func() bool { return len(fake.tried) > 0 })
			return status.Error(codes.Unavailable, "restarting")
		},
		func(st pb.TerminalService_WatchConfigServer) error {
			if err := send(st, &pb.WatchConfigResponse{Version: 7}); err != nil {
				return err
			}
			fake.waitFor(st.Context(), func() bool { return len(fake.acks) > 0 })
			return status.Error(codes.PermissionDenied, "end of test")
		},
	}
	c := dialFake(t, fake)
	var refused []codes.Code
	_, err := c.WatchConfig(t.Context(), client.ConfigWatch{
		KnownVersion: 5, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
		Apply: func(context.Context, *pb.WatchConfigResponse) error { return nil },
		OnError: func(err error, retryIn time.Duration) {
			if retryIn == 0 {
				refused = append(refused, status.Code(err))
			}
		},
	})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("WatchConfig returned %v, want the PermissionDenied that ends it", err)
	}
	if !slices.Equal(refused, []codes.Code{codes.FailedPrecondition}) {
		t.Errorf("failed acknowledgements reported %v, want one FailedPrecondition", refused)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if want := []uint64{6, 7}; !slices.Equal(fake.tried, want) {
		t.Errorf("acknowledgements sent for versions %v, want %v (the refused one once)", fake.tried, want)
	}
	if got := ackVersions(fake.acks); !slices.Equal(got, []uint64{7}) {
		t.Errorf("acknowledged versions %v, want [7]", got)
	}
}
