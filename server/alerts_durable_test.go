package server_test

import (
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server"
	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/store/storetest"
)

// TestAlertsDurableBeforeTheyAreReported checks the two alerts a webhook
// reports without a change of their own: DISK_LOW is on disk before health
// reports the low disk, and a merchant mismatch before VerifyMerchant
// answers. Events are read straight from the audit trail, with no Flush,
// so only committed ones count. A mismatch that cannot be written fails
// the call Unavailable STORAGE_UNAVAILABLE, and the terminal's retry is
// recorded with the lost one counted.
func TestAlertsDurableBeforeTheyAreReported(t *testing.T) {
	storetest.RequireBadger(t, "the disk-space watch")
	var free atomic.Int64
	free.Store(1 << 40)
	f := &faults{}
	cfg := server.DefaultConfig(t.TempDir())
	cfg.AdminToken = testAdminToken
	cfg.DiskReserve = 1 << 30
	cfg.DiskCheckInterval = 20 * time.Millisecond
	server.SetStatfs(&cfg, func() (int64, error) { return free.Load(), nil })
	server.SetCommitFault(&cfg, f.hook)
	srv, err := server.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conn, stop := startServing(t, srv, lis)
	e := &fleetEnv{t: t, conn: conn, stop: stop, admin: pb.NewAdminServiceClient(conn), term: pb.NewTerminalServiceClient(conn), dir: cfg.DataDir}
	e.merchant("M1", "S1")
	_, cred := e.registered("SN-ALERT-1", "M1", "S1")
	log := srv.Engines().Audit
	onDisk := func(typ audit.Type) []audit.Event {
		t.Helper()
		evs, _, err := log.List(t.Context(), audit.Filter{Type: typ}, 100, "")
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	hc := healthpb.NewHealthClient(conn)
	waitHealth := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			h, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{})
			if err == nil && h.GetStatus() == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("health: got %v, %v; want %v", h.GetStatus(), err, want)
			}
		}
	}

	free.Store(1<<30 - 1)
	waitHealth(healthpb.HealthCheckResponse_NOT_SERVING)
	if got := len(onDisk(audit.DiskLow)); got != 1 {
		t.Errorf("DISK_LOW events on disk when health went NOT_SERVING: got %d, want 1", got)
	}
	free.Store(1 << 40)
	waitHealth(healthpb.HealthCheckResponse_SERVING)

	tctx := bearer(t.Context(), cred)
	// The credential's first use is confirmed on disk: make it before the
	// commits fail, so that the failing commit is the alert's.
	if _, err := e.term.Heartbeat(tctx, &pb.HeartbeatRequest{Status: &pb.TerminalStatus{}}); err != nil {
		t.Fatal(err)
	}
	claim := &pb.VerifyMerchantRequest{ClaimedMerchantId: "M9"}
	f.set(errors.New("injected: fsync: input/output error"), nil)
	_, err = e.term.VerifyMerchant(tctx, claim)
	f.set(nil, nil)
	if status.Code(err) != codes.Unavailable || reason(err) != "STORAGE_UNAVAILABLE" {
		t.Errorf("VerifyMerchant mismatch with a failing commit: got %v, want Unavailable STORAGE_UNAVAILABLE", err)
	}
	if got := len(onDisk(audit.MerchantMismatch)); got != 0 {
		t.Errorf("mismatch events on disk after the failed commit: got %d, want 0", got)
	}
	resp, err := e.term.VerifyMerchant(tctx, claim)
	if err != nil || resp.GetMatches() {
		t.Fatalf("VerifyMerchant mismatch: got %v, %v; want matches false", resp, err)
	}
	evs := onDisk(audit.MerchantMismatch)
	if len(evs) != 1 {
		t.Fatalf("mismatch events on disk when VerifyMerchant answered: got %d, want 1", len(evs))
	}
	if got := evs[0].Attributes["suppressed_repeats"]; got != "1" {
		t.Errorf("suppressed_repeats of the retry's alert: got %q, want 1 (the lost claim)", got)
	}
}
