package server_test

import (
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server"
)

func TestWhoAmIAndInProcessPeer(t *testing.T) {
	cfg := server.DefaultConfig(t.TempDir())
	cfg.AdminToken = testAdminToken
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
	defer inproc.Close()
	e := &fleetEnv{t: t}
	e.conn, e.stop = startServing(t, srv, lis)
	e.admin = pb.NewAdminServiceClient(e.conn)
	local := pb.NewAdminServiceClient(inproc)

	_, secret := e.adminToken("desk", pb.Role_ROLE_AUDITOR)
	for name, c := range map[string]pb.AdminServiceClient{"tcp": e.admin, "in-process": local} {
		got, err := c.WhoAmI(bearer(t.Context(), secret), &pb.WhoAmIRequest{})
		if err != nil {
			t.Fatalf("%s: WhoAmI: %v", name, err)
		}
		if got.GetAdminToken().GetName() != "desk" || got.GetAdminToken().GetRole() != pb.Role_ROLE_AUDITOR {
			t.Errorf("%s: WhoAmI = %v, want desk AUDITOR", name, got)
		}
	}
	if _, err := local.WhoAmI(t.Context(), &pb.WhoAmIRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("WhoAmI without token: got %v, want Unauthenticated", err)
	}

	// A forwarded address is believed on the in-process connection only.
	fwd := func(addr string) metadata.MD { return metadata.Pairs(server.ForwardedPeerMetadata, addr) }
	ctx := metadata.NewOutgoingContext(t.Context(), metadata.Join(fwd("203.0.113.7:5000"), metadata.Pairs("authorization", "Bearer wrong-1")))
	local.WhoAmI(ctx, &pb.WhoAmIRequest{})
	ctx = metadata.NewOutgoingContext(t.Context(), metadata.Join(fwd("198.51.100.9:6000"), metadata.Pairs("authorization", "Bearer wrong-2")))
	e.admin.WhoAmI(ctx, &pb.WhoAmIRequest{})
	peers := map[string]bool{}
	for _, ev := range e.auditEvents(pb.AuditEventType_AUDIT_EVENT_TYPE_AUTH_FAILURE) {
		peers[ev.GetPeer()] = true
	}
	if !peers["203.0.113.7:5000"] {
		t.Errorf("audit peers %v: want the in-process call's forwarded 203.0.113.7:5000", peers)
	}
	for p := range peers {
		if strings.HasPrefix(p, "198.51.100.9") {
			t.Errorf("audit peers %v: a TCP caller's forwarded address was believed", peers)
		}
	}
}

// adminToken creates an admin token and returns its ID and secret.
func (e *fleetEnv) adminToken(name string, role pb.Role) (string, string) {
	e.t.Helper()
	resp, err := e.admin.CreateAdminToken(e.adminCtx(), &pb.CreateAdminTokenRequest{Name: name, Role: role, Ttl: durationpb.New(24 * time.Hour)})
	if err != nil {
		e.t.Fatalf("CreateAdminToken: %v", err)
	}
	return resp.GetAdminToken().GetTokenId(), resp.GetToken()
}
