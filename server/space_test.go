package server_test

import (
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server"
	"github.com/posfleet/posfleet/server/store/storetest"
)

// TestDiskLowRefusesWritesAndResumes drives the server's disk-space monitor
// with a settable free space: below the reserve, payments and admin writes
// are refused Unavailable DISK_LOW and health is NOT_SERVING while reads
// work; once space returns everything resumes without a restart.
func TestDiskLowRefusesWritesAndResumes(t *testing.T) {
	storetest.RequireBadger(t, "the disk-space watch")
	var free atomic.Int64
	free.Store(1 << 40)
	cfg := server.DefaultConfig(t.TempDir())
	cfg.AdminToken = testAdminToken
	cfg.DiskReserve = 1 << 30
	cfg.DiskCheckInterval = 20 * time.Millisecond
	server.SetStatfs(&cfg, func() (int64, error) { return free.Load(), nil })
	conn, stop := startServer(t, cfg)
	e := &fleetEnv{t: t, conn: conn, stop: stop, admin: pb.NewAdminServiceClient(conn), term: pb.NewTerminalServiceClient(conn), dir: cfg.DataDir}
	e.merchant("M1", "S1")
	_, cred := e.registered("SN-LOW-1", "M1", "S1")
	pay := pb.NewPaymentServiceClient(conn)
	pctx := bearer(t.Context(), cred)
	hc := healthpb.NewHealthClient(conn)
	waitHealth := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for _, svc := range []string{"", "posfleet.v1.PaymentService"} {
			for {
				h, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{Service: svc})
				if err == nil && h.GetStatus() == want {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("health %q: got %v, %v; want %v", svc, h.GetStatus(), err, want)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	ok, err := pay.Authorize(pctx, saleReq("before", 100))
	if err != nil {
		t.Fatal(err)
	}

	free.Store(1<<30 - 1)
	waitHealth(healthpb.HealthCheckResponse_NOT_SERVING)
	_, err = pay.Authorize(pctx, saleReq("low", 100))
	if status.Code(err) != codes.Unavailable || reason(err) != "DISK_LOW" {
		t.Errorf("Authorize while low: got %v, want Unavailable DISK_LOW", err)
	}
	_, err = e.admin.CreateMerchant(e.adminCtx(), createMerchantReq("M2"))
	if status.Code(err) != codes.Unavailable || reason(err) != "DISK_LOW" {
		t.Errorf("CreateMerchant while low: got %v, want Unavailable DISK_LOW", err)
	}
	if _, err := e.admin.GetMerchant(e.adminCtx(), &pb.GetMerchantRequest{MerchantId: "M1"}); err != nil {
		t.Errorf("GetMerchant while low: %v", err)
	}
	if h, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "posfleet.v1.AdminService"}); err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("admin health while low: got %v, %v; want SERVING (reads work)", h.GetStatus(), err)
	}

	free.Store(1 << 40)
	waitHealth(healthpb.HealthCheckResponse_SERVING)
	if r, err := pay.Authorize(pctx, saleReq("low", 100)); err != nil || r.GetReplayed() || r.GetDecision() != pb.Decision_DECISION_APPROVED {
		t.Errorf("Authorize once space returned: got %v, %v; want a fresh approval (the refusal decided nothing)", r, err)
	}
	if r, err := pay.Authorize(pctx, saleReq("before", 100)); err != nil || !r.GetReplayed() || r.GetAuthorizationId() != ok.GetAuthorizationId() {
		t.Errorf("replay once space returned: got %v, %v; want %s", r, err, ok.GetAuthorizationId())
	}
	if _, err := e.admin.CreateMerchant(e.adminCtx(), createMerchantReq("M2")); err != nil {
		t.Errorf("CreateMerchant once space returned: %v", err)
	}
}
