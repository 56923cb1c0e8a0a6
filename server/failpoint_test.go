package server_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server"
)

// faults drives the store's commit failpoint: it fails commits with err
// while set, and holds them while hold is open.
type faults struct {
	mu   sync.Mutex // guards err, hold
	err  error
	hold chan struct{}
}

func (f *faults) hook() error {
	f.mu.Lock()
	err, hold := f.err, f.hold
	f.mu.Unlock()
	if hold != nil {
		<-hold
	}
	return err
}

func (f *faults) set(err error, hold chan struct{}) {
	f.mu.Lock()
	f.err, f.hold = err, hold
	f.mu.Unlock()
}

// startFaultyEnv is startFleetEnv with the commit failpoint wired to f.
func startFaultyEnv(t *testing.T, dir string, f *faults) *fleetEnv {
	t.Helper()
	cfg := server.DefaultConfig(dir)
	cfg.AdminToken = testAdminToken
	if f != nil {
		server.SetCommitFault(&cfg, f.hook)
	}
	conn, stop := startServer(t, cfg)
	return &fleetEnv{t: t, conn: conn, stop: stop, admin: pb.NewAdminServiceClient(conn), term: pb.NewTerminalServiceClient(conn), dir: dir}
}

func createMerchantReq(id string) *pb.CreateMerchantRequest {
	return &pb.CreateMerchantRequest{Merchant: &pb.Merchant{MerchantId: id, LegalName: id + " Ltd", Mcc: "5411", Currency: "NZD"}}
}

// TestCommitErrorIsUnavailableAndLosesNothing injects a failing commit: an
// admin write and a payment fail Unavailable with their reasons and leave
// nothing behind; the fleet writes again once the fault clears, the payment
// engine after a restart, and everything acknowledged before is intact.
func TestCommitErrorIsUnavailableAndLosesNothing(t *testing.T) {
	dir := t.TempDir()
	f := &faults{}
	e := startFaultyEnv(t, dir, f)
	e.merchant("M1", "S1")
	_, cred := e.registered("SN-FAULT-1", "M1", "S1")
	pay := pb.NewPaymentServiceClient(e.conn)
	pctx := bearer(t.Context(), cred)
	ok, err := pay.Authorize(pctx, saleReq("ok-1", 100))
	if err != nil {
		t.Fatal(err)
	}

	f.set(errors.New("injected: write /data/000001.mem: input/output error"), nil)
	_, err = e.admin.CreateMerchant(e.adminCtx(), createMerchantReq("M2"))
	if status.Code(err) != codes.Unavailable || reason(err) != "STORAGE_UNAVAILABLE" {
		t.Errorf("CreateMerchant with a failing commit: got %v, want Unavailable STORAGE_UNAVAILABLE", err)
	}
	resp, err := pay.Authorize(pctx, saleReq("lost-1", 100))
	if status.Code(err) != codes.Unavailable || reason(err) != "PAYMENTS_UNAVAILABLE" {
		t.Errorf("Authorize with a failing commit: got %v, %v; want Unavailable PAYMENTS_UNAVAILABLE", resp, err)
	}
	hc := healthpb.NewHealthClient(e.conn)
	if h, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "posfleet.v1.PaymentService"}); err != nil || h.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("payment health after a failed commit: got %v, %v; want NOT_SERVING", h.GetStatus(), err)
	}
	if _, err := e.admin.GetMerchant(e.adminCtx(), &pb.GetMerchantRequest{MerchantId: "M2"}); status.Code(err) != codes.NotFound {
		t.Errorf("merchant of the failed commit: got %v, want NotFound", err)
	}

	f.set(nil, nil)
	if _, err := e.admin.CreateMerchant(e.adminCtx(), createMerchantReq("M2")); err != nil {
		t.Errorf("CreateMerchant once the fault cleared: %v", err)
	}
	if err := e.stop(); err != nil {
		t.Logf("stop after a failed payment commit: %v", err)
	}

	e = startFaultyEnv(t, dir, nil)
	pay = pb.NewPaymentServiceClient(e.conn)
	again, err := pay.Authorize(pctx, saleReq("ok-1", 100))
	if err != nil || !again.GetReplayed() || again.GetAuthorizationId() != ok.GetAuthorizationId() {
		t.Errorf("acknowledged payment after restart: got %v, %v; want %s replayed", again, err, ok.GetAuthorizationId())
	}
	retry, err := pay.Authorize(pctx, saleReq("lost-1", 100))
	if err != nil || retry.GetReplayed() || retry.GetDecision() != pb.Decision_DECISION_APPROVED {
		t.Errorf("retry of the failed payment after restart: got %v, %v; want a fresh approval", retry, err)
	}
	created := 0
	for _, ev := range e.auditEvents(pb.AuditEventType_AUDIT_EVENT_TYPE_MERCHANT_CREATED) {
		if ev.GetMerchantId() == "M2" {
			created++
		}
	}
	if created != 1 {
		t.Errorf("MerchantCreated events for M2: got %d, want 1 (the failed attempt leaves none)", created)
	}
}

// TestSlowCommitHoldsTheAnswer holds commits as a slow fsync would: neither
// an admin write nor a payment is answered before its commit returns.
func TestSlowCommitHoldsTheAnswer(t *testing.T) {
	f := &faults{}
	e := startFaultyEnv(t, t.TempDir(), f)
	e.merchant("M1", "S1")
	_, cred := e.registered("SN-SLOW-1", "M1", "S1")
	pay := pb.NewPaymentServiceClient(e.conn)
	pctx := bearer(t.Context(), cred)

	hold := make(chan struct{})
	f.set(nil, hold)
	adminDone := make(chan error, 1)
	payDone := make(chan error, 1)
	go func() {
		_, err := e.admin.CreateMerchant(e.adminCtx(), createMerchantReq("M2"))
		adminDone <- err
	}()
	go func() {
		_, err := pay.Authorize(pctx, saleReq("slow-1", 100))
		payDone <- err
	}()
	select {
	case err := <-adminDone:
		t.Fatalf("CreateMerchant answered while its commit was held: %v", err)
	case err := <-payDone:
		t.Fatalf("Authorize answered while its commit was held: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	f.set(nil, nil)
	close(hold)
	if err := <-adminDone; err != nil {
		t.Errorf("CreateMerchant after the commit returned: %v", err)
	}
	if err := <-payDone; err != nil {
		t.Errorf("Authorize after the commit returned: %v", err)
	}
}
