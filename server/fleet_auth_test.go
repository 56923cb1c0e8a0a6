package server_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server"
)

// dial returns a client of the environment's server with a bearer secret.
func (e *fleetEnv) dial(secret string) *client.Client {
	e.t.Helper()
	opts := []client.Option{client.WithInsecure()}
	if secret != "" {
		opts = append(opts, client.WithBearer(secret))
	}
	c, err := client.Dial(e.conn.Target(), opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// auditEvents lists audit events of a type, newest first.
func (e *fleetEnv) auditEvents(typ pb.AuditEventType) []*pb.AuditEvent {
	e.t.Helper()
	evs, err := e.dial(testAdminToken).AuditEvents(e.t.Context(), &pb.ListAuditEventsRequest{Type: typ}, 1000)
	if err != nil {
		e.t.Fatalf("ListAuditEvents: %v", err)
	}
	return evs
}

func TestAuthenticationMatrix(t *testing.T) {
	e := newFleetEnv(t)
	ctx := t.Context()
	e.merchant("MID1", "s1")
	admin := e.dial(testAdminToken)
	opSecret, _, err := admin.CreateAdminToken(ctx, "ops", pb.Role_ROLE_OPERATOR, 0)
	if err != nil {
		t.Fatal(err)
	}
	audSecret, _, err := admin.CreateAdminToken(ctx, "auditor", pb.Role_ROLE_AUDITOR, 0)
	if err != nil {
		t.Fatal(err)
	}
	revSecret, rev, err := admin.CreateAdminToken(ctx, "gone", pb.Role_ROLE_ADMIN, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RevokeAdminToken(ctx, rev.GetTokenId()); err != nil {
		t.Fatal(err)
	}
	_, active := e.registered("SN-A", "MID1", "s1")
	suspendedID, suspended := e.registered("SN-S", "MID1", "s1")
	retiredID, retired := e.registered("SN-R", "MID1", "s1")
	if _, err := admin.SuspendTerminal(ctx, suspendedID, "inspection"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RetireTerminal(ctx, retiredID, "stolen"); err != nil {
		t.Fatal(err)
	}

	heartbeat := func(c *client.Client) error { _, err := c.Heartbeat(ctx, &pb.TerminalStatus{}); return err }
	listMerchants := func(c *client.Client) error { _, err := c.AllMerchants(ctx); return err }
	createMerchant := func(c *client.Client) error {
		_, err := c.CreateMerchant(ctx, &pb.Merchant{MerchantId: "NEW", LegalName: "x", Mcc: "5411", Currency: "NZD"})
		if status.Code(err) == codes.AlreadyExists {
			return nil
		}
		return err
	}
	createToken := func(c *client.Client) error {
		_, _, err := c.CreateAdminToken(ctx, "t", pb.Role_ROLE_AUDITOR, 0)
		return err
	}
	authorize := func(c *client.Client) error { _, err := c.Payment().Authorize(ctx, &pb.AuthorizeRequest{}); return err }

	cases := []struct {
		name   string
		secret string
		call   func(*client.Client) error
		code   codes.Code
		reason string
	}{
		{"no credential on a terminal method", "", heartbeat, codes.Unauthenticated, "CREDENTIAL_INVALID"},
		{"unknown credential", "pft_not-a-real-credential", heartbeat, codes.Unauthenticated, "CREDENTIAL_INVALID"},
		{"no token on an admin method", "", listMerchants, codes.Unauthenticated, "CREDENTIAL_INVALID"},
		{"active terminal", active, heartbeat, codes.OK, ""},
		{"terminal credential on an admin method", active, listMerchants, codes.PermissionDenied, "WRONG_CREDENTIAL_KIND"},
		{"admin token on a terminal method", testAdminToken, heartbeat, codes.PermissionDenied, "WRONG_CREDENTIAL_KIND"},
		{"suspended terminal", suspended, heartbeat, codes.PermissionDenied, "TERMINAL_SUSPENDED"},
		{"retired terminal", retired, heartbeat, codes.PermissionDenied, "TERMINAL_RETIRED"},
		{"auditor reads", audSecret, listMerchants, codes.OK, ""},
		{"auditor writes", audSecret, createMerchant, codes.PermissionDenied, "INSUFFICIENT_ROLE"},
		{"operator writes", opSecret, createMerchant, codes.OK, ""},
		{"operator manages tokens", opSecret, createToken, codes.PermissionDenied, "INSUFFICIENT_ROLE"},
		{"admin manages tokens", testAdminToken, createToken, codes.OK, ""},
		{"revoked token", revSecret, listMerchants, codes.Unauthenticated, "CREDENTIAL_INVALID"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(e.dial(tc.secret))
			if got := status.Code(err); got != tc.code {
				t.Fatalf("got %v (%v), want %v", got, err, tc.code)
			}
			if got := reason(err); got != tc.reason {
				t.Errorf("reason = %q, want %q", got, tc.reason)
			}
		})
	}
	// A suspended terminal reaches payment methods (which decline it); the
	// authenticator does not refuse it there.
	if err := authorize(e.dial(suspended)); status.Code(err) == codes.PermissionDenied || status.Code(err) == codes.Unauthenticated {
		t.Errorf("Authorize by a suspended terminal refused by authentication: %v", err)
	}
	if n := len(e.auditEvents(pb.AuditEventType_AUDIT_EVENT_TYPE_AUTH_FAILURE)); n == 0 {
		t.Error("no AUTH_FAILURE audit events")
	}
	denied := e.auditEvents(pb.AuditEventType_AUDIT_EVENT_TYPE_PERMISSION_DENIED)
	if len(denied) < 4 {
		t.Errorf("PERMISSION_DENIED audit events = %d, want one per denied caller and reason", len(denied))
	}
	for _, ev := range append(denied, e.auditEvents(pb.AuditEventType_AUDIT_EVENT_TYPE_AUTH_FAILURE)...) {
		for _, s := range []string{active, suspended, retired, opSecret, audSecret, revSecret, testAdminToken} {
			if strings.Contains(ev.String(), s) {
				t.Fatalf("audit event %v contains a secret", ev)
			}
		}
	}
}

func TestFailedAuthenticationIsRateLimitedAndCoalesced(t *testing.T) {
	e := newFleetEnv(t)
	ctx := t.Context()
	_, cred := func() (string, string) { e.merchant("MID1", "s1"); return e.registered("SN1", "MID1", "s1") }()
	bad := e.dial("pft_guess")
	var codesSeen []codes.Code
	for range 40 {
		_, err := bad.Heartbeat(ctx, &pb.TerminalStatus{})
		codesSeen = append(codesSeen, status.Code(err))
	}
	if codesSeen[0] != codes.Unauthenticated {
		t.Fatalf("first failure: %v, want Unauthenticated", codesSeen[0])
	}
	last := codesSeen[len(codesSeen)-1]
	if last != codes.ResourceExhausted {
		t.Fatalf("after 40 failures: %v, want ResourceExhausted", last)
	}
	_, err := bad.Heartbeat(ctx, &pb.TerminalStatus{})
	if reason(err) != "RATE_LIMITED" {
		t.Errorf("reason = %q, want RATE_LIMITED", reason(err))
	}
	// A valid credential from the same address still works.
	if _, err := e.dial(cred).Heartbeat(ctx, &pb.TerminalStatus{}); err != nil {
		t.Errorf("valid credential after the flood: %v", err)
	}
	if n := len(e.auditEvents(pb.AuditEventType_AUDIT_EVENT_TYPE_AUTH_FAILURE)); n < 1 || n > 2 {
		t.Errorf("AUTH_FAILURE events = %d for 41 failures, want them coalesced", n)
	}
}

func TestRegisterRefusalsOverGRPC(t *testing.T) {
	e := newFleetEnv(t)
	ctx := t.Context()
	e.merchant("MID1", "s1")
	admin := e.dial(testAdminToken)
	anon := e.dial("")
	used := e.provision("SN-USED", "MID1", "s1")
	reg, err := anon.Register(ctx, "SN-USED", used.GetEnrollmentCode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The first use of the credential consumes the code.
	if _, err := e.term.Heartbeat(bearer(ctx, reg.GetCredential()), &pb.HeartbeatRequest{}); err != nil {
		t.Fatal(err)
	}
	foreign := e.provision("SN-FOREIGN", "MID1", "s1")
	gone := e.provision("SN-GONE", "MID1", "s1")
	if _, err := admin.RetireTerminal(ctx, gone.GetTerminalId(), "scrapped"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, serial, code string
		want               codes.Code
		reason             string
	}{
		{"unknown code", "SN-USED", "ZZZZ-ZZZZ-ZZZZ", codes.PermissionDenied, "ENROLLMENT_INVALID"},
		{"code of another serial", "SN-THIEF", foreign.GetEnrollmentCode(), codes.PermissionDenied, "ENROLLMENT_INVALID"},
		{"second device with a used code", "SN-USED", used.GetEnrollmentCode(), codes.FailedPrecondition, "ENROLLMENT_USED"},
		{"retired terminal", "SN-GONE", gone.GetEnrollmentCode(), codes.FailedPrecondition, "TERMINAL_RETIRED"},
	} {
		_, err := anon.Register(ctx, tc.serial, tc.code, nil)
		if status.Code(err) != tc.want || reason(err) != tc.reason {
			t.Errorf("%s: %v (%s), want %v %s", tc.name, status.Code(err), reason(err), tc.want, tc.reason)
		}
	}
	collisions := e.auditEvents(pb.AuditEventType_AUDIT_EVENT_TYPE_IDENTITY_COLLISION)
	if len(collisions) != 2 {
		t.Errorf("identity collisions audited = %d, want 2 (foreign code, used code)", len(collisions))
	}
	// The foreign terminal can still enroll with its own serial.
	if _, err := anon.Register(ctx, "SN-FOREIGN", foreign.GetEnrollmentCode(), nil); err != nil {
		t.Errorf("rightful owner after the attempt: %v", err)
	}
	// A serial provisioned twice is loud.
	_, err = admin.ProvisionTerminal(ctx, "SN-FOREIGN", "MID1", "s1", "", 0)
	if status.Code(err) != codes.AlreadyExists || reason(err) != "SERIAL_IN_USE" {
		t.Errorf("second provision: %v (%s), want AlreadyExists SERIAL_IN_USE", err, reason(err))
	}
	// Guessing codes from one address runs into the limit.
	var last error
	for i := range 30 {
		_, last = anon.Register(ctx, "SCAN-"+string(rune('A'+i)), "AAAA-BBBB-CCCC", nil)
	}
	if status.Code(last) != codes.ResourceExhausted || reason(last) != "RATE_LIMITED" {
		t.Errorf("after 30 guesses: %v (%s), want ResourceExhausted RATE_LIMITED", last, reason(last))
	}
}

func TestInvalidInputIsRejectedWithFieldViolations(t *testing.T) {
	e := newFleetEnv(t)
	ctx := t.Context()
	e.merchant("MID1", "s1")
	_, cred := e.registered("SN1", "MID1", "s1")
	admin := e.admin
	actx := e.adminCtx()
	term := e.dial(cred).Terminal()
	long := strings.Repeat("x", 300)
	faults := make([]*pb.Fault, 33)
	for i := range faults {
		faults[i] = &pb.Fault{Component: "printer"}
	}
	params := map[string]string{}
	for i := range 17 {
		params[string(rune('a'+i))] = "v"
	}
	cases := []struct {
		name  string
		call  func() error
		field string
	}{
		{"merchant id format", func() error {
			_, err := admin.CreateMerchant(actx, &pb.CreateMerchantRequest{Merchant: &pb.Merchant{MerchantId: "bad id!", LegalName: "x", Mcc: "5411", Currency: "NZD"}})
			return err
		}, "merchant.merchant_id"},
		{"merchant missing", func() error { _, err := admin.CreateMerchant(actx, &pb.CreateMerchantRequest{}); return err }, "merchant"},
		{"mcc", func() error {
			_, err := admin.CreateMerchant(actx, &pb.CreateMerchantRequest{Merchant: &pb.Merchant{MerchantId: "M2", LegalName: "x", Mcc: "54", Currency: "NZD"}})
			return err
		}, "merchant.mcc"},
		{"unionpay mid embeds another mcc", func() error {
			_, err := admin.CreateMerchant(actx, &pb.CreateMerchantRequest{Merchant: &pb.Merchant{MerchantId: "102290058120001", LegalName: "x", Mcc: "5411", Currency: "CNY"}})
			return err
		}, "merchant.mcc"},
		{"currency", func() error {
			_, err := admin.CreateMerchant(actx, &pb.CreateMerchantRequest{Merchant: &pb.Merchant{MerchantId: "M2", LegalName: "x", Mcc: "5411", Currency: "dollars"}})
			return err
		}, "merchant.currency"},
		{"legal name length", func() error {
			_, err := admin.CreateMerchant(actx, &pb.CreateMerchantRequest{Merchant: &pb.Merchant{MerchantId: "M2", LegalName: long, Mcc: "5411", Currency: "NZD"}})
			return err
		}, "merchant.legal_name"},
		{"update mask path", func() error {
			_, err := e.dial(testAdminToken).UpdateMerchant(ctx, &pb.Merchant{MerchantId: "MID1"}, "merchant_id")
			return err
		}, "update_mask.paths[0]"},
		{"store time zone", func() error {
			_, err := admin.CreateStore(actx, &pb.CreateStoreRequest{Store: &pb.Store{MerchantId: "MID1", StoreId: "s2", Name: "x", TimeZone: "Mars/Olympus"}})
			return err
		}, "store.time_zone"},
		{"store id", func() error {
			_, err := admin.CreateStore(actx, &pb.CreateStoreRequest{Store: &pb.Store{MerchantId: "MID1", StoreId: "a b", Name: "x"}})
			return err
		}, "store.store_id"},
		{"provision serial", func() error {
			_, err := admin.ProvisionTerminal(actx, &pb.ProvisionTerminalRequest{SerialNumber: "has space", MerchantId: "MID1", StoreId: "s1"})
			return err
		}, "serial_number"},
		{"enrollment ttl", func() error {
			_, err := e.dial(testAdminToken).ProvisionTerminal(ctx, "SN9", "MID1", "s1", "", time.Second)
			return err
		}, "enrollment_ttl"},
		{"terminal id", func() error {
			_, err := admin.GetTerminal(actx, &pb.GetTerminalRequest{TerminalId: "abc"})
			return err
		}, "terminal_id"},
		{"page size", func() error {
			_, err := admin.ListTerminals(actx, &pb.ListTerminalsRequest{PageSize: -1})
			return err
		}, "page_size"},
		{"store filter without merchant", func() error {
			_, err := admin.ListTerminals(actx, &pb.ListTerminalsRequest{StoreId: "s1"})
			return err
		}, "merchant_id"},
		{"rebind reason", func() error {
			_, err := admin.RebindTerminal(actx, &pb.RebindTerminalRequest{TerminalId: "ABCDEFGH", MerchantId: "MID1", StoreId: "s1"})
			return err
		}, "reason"},
		{"command type", func() error {
			_, err := admin.SendCommand(actx, &pb.SendCommandRequest{TerminalId: "ABCDEFGH"})
			return err
		}, "type"},
		{"command parameters", func() error {
			_, err := admin.SendCommand(actx, &pb.SendCommandRequest{TerminalId: "ABCDEFGH", Type: pb.CommandType_COMMAND_TYPE_REBOOT, Parameters: params})
			return err
		}, "parameters"},
		{"token role", func() error {
			_, err := admin.CreateAdminToken(actx, &pb.CreateAdminTokenRequest{Name: "x"})
			return err
		}, "role"},
		{"audit time range", func() error {
			now := time.Now()
			_, err := e.dial(testAdminToken).AuditEvents(ctx, &pb.ListAuditEventsRequest{StartTime: tsAt(now), EndTime: tsAt(now.Add(-time.Hour))}, 10)
			return err
		}, "end_time"},
		{"register without code", func() error {
			_, err := e.term.Register(ctx, &pb.RegisterRequest{SerialNumber: "SN1"})
			return err
		}, "enrollment_code"},
		{"too many faults", func() error {
			_, err := term.Heartbeat(ctx, &pb.HeartbeatRequest{Faults: faults})
			return err
		}, "faults"},
		{"fault component", func() error {
			_, err := term.Heartbeat(ctx, &pb.HeartbeatRequest{Faults: []*pb.Fault{{Message: "no component"}}})
			return err
		}, "faults[0].component"},
		{"battery", func() error {
			b := uint32(180)
			_, err := term.Heartbeat(ctx, &pb.HeartbeatRequest{Status: &pb.TerminalStatus{BatteryPercent: &b}})
			return err
		}, "status.battery_percent"},
		{"paper enum", func() error {
			_, err := term.Heartbeat(ctx, &pb.HeartbeatRequest{Status: &pb.TerminalStatus{Paper: 99}})
			return err
		}, "status.paper"},
		{"claimed merchant", func() error {
			_, err := term.VerifyMerchant(ctx, &pb.VerifyMerchantRequest{ClaimedMerchantId: "not a mid!"})
			return err
		}, "claimed_merchant_id"},
		{"ack result", func() error {
			_, err := term.AckCommand(ctx, &pb.AckCommandRequest{CommandId: "x"})
			return err
		}, "result"},
	}
	for _, tc := range cases {
		err := tc.call()
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", tc.name, err)
			continue
		}
		if f := violationFields(err); !contains(f, tc.field) {
			t.Errorf("%s: violations on %v, want %s", tc.name, f, tc.field)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestRefusedCallsAreLoggedWithoutCrashing(t *testing.T) {
	// With info logging on (the production default), the log line of a call
	// refused by authentication must not bring the server down.
	var logs strings.Builder
	var mu sync.Mutex
	srv, err := server.New(func() server.Config {
		c := server.DefaultConfig(t.TempDir())
		c.AdminToken = testAdminToken
		return c
	}(), slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	c, err := client.Dial(lis.Addr().String(), client.WithInsecure(), client.WithBearer("pft_wrong"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 3 {
		if _, err := c.Heartbeat(t.Context(), &pb.TerminalStatus{}); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("Heartbeat with a wrong credential: %v, want Unauthenticated", err)
		}
		if _, err := c.AllMerchants(t.Context()); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("ListMerchants with a wrong token: %v, want Unauthenticated", err)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "code=Unauthenticated") {
		t.Errorf("refused calls not logged:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "pft_wrong") {
		t.Errorf("logs contain the presented credential:\n%s", logs.String())
	}
}

// lockedWriter serializes writes of concurrent loggers.
type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex // guards w
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Failed authentications are grouped per address, caller and reason: the
// use of a revoked admin token right after an unrelated failure from the
// same address (a script without a token) is still in the audit trail. It
// was grouped with the first failure and left no trace of the token.
func TestRevokedTokenUseIsAuditedAfterAnotherFailure(t *testing.T) {
	e := newFleetEnv(t)
	ctx := t.Context()
	admin := e.dial(testAdminToken)
	secret, tok, err := admin.CreateAdminToken(ctx, "leaver", pb.Role_ROLE_ADMIN, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RevokeAdminToken(ctx, tok.GetTokenId()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.dial("").AllMerchants(ctx); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no token: got %v, want Unauthenticated", err)
	}
	if _, err := e.dial(secret).AllMerchants(ctx); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("revoked token: got %v, want Unauthenticated", err)
	}
	var actors []string
	for _, ev := range e.auditEvents(pb.AuditEventType_AUDIT_EVENT_TYPE_AUTH_FAILURE) {
		actors = append(actors, ev.GetActor())
	}
	if !slices.Contains(actors, "admin:"+tok.GetTokenId()) || !slices.Contains(actors, "anonymous") {
		t.Errorf("AUTH_FAILURE actors %v; want both the anonymous call and admin:%s", actors, tok.GetTokenId())
	}
}

// A terminal acknowledging another terminal's command is refused and, like
// every refused access, audited (it was refused without a trace).
func TestAckOfAnotherTerminalsCommandIsAudited(t *testing.T) {
	e := newFleetEnv(t)
	e.merchant("M1", "S1")
	victim, _ := e.registered("SN-V", "M1", "S1")
	_, other := e.registered("SN-A", "M1", "S1")
	c, err := e.admin.SendCommand(e.adminCtx(), &pb.SendCommandRequest{TerminalId: victim, Type: pb.CommandType_COMMAND_TYPE_LOCK})
	if err != nil {
		t.Fatal(err)
	}
	before := len(e.auditEvents(pb.AuditEventType_AUDIT_EVENT_TYPE_PERMISSION_DENIED))
	_, err = e.term.AckCommand(bearer(t.Context(), other), &pb.AckCommandRequest{
		CommandId: c.GetCommand().GetCommandId(), Result: pb.CommandResult_COMMAND_RESULT_FAILED})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("ack of another terminal's command: %v, want PermissionDenied", err)
	}
	events := e.auditEvents(pb.AuditEventType_AUDIT_EVENT_TYPE_PERMISSION_DENIED)
	if len(events) != before+1 || events[len(events)-1].GetAttributes()["command_id"] != c.GetCommand().GetCommandId() {
		t.Errorf("PERMISSION_DENIED events: %d before, %v after; want one more naming the command", before, events)
	}
}
