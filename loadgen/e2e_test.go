package loadgen_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/posfleet/posfleet/client"
	"github.com/posfleet/posfleet/loadgen"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server"
)

// startPosfleet runs a real posfleet server (durable storage in a temporary
// directory) on a loopback port and returns its address and admin token.
func startPosfleet(t *testing.T) (addr, token string) {
	t.Helper()
	token = "loadgen-e2e-admin-token-0123456789"
	cfg := server.DefaultConfig(t.TempDir())
	cfg.AdminToken = token
	srv, err := server.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	return lis.Addr().String(), token
}

func dialN(t *testing.T, addr string, n int, opts ...client.Option) []*client.Client {
	t.Helper()
	var out []*client.Client
	for range n {
		c, err := client.Dial(addr, append([]client.Option{client.WithInsecure()}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		out = append(out, c)
	}
	return out
}

func TestEndToEndAgainstPosfleetServer(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run against a real server")
	}
	t.Parallel()
	addr, token := startPosfleet(t)
	admin := dialN(t, addr, 1, client.WithBearer(token))[0]
	conns := dialN(t, addr, 4)
	const terminals = 8
	fleet, err := loadgen.NewFleet(loadgen.FleetConfig{
		Terminals:         terminals,
		Merchants:         2,
		Mix:               loadgen.Mix{loadgen.TxApprove: 55, loadgen.TxDecline: 15, loadgen.TxReverse: 15, loadgen.TxRefund: 15},
		HeartbeatInterval: 5 * time.Second,
		Seed:              21,
		RunID:             "E2E",
	}, admin, conns, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := loadgen.Builtin(loadgen.ProfileConfigRollout, 60, 2*time.Second, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	run, err := loadgen.NewRun(loadgen.Config{Profile: p, Users: terminals, Seed: 21, OnEvent: fleet.OnEvent, Info: fleet.Info()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := fleet.Run(t.Context(), run); err != nil {
		t.Fatal(err)
	}
	res := run.Finish()

	// Every call of the fleet's lifecycle succeeded against the real server.
	for _, op := range []string{loadgen.OpCreateMerchant, loadgen.OpCreateStore, loadgen.OpProvision, loadgen.OpRegister,
		loadgen.OpHeartbeat, loadgen.OpAuthorize, loadgen.OpReverse, loadgen.OpRefund, loadgen.OpCloseBatch,
		loadgen.OpPublishConfig} {
		o := res.Op(op)
		if o == nil || o.Count == 0 {
			t.Errorf("%s: no calls", op)
			continue
		}
		if o.Errors != 0 {
			t.Errorf("%s: %d errors: %+v", op, o.Errors, o.Outcomes)
		}
	}
	for _, op := range []string{loadgen.OpWatch, loadgen.OpAckConfig} {
		if o := res.Op(op); o != nil {
			t.Errorf("%s: %d failures: %+v", op, o.Count, o.Outcomes)
		}
	}
	// Test cards decline with their documented codes; nothing else declines.
	want := map[string]bool{"declined:05": true, "declined:51": true, "declined:54": true, "declined:14": true}
	auth := res.Op(loadgen.OpAuthorize)
	if auth == nil {
		t.Fatal("no authorizations")
	}
	for _, o := range auth.Outcomes {
		if o.Outcome != "ok" && !want[o.Outcome] {
			t.Errorf("authorize outcome %s ×%d: not a test-card decline", o.Outcome, o.Count)
		}
	}
	if auth.Declined == 0 || auth.OK == 0 {
		t.Errorf("authorize: %d approved, %d declined; want both", auth.OK, auth.Declined)
	}
	// The fleet's own totals match the server's ledger in every batch.
	if cb := res.Op(loadgen.OpCloseBatch); cb == nil || cb.OK != cb.Count || cb.Count != terminals {
		t.Errorf("batch closes: got %+v, want all %d terminals in balance", cb, terminals)
	}
	if ro := res.Rollout; ro == nil || ro.Reached != terminals || ro.AllReachedMs == nil {
		t.Errorf("config rollout: got %+v, want all %d terminals reached", ro, terminals)
	}
	// About 150 arrivals over 8 terminals cannot fill 64-deep queues:
	// every arrival was offered and accounted for.
	var txns int64
	for _, st := range res.Stages {
		for _, o := range st.Ops {
			if o.Name == loadgen.OpTxn {
				txns += o.Count
			}
		}
	}
	if g := res.Generator; g.Dropped != 0 || txns != g.Issued {
		t.Errorf("generator: %d dropped, %d transactions (warm-up included) of %d issued", g.Dropped, txns, g.Issued)
	}
}

func TestEndToEndPaymentGateStopsADecliningRollout(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run against a real server")
	}
	t.Parallel()
	addr, token := startPosfleet(t)
	admin := dialN(t, addr, 1, client.WithBearer(token))[0]
	conns := dialN(t, addr, 4)
	const terminals = 40
	fleet, err := loadgen.NewFleet(loadgen.FleetConfig{
		Terminals: terminals, Merchants: 1, Mix: loadgen.Mix{loadgen.TxApprove: 100},
		HeartbeatInterval: 5 * time.Second, Seed: 22, RunID: "GATE", RolloutGate: true,
		// Ten payments are enough to judge here: under -race on a busy
		// 2-core machine the treated terminals may make only a dozen or
		// so in the run.
		RolloutGateMinPayments: 10,
	}, admin, conns, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := loadgen.Builtin(loadgen.ProfileConfigRollout, 200, 6*time.Second, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	run, err := loadgen.NewRun(loadgen.Config{Profile: p, Users: terminals, Seed: 22, OnEvent: fleet.OnEvent, Info: fleet.Info()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := fleet.Run(t.Context(), run); err != nil {
		t.Fatal(err)
	}
	res := run.Finish()
	ro := res.Rollout
	if ro == nil || ro.Gate == nil {
		t.Fatalf("config rollout %+v: no gate result", ro)
	}
	g := ro.Gate
	t.Logf("payment gate: stopped %d of %d within %.0f ms at stage %d; %d terminals, %d payments touched; %s",
		g.Stopped, g.Rollouts, g.StoppedMs, g.Stage, g.Terminals, g.Payments, g.Reason)
	if g.Stopped != 1 || g.Stage != 1 || g.State != "ABORTED" || g.Terminals == 0 || g.Terminals > terminals/2 || g.Payments < 10 {
		t.Errorf("gate result %+v: want the rollout rolled back in stage 1 after at least 10 payments", g)
	}
}

// Cleanup retires the run's terminals and archives its stores and
// merchants: none of them stays listed, and their records remain.
func TestCleanupRetiresAndArchives(t *testing.T) {
	t.Parallel()
	addr, token := startPosfleet(t)
	admin := dialN(t, addr, 1, client.WithBearer(token))[0]
	const terminals = 4
	fleet, err := loadgen.NewFleet(loadgen.FleetConfig{
		Terminals: terminals, Merchants: 2, StoresPerMerchant: 2, Seed: 3, RunID: "CLN", NoWatch: true,
		HeartbeatInterval: 5 * time.Second,
	}, admin, dialN(t, addr, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	run, err := loadgen.NewRun(loadgen.Config{Profile: steady(20, 300*time.Millisecond), Users: terminals}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := fleet.Run(t.Context(), run); err != nil {
		t.Fatal(err)
	}
	run.Finish()
	rep, err := fleet.Cleanup(t.Context())
	if want := (loadgen.CleanupReport{Terminals: terminals, Stores: 4, Merchants: 2}); err != nil || rep != want {
		t.Fatalf("Cleanup = %+v, %v; want %+v", rep, err, want)
	}
	if ms, err := admin.AllMerchants(t.Context()); err != nil || len(ms) != 0 {
		t.Errorf("merchants listed after cleanup: %d, %v; want none", len(ms), err)
	}
	if ss, err := admin.AllStores(t.Context(), ""); err != nil || len(ss) != 0 {
		t.Errorf("stores listed after cleanup: %d, %v; want none", len(ss), err)
	}
	ts, err := admin.AllTerminals(t.Context(), &pb.ListTerminalsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, term := range ts {
		if term.GetState() != pb.TerminalState_TERMINAL_STATE_RETIRED {
			t.Errorf("terminal %s is %v after cleanup, want retired", term.GetTerminalId(), term.GetState())
		}
	}
	if m, err := admin.GetMerchant(t.Context(), "LCLNM0000"); err != nil || m.GetArchiveTime() == nil {
		t.Errorf("archived merchant: %v, %v; want it readable with an archive time", m, err)
	}
	// Cleaning up again (a rerun) fails on nothing.
	if _, err := fleet.Cleanup(t.Context()); err != nil {
		t.Errorf("second Cleanup: %v", err)
	}
}
