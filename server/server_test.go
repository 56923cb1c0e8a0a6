package server_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server"
)

// startServer runs a server on a random loopback port and returns a
// connection to it and a function that stops it and returns Serve's error.
func startServer(t *testing.T, cfg server.Config) (*grpc.ClientConn, func() error) {
	t.Helper()
	return startServerLogging(t, cfg, slog.New(slog.DiscardHandler))
}

// startServerLogging is startServer with the server logging to logger.
func startServerLogging(t *testing.T, cfg server.Config, logger *slog.Logger) (*grpc.ClientConn, func() error) {
	t.Helper()
	srv, err := server.New(cfg, logger)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startServing(t, srv, lis)
}

// startServing serves srv on lis and returns a client connection to it and
// a function that stops the server (also called at cleanup).
func startServing(t *testing.T, srv *server.Server, lis net.Listener) (*grpc.ClientConn, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		conn.Close()
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("server did not stop within 30s")
			return nil
		}
	}
	t.Cleanup(func() { stop() })
	return conn, stop
}

func TestHealthReflectionAndShutdown(t *testing.T) {
	dir := t.TempDir()
	conn, stop := startServer(t, server.DefaultConfig(dir))
	ctx := t.Context()

	hc := healthpb.NewHealthClient(conn)
	for _, svc := range []string{"", "posfleet.v1.TerminalService", "posfleet.v1.PaymentService", "posfleet.v1.AdminService"} {
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health %q = %v, %v; want SERVING", svc, resp.GetStatus(), err)
		}
	}

	rc, err := reflectpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Send(&reflectpb.ServerReflectionRequest{MessageRequest: &reflectpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := rc.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	sort.Strings(names)
	got := strings.Join(names, ",")
	for _, want := range []string{"posfleet.v1.AdminService", "posfleet.v1.PaymentService", "posfleet.v1.TerminalService", "grpc.health.v1.Health"} {
		if !strings.Contains(got, want) {
			t.Errorf("reflection lists %s; missing %s", got, want)
		}
	}
	rc.CloseSend()

	// A bootstrap admin token was generated, private to its owner.
	st, err := os.Stat(filepath.Join(dir, server.AdminTokenFile))
	if err != nil {
		t.Fatalf("admin token file: %v", err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("admin token file mode = %o, want 600", perm)
	}

	if err := stop(); err != nil {
		t.Fatalf("Serve returned %v after shutdown, want nil", err)
	}
	// The data directory can be opened again: storage was closed.
	conn2, stop2 := startServer(t, server.DefaultConfig(dir))
	if _, err := healthpb.NewHealthClient(conn2).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("health after restart: %v", err)
	}
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
}

func TestUnauthenticatedCallsAreRefused(t *testing.T) {
	conn, _ := startServer(t, server.DefaultConfig(t.TempDir()))
	ctx := t.Context()
	_, err := pb.NewAdminServiceClient(conn).ListMerchants(ctx, &pb.ListMerchantsRequest{})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("ListMerchants without token: %v, want Unauthenticated", err)
	}
	_, err = pb.NewPaymentServiceClient(conn).Authorize(ctx, &pb.AuthorizeRequest{})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("Authorize without credential: %v, want Unauthenticated", err)
	}
}

func TestOversizedMessageRefused(t *testing.T) {
	cfg := server.DefaultConfig(t.TempDir())
	conn, _ := startServer(t, cfg)
	big := strings.Repeat("x", cfg.MaxRecvMsgSize+1)
	_, err := pb.NewTerminalServiceClient(conn).Register(t.Context(), &pb.RegisterRequest{SerialNumber: big})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("oversized Register: %v, want ResourceExhausted", err)
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []func(*server.Config){
		func(c *server.Config) { c.DataDir = "" },
		func(c *server.Config) { c.MaxRecvMsgSize = 64 << 20 },
		func(c *server.Config) { c.MaxConcurrentStreams = 0 },
		func(c *server.Config) { c.MaxCallTimeout = 0 },
		func(c *server.Config) { c.AdminToken = "short" },
		func(c *server.Config) { c.MaxHeaderListSize = 0 },
		func(c *server.Config) { c.MaxConnections = -1 },
		func(c *server.Config) { c.MaxPageBytes = c.MaxSendMsgSize },
		func(c *server.Config) { c.Quotas.Payment.Burst = 0 },
		func(c *server.Config) { c.Webhooks.RetryFor = -time.Hour },
	}
	for i, mut := range bad {
		c := server.DefaultConfig(t.TempDir())
		mut(&c)
		if c.Validate() == nil {
			t.Errorf("case %d: Validate accepted an invalid config", i)
		}
	}
	if err := server.DefaultConfig("x").Validate(); err != nil {
		t.Errorf("default config invalid: %v", err)
	}
}

// Open streams end when shutdown starts, so that the graceful stop waits
// only for ordinary calls: a client's health Watch (gRPC's client-side
// health checking keeps one per connection) held it for the whole grace
// period, and then the server cut off every call still running.
func TestShutdownEndsOpenStreams(t *testing.T) {
	cfg := server.DefaultConfig(t.TempDir())
	cfg.ShutdownGrace = 30 * time.Second
	srv, err := server.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	watch, err := healthpb.NewHealthClient(conn).Watch(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := watch.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health watch: %v, %v; want SERVING", resp, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(cfg.ShutdownGrace / 2):
		t.Fatal("shutdown still waiting on the open health watch")
	}
	for {
		resp, err := watch.Recv()
		if err != nil {
			if status.Code(err) != codes.Unavailable {
				t.Errorf("health watch ended with %v, want Unavailable", err)
			}
			break
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("health watch during shutdown: %v, want NOT_SERVING", resp.GetStatus())
		}
	}
}

// The data directory is made private to its owner even when it already
// existed with a wider mode: the database files in it hold the identity
// signing key and are created readable by everyone.
func TestDataDirIsMadePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	srv, err := server.New(server.DefaultConfig(dir), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode %v, want 0700", st.Mode().Perm())
	}
}
