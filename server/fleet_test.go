package server_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server"
)

const testAdminToken = "pfa_test-bootstrap-token-0123456789"

// fleetEnv is a running server with an admin connection.
type fleetEnv struct {
	t     *testing.T
	conn  *grpc.ClientConn
	stop  func() error
	admin pb.AdminServiceClient
	term  pb.TerminalServiceClient
	dir   string
}

func newFleetEnv(t *testing.T) *fleetEnv {
	t.Helper()
	return startFleetEnv(t, t.TempDir())
}

func startFleetEnv(t *testing.T, dir string) *fleetEnv {
	t.Helper()
	cfg := server.DefaultConfig(dir)
	cfg.AdminToken = testAdminToken
	conn, stop := startServer(t, cfg)
	return &fleetEnv{t: t, conn: conn, stop: stop, admin: pb.NewAdminServiceClient(conn), term: pb.NewTerminalServiceClient(conn), dir: dir}
}

// bearer returns ctx carrying secret as the bearer credential.
func bearer(ctx context.Context, secret string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+secret)
}

func (e *fleetEnv) adminCtx() context.Context { return bearer(e.t.Context(), testAdminToken) }

// merchant creates a merchant with its stores.
func (e *fleetEnv) merchant(mid string, stores ...string) {
	e.t.Helper()
	ctx := e.adminCtx()
	_, err := e.admin.CreateMerchant(ctx, &pb.CreateMerchantRequest{Merchant: &pb.Merchant{
		MerchantId: mid, LegalName: mid + " Ltd", DisplayName: mid, Mcc: "5411", Currency: "NZD",
	}})
	if err != nil {
		e.t.Fatalf("CreateMerchant %s: %v", mid, err)
	}
	for _, sid := range stores {
		e.store(mid, sid)
	}
}

func (e *fleetEnv) store(mid, sid string) {
	e.t.Helper()
	_, err := e.admin.CreateStore(e.adminCtx(), &pb.CreateStoreRequest{Store: &pb.Store{
		MerchantId: mid, StoreId: sid, Name: "Store " + sid, TimeZone: "Pacific/Auckland",
	}})
	if err != nil {
		e.t.Fatalf("CreateStore %s/%s: %v", mid, sid, err)
	}
}

// provision provisions serial at mid/sid and returns the response.
func (e *fleetEnv) provision(serial, mid, sid string) *pb.ProvisionTerminalResponse {
	e.t.Helper()
	resp, err := e.admin.ProvisionTerminal(e.adminCtx(), &pb.ProvisionTerminalRequest{
		SerialNumber: serial, MerchantId: mid, StoreId: sid, Label: "Lane 1", EnrollmentTtl: durationpb.New(time.Hour),
	})
	if err != nil {
		e.t.Fatalf("ProvisionTerminal %s: %v", serial, err)
	}
	return resp
}

// registered provisions and registers a terminal; it returns its ID and
// credential.
func (e *fleetEnv) registered(serial, mid, sid string) (string, string) {
	e.t.Helper()
	p := e.provision(serial, mid, sid)
	resp, err := e.term.Register(e.t.Context(), &pb.RegisterRequest{
		SerialNumber: serial, EnrollmentCode: p.GetEnrollmentCode(),
		Device: &pb.DeviceInfo{Model: "A920", Manufacturer: "PAX", FirmwareVersion: "fw1", AppVersion: "app1"},
	})
	if err != nil {
		e.t.Fatalf("Register %s: %v", serial, err)
	}
	return resp.GetTerminalId(), resp.GetCredential()
}

// reason returns the ErrorInfo reason of err, or "".
func reason(err error) string {
	for _, d := range status.Convert(err).Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			return ei.GetReason()
		}
	}
	return ""
}

// violationFields returns the fields of err's BadRequest violations.
func violationFields(err error) []string {
	var out []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				out = append(out, v.GetField())
			}
		}
	}
	return out
}

func TestProvisionRegisterHeartbeat(t *testing.T) {
	e := newFleetEnv(t)
	e.merchant("MID1", "akl-01")
	p := e.provision("SN-0001", "MID1", "akl-01")
	if got := p.GetTerminalId(); !regexpTID.MatchString(got) {
		t.Fatalf("terminal_id = %q, want 8 of [A-Z0-9]", got)
	}
	if got := p.GetTerminal().GetState(); got != pb.TerminalState_TERMINAL_STATE_PROVISIONED {
		t.Fatalf("state after provision = %v, want PROVISIONED", got)
	}
	reg, err := e.term.Register(t.Context(), &pb.RegisterRequest{SerialNumber: "SN-0001", EnrollmentCode: p.GetEnrollmentCode(),
		Device: &pb.DeviceInfo{Model: "A920", FirmwareVersion: "fw1", AppVersion: "app1"}})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if reg.GetTerminalId() != p.GetTerminalId() || reg.GetCredential() == "" {
		t.Fatalf("Register = %q/%q, want terminal %s and a credential", reg.GetTerminalId(), reg.GetCredential(), p.GetTerminalId())
	}
	if got := reg.GetIdentity().GetMerchantId(); got != "MID1" {
		t.Errorf("identity merchant = %q, want MID1", got)
	}
	if d := reg.GetHeartbeatInterval().AsDuration(); d < 54*time.Second || d > 66*time.Second {
		t.Errorf("heartbeat interval = %v, want 60s ±10%%", d)
	}
	ctx := bearer(t.Context(), reg.GetCredential())
	hb, err := e.term.Heartbeat(ctx, &pb.HeartbeatRequest{Status: &pb.TerminalStatus{FirmwareVersion: "fw2", AppVersion: "app1"}})
	if err != nil {
		t.Fatalf("Heartbeat: %v", err)
	}
	if hb.GetIdentityVersion() != 1 {
		t.Errorf("heartbeat identity_version = %d, want 1", hb.GetIdentityVersion())
	}
	got, err := e.admin.GetTerminal(e.adminCtx(), &pb.GetTerminalRequest{TerminalId: p.GetTerminalId()})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetTerminal().GetConnectivity() != pb.Connectivity_CONNECTIVITY_ONLINE || got.GetTerminal().GetLastStatus().GetFirmwareVersion() != "fw2" {
		t.Errorf("terminal after heartbeat: connectivity %v, firmware %q; want ONLINE, fw2",
			got.GetTerminal().GetConnectivity(), got.GetTerminal().GetLastStatus().GetFirmwareVersion())
	}
	// The admin token may not call terminal methods, nor the credential admin ones.
	if _, err := e.term.Heartbeat(e.adminCtx(), &pb.HeartbeatRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("Heartbeat with admin token: %v, want PermissionDenied", err)
	}
	if _, err := e.admin.ListMerchants(ctx, &pb.ListMerchantsRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("ListMerchants with terminal credential: %v, want PermissionDenied", err)
	}
}
