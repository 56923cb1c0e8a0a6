package console_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server"
	"github.com/posfleet/posfleet/server/console"
)

const rootToken = "pfa_console-test-root-token-0123456789"

// env is a posfleet server with the console in front of it.
type env struct {
	t        *testing.T
	url      string
	addr     string // gRPC address
	conn     *grpc.ClientConn
	admin    pb.AdminServiceClient
	term     pb.TerminalServiceClient
	payments pb.PaymentServiceClient
}

// newEnv starts a server (in memory), serves gRPC on loopback for the test's
// own calls and the console on an httptest server.
func newEnv(t *testing.T) *env {
	t.Helper()
	cfg := server.DefaultConfig("")
	cfg.InMemory = true
	cfg.AdminToken = rootToken
	srv, err := server.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	inproc, err := srv.InProcessConn()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	ccfg := console.DefaultConfig()
	ccfg.RefreshSeconds = 1
	con, err := console.New(ccfg, pb.NewAdminServiceClient(inproc), slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(con)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		hs.Close()
		conn.Close()
		inproc.Close()
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("server did not stop")
		}
	})
	return &env{t: t, url: hs.URL, addr: lis.Addr().String(), conn: conn, admin: pb.NewAdminServiceClient(conn),
		term: pb.NewTerminalServiceClient(conn), payments: pb.NewPaymentServiceClient(conn)}
}

func bearer(ctx context.Context, secret string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+secret)
}

func (e *env) root() context.Context { return bearer(e.t.Context(), rootToken) }

// merchant creates a merchant with one store per ID in stores.
func (e *env) merchant(id, display string, stores ...string) {
	e.t.Helper()
	if _, err := e.admin.CreateMerchant(e.root(), &pb.CreateMerchantRequest{Merchant: &pb.Merchant{
		MerchantId: id, LegalName: id + " Ltd", DisplayName: display, Mcc: "5411", Currency: "CNY",
	}}); err != nil {
		e.t.Fatalf("CreateMerchant %s: %v", id, err)
	}
	for _, s := range stores {
		if _, err := e.admin.CreateStore(e.root(), &pb.CreateStoreRequest{Store: &pb.Store{MerchantId: id, StoreId: s, Name: "Store " + s, TimeZone: "Asia/Shanghai"}}); err != nil {
			e.t.Fatalf("CreateStore %s/%s: %v", id, s, err)
		}
	}
}

// registered provisions and registers a terminal and returns its ID and
// credential.
func (e *env) registered(serial, mid, sid string) (string, string) {
	e.t.Helper()
	p, err := e.admin.ProvisionTerminal(e.root(), &pb.ProvisionTerminalRequest{SerialNumber: serial, MerchantId: mid, StoreId: sid, Label: "Lane 1", EnrollmentTtl: durationpb.New(time.Hour)})
	if err != nil {
		e.t.Fatalf("ProvisionTerminal: %v", err)
	}
	r, err := e.term.Register(e.t.Context(), &pb.RegisterRequest{SerialNumber: serial, EnrollmentCode: p.GetEnrollmentCode(),
		Device: &pb.DeviceInfo{Model: "A920", Manufacturer: "PAX", FirmwareVersion: "fw1", AppVersion: "app1"}})
	if err != nil {
		e.t.Fatalf("Register: %v", err)
	}
	return r.GetTerminalId(), r.GetCredential()
}

// token creates an admin token with role and returns its secret.
func (e *env) token(name string, role pb.Role) string {
	e.t.Helper()
	resp, err := e.admin.CreateAdminToken(e.root(), &pb.CreateAdminTokenRequest{Name: name, Role: role, Ttl: durationpb.New(24 * time.Hour)})
	if err != nil {
		e.t.Fatalf("CreateAdminToken: %v", err)
	}
	return resp.GetToken()
}

// browser is a plain HTTP client of the console with a cookie jar; its
// writes carry the console's Origin like a browser's.
type browser struct {
	e  *env
	hc *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, hc: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// do sends a request and returns the status and body.
func (b *browser) do(method, path string, form url.Values, header map[string]string) (int, string, http.Header) {
	b.e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(b.e.t.Context(), method, b.e.url+path, body)
	if err != nil {
		b.e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out), resp.Header
}

func (b *browser) get(path string) (int, string) {
	code, body, _ := b.do(http.MethodGet, path, nil, nil)
	return code, body
}

// post sends a form from a console page: same Origin, with the CSRF token
// of the page at from.
func (b *browser) post(from, path string, form url.Values) (int, string) {
	b.e.t.Helper()
	_, page := b.get(from)
	form.Set("csrf", csrfOf(b.e.t, page))
	code, body, _ := b.do(http.MethodPost, path, form, map[string]string{"Origin": b.e.url})
	return code, body
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfRe.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in page:\n%.2000s", page)
	}
	return m[1]
}

// login signs in with token and fails the test unless it works.
func (b *browser) login(token string) {
	b.e.t.Helper()
	code, body, _ := b.do(http.MethodPost, "/login", url.Values{"token": {token}}, map[string]string{"Origin": b.e.url})
	if code != http.StatusSeeOther {
		b.e.t.Fatalf("login: got %d, want 303\n%.2000s", code, body)
	}
}
