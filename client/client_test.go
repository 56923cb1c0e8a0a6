package client_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server"
)

// selfSigned returns a server TLS config for 127.0.0.1 and a pool trusting it.
func selfSigned(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "posfleet-test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool
}

func serve(t *testing.T, cfg server.Config) string {
	t.Helper()
	addr, _ := serveUntil(t, cfg)
	return addr
}

// serveUntil serves a server until stop (or the test's end) shuts it
// down as SIGTERM does, and returns its address and stop.
func serveUntil(t *testing.T, cfg server.Config) (addr string, stop func()) {
	t.Helper()
	srv, err := server.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(ctx, lis); close(done) }()
	stop = sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(stop)
	return lis.Addr().String(), stop
}

// fleetServer serves a fresh server with merchant M1 (NZD) and its store
// S1, and provisions a terminal with serial: it returns the address, an
// admin client and the terminal's enrollment code.
func fleetServer(t *testing.T, serial string) (addr string, admin *client.Client, enrollment string) {
	t.Helper()
	const adminToken = "pfa_client-test-admin-token-0123456789"
	cfg := server.DefaultConfig(t.TempDir())
	cfg.AdminToken = adminToken
	addr = serve(t, cfg)
	ctx := t.Context()
	admin, err := client.Dial(addr, client.WithInsecure(), client.WithBearer(adminToken))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	if _, err := admin.CreateMerchant(ctx, &pb.Merchant{MerchantId: "M1", LegalName: "M1 Ltd", Mcc: "5411", Currency: "NZD"}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateStore(ctx, &pb.Store{MerchantId: "M1", StoreId: "S1", Name: "S1"}); err != nil {
		t.Fatal(err)
	}
	p, err := admin.ProvisionTerminal(ctx, serial, "M1", "S1", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return addr, admin, p.GetEnrollmentCode()
}

func TestDialTLSAndHealth(t *testing.T) {
	srvTLS, pool := selfSigned(t)
	cfg := server.DefaultConfig(t.TempDir())
	cfg.TLS = srvTLS
	addr := serve(t, cfg)

	c, err := client.Dial(addr, client.WithTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}), client.WithBearer("secret-over-tls"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st, err := c.Health(t.Context(), "")
	if err != nil || st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Health over TLS = %v, %v; want SERVING", st, err)
	}

	// A client that does not trust the certificate must fail.
	bad, _ := client.Dial(addr, client.WithTLS(&tls.Config{MinVersion: tls.VersionTLS12}))
	defer bad.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := bad.Health(ctx, ""); status.Code(err) != codes.Unavailable {
		t.Fatalf("untrusted certificate: err = %v, want Unavailable", err)
	}
}

func TestDialRequiresTransportChoice(t *testing.T) {
	if _, err := client.Dial("127.0.0.1:1"); err == nil {
		t.Fatal("Dial without WithTLS or WithInsecure succeeded")
	}
}

// recorder is a health server that records the metadata and deadline of
// the calls it gets.
type recorder struct {
	healthpb.UnimplementedHealthServer
	md       chan metadata.MD
	deadline chan time.Duration
}

func (r *recorder) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	r.md <- md
	d, ok := ctx.Deadline()
	if !ok {
		r.deadline <- 0
	} else {
		r.deadline <- time.Until(d)
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func TestBearerAndDefaultDeadline(t *testing.T) {
	rec := &recorder{md: make(chan metadata.MD, 1), deadline: make(chan time.Duration, 1)}
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, rec)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	defer gs.Stop()

	c, err := client.Dial(lis.Addr().String(), client.WithInsecure(), client.WithBearer("tok123"), client.WithDefaultTimeout(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Health(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	if got := (<-rec.md).Get("authorization"); len(got) != 1 || got[0] != "Bearer tok123" {
		t.Errorf("authorization metadata = %q, want [Bearer tok123]", got)
	}
	if d := <-rec.deadline; d <= 0 || d > 3*time.Second {
		t.Errorf("server saw deadline in %v, want a default of at most 3s", d)
	}
}
