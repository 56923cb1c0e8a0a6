package server_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server"
	"github.com/posfleet/posfleet/server/payment"
)

// obsEnv is a running server, kept at hand for its HTTP handlers, with one
// registered terminal of merchant M1. Unlike fleetEnv it serves
// benchmarks too.
type obsEnv struct {
	srv       *server.Server
	conn      *grpc.ClientConn
	admin     pb.AdminServiceClient
	term      pb.TerminalServiceClient
	pay       pb.PaymentServiceClient
	tid, cred string
	// engineFails, set by a test that fails the payment engine on purpose,
	// accepts the engine's failure as Serve's error.
	engineFails bool
}

// startObsEnv starts a server with cfg (AdminToken is set here), creates
// merchant M1 with store S1 and registers one terminal. The server stops
// when tb ends.
func startObsEnv(tb testing.TB, cfg server.Config) *obsEnv {
	tb.Helper()
	cfg.AdminToken = testAdminToken
	srv, err := server.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	e := &obsEnv{srv: srv, conn: conn, admin: pb.NewAdminServiceClient(conn), term: pb.NewTerminalServiceClient(conn), pay: pb.NewPaymentServiceClient(conn)}
	tb.Cleanup(func() {
		conn.Close()
		cancel()
		select {
		case err := <-done:
			if err != nil && !(e.engineFails && errors.Is(err, payment.ErrUnavailable)) {
				tb.Errorf("Serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			tb.Error("server did not stop within 30s")
		}
	})
	actx := bearer(tb.Context(), testAdminToken)
	if _, err := e.admin.CreateMerchant(actx, &pb.CreateMerchantRequest{Merchant: &pb.Merchant{
		MerchantId: "M1", LegalName: "M1 Ltd", DisplayName: "M1", Mcc: "5411", Currency: "NZD",
	}}); err != nil {
		tb.Fatalf("CreateMerchant: %v", err)
	}
	if _, err := e.admin.CreateStore(actx, &pb.CreateStoreRequest{Store: &pb.Store{
		MerchantId: "M1", StoreId: "S1", Name: "Store S1", TimeZone: "Pacific/Auckland",
	}}); err != nil {
		tb.Fatalf("CreateStore: %v", err)
	}
	e.tid, e.cred = e.register(tb, "SN-OBS-1")
	return e
}

// register provisions and registers a terminal of M1/S1.
func (e *obsEnv) register(tb testing.TB, serial string) (tid, cred string) {
	tb.Helper()
	p, err := e.admin.ProvisionTerminal(bearer(tb.Context(), testAdminToken), &pb.ProvisionTerminalRequest{
		SerialNumber: serial, MerchantId: "M1", StoreId: "S1", EnrollmentTtl: durationpb.New(time.Hour),
	})
	if err != nil {
		tb.Fatalf("ProvisionTerminal: %v", err)
	}
	r, err := e.term.Register(tb.Context(), &pb.RegisterRequest{
		SerialNumber: serial, EnrollmentCode: p.GetEnrollmentCode(), Device: &pb.DeviceInfo{Model: "A920"},
	})
	if err != nil {
		tb.Fatalf("Register: %v", err)
	}
	return r.GetTerminalId(), r.GetCredential()
}
