package server_test

import (
	"crypto/ed25519"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

func TestMerchantIdentityFollowsUpdatesAndRebinds(t *testing.T) {
	e := newFleetEnv(t)
	ctx := t.Context()
	e.merchant("MID1", "s1")
	e.merchant("MID2", "x1")
	admin := e.dial(testAdminToken)
	tid, cred := e.registered("SN1", "MID1", "s1")
	term := e.dial(cred)

	v1, err := term.VerifyMerchant(ctx, "MID1")
	if err != nil {
		t.Fatal(err)
	}
	if !v1.GetMatches() || !v1.GetClaimChecked() {
		t.Errorf("claim MID1: matches=%v checked=%v, want both", v1.GetMatches(), v1.GetClaimChecked())
	}
	id := v1.GetIdentity()
	if err := client.VerifyIdentity(id); err != nil {
		t.Fatalf("VerifyIdentity: %v", err)
	}
	pinned := ed25519.PublicKey(id.GetPublicKey())
	if id.GetTerminalId() != tid || id.GetStoreName() != "Store s1" || id.GetIdentityVersion() != 1 {
		t.Errorf("identity = %v", id)
	}

	m, err := admin.UpdateMerchant(ctx, &pb.Merchant{MerchantId: "MID1", DisplayName: "Kiwi Fresh"}, "display_name")
	if err != nil {
		t.Fatal(err)
	}
	if m.GetIdentityVersion() != 2 || m.GetLegalName() != "MID1 Ltd" {
		t.Errorf("updated merchant = %v, want version 2 and the legal name kept", m)
	}
	hb, err := term.Heartbeat(ctx, &pb.TerminalStatus{})
	if err != nil {
		t.Fatal(err)
	}
	if hb.GetIdentityVersion() != 2 {
		t.Errorf("heartbeat identity_version = %d, want 2", hb.GetIdentityVersion())
	}
	v2, err := term.VerifyMerchant(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if v2.GetIdentity().GetDisplayName() != "Kiwi Fresh" || v2.GetIdentity().GetIdentityVersion() != 2 || v2.GetClaimChecked() {
		t.Errorf("identity after update = %v", v2.GetIdentity())
	}
	if err := client.VerifyIdentity(v2.GetIdentity(), pinned); err != nil {
		t.Errorf("updated identity with the pinned key: %v", err)
	}
	forged := v2.GetIdentity()
	forged.MerchantId = "MID2"
	if err := client.VerifyIdentity(forged); err == nil {
		t.Error("VerifyIdentity accepted a changed merchant_id")
	}

	if _, err := admin.RebindTerminal(ctx, tid, "MID2", "x1", "store sold"); err != nil {
		t.Fatal(err)
	}
	v3, err := term.VerifyMerchant(ctx, "MID1") // the terminal still believes MID1
	if err != nil {
		t.Fatal(err)
	}
	if v3.GetMatches() || v3.GetIdentity().GetMerchantId() != "MID2" || v3.GetIdentity().GetIdentityVersion() != 3 {
		t.Errorf("after rebind: matches=%v identity=%v; want a mismatch, MID2 v3", v3.GetMatches(), v3.GetIdentity())
	}
	alerts := e.auditEvents(pb.AuditEventType_AUDIT_EVENT_TYPE_MERCHANT_MISMATCH)
	if len(alerts) != 1 || alerts[0].GetAttributes()["claimed_merchant_id"] != "MID1" || alerts[0].GetTerminalId() != tid {
		t.Fatalf("mismatch alerts = %v", alerts)
	}
	rebinds := e.auditEvents(pb.AuditEventType_AUDIT_EVENT_TYPE_TERMINAL_REBOUND)
	if len(rebinds) == 0 || rebinds[0].GetAttributes()["reason"] != "store sold" || rebinds[0].GetActor() != "admin:bootstrap" {
		t.Errorf("rebind audit = %v", rebinds)
	}
	rep, err := admin.FleetReport(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if rep.GetMerchantMismatchAlerts() != 1 || len(rep.GetMismatchTerminals()) != 1 || rep.GetMismatchTerminals()[0].GetKey() != tid {
		t.Errorf("report alerts = %d %v", rep.GetMerchantMismatchAlerts(), rep.GetMismatchTerminals())
	}
	// Scoped: the alert belongs to the terminal now bound to MID2.
	if rep, _ := admin.FleetReport(ctx, "MID1", ""); rep.GetMerchantMismatchAlerts() != 0 {
		t.Errorf("MID1 report alerts = %d, want 0", rep.GetMerchantMismatchAlerts())
	}
}

func TestRemoteCommandsOverGRPC(t *testing.T) {
	e := newFleetEnv(t)
	ctx := t.Context()
	e.merchant("MID1", "s1")
	admin := e.dial(testAdminToken)
	tid, cred := e.registered("SN1", "MID1", "s1")
	otherID, other := e.registered("SN2", "MID1", "s1")
	cmd, err := admin.SendCommand(ctx, tid, pb.CommandType_COMMAND_TYPE_UPLOAD_LOGS, map[string]string{"since": "24h"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if cmd.GetState() != pb.CommandState_COMMAND_STATE_PENDING || cmd.GetTerminalId() != tid {
		t.Fatalf("queued command = %v", cmd)
	}
	hb, err := e.dial(cred).Heartbeat(ctx, &pb.TerminalStatus{})
	if err != nil {
		t.Fatal(err)
	}
	if len(hb.GetCommands()) != 1 || hb.GetCommands()[0].GetCommandId() != cmd.GetCommandId() || hb.GetCommands()[0].GetParameters()["since"] != "24h" {
		t.Fatalf("heartbeat commands = %v", hb.GetCommands())
	}
	if hb, _ := e.dial(other).Heartbeat(ctx, &pb.TerminalStatus{}); len(hb.GetCommands()) != 0 {
		t.Errorf("other terminal received %v", hb.GetCommands())
	}
	err = e.dial(other).AckCommand(ctx, cmd.GetCommandId(), true, "")
	if status.Code(err) != codes.PermissionDenied || reason(err) != "COMMAND_NOT_OWNED" {
		t.Errorf("ack by %s: %v, want PermissionDenied COMMAND_NOT_OWNED", otherID, err)
	}
	if err := e.dial(cred).AckCommand(ctx, cmd.GetCommandId(), true, "uploaded 3 files"); err != nil {
		t.Fatal(err)
	}
	list, err := admin.AllCommands(ctx, tid)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].GetState() != pb.CommandState_COMMAND_STATE_SUCCEEDED || list[0].GetResultDetail() != "uploaded 3 files" {
		t.Errorf("commands = %v", list)
	}
	if hb, _ := e.dial(cred).Heartbeat(ctx, &pb.TerminalStatus{}); len(hb.GetCommands()) != 0 {
		t.Errorf("acknowledged command delivered again: %v", hb.GetCommands())
	}
	if _, err := admin.SendCommand(ctx, "NOSUCHID", pb.CommandType_COMMAND_TYPE_REBOOT, nil, 0); status.Code(err) != codes.NotFound {
		t.Errorf("command for a missing terminal: %v, want NotFound", err)
	}
}

func TestFleetReportAndListings(t *testing.T) {
	e := newFleetEnv(t)
	ctx := t.Context()
	e.merchant("MID1", "s1", "s2")
	admin := e.dial(testAdminToken)
	_, a := e.registered("SN1", "MID1", "s1")
	_, b := e.registered("SN2", "MID1", "s2")
	e.provision("SN3", "MID1", "s2") // never registers
	fault := func(component string) *pb.Fault {
		return &pb.Fault{Component: component, Code: "E1", Severity: pb.FaultSeverity_FAULT_SEVERITY_WARNING}
	}
	if _, err := e.dial(a).Heartbeat(ctx, &pb.TerminalStatus{FirmwareVersion: "9.1", AppVersion: "2.0", ConfigVersion: 4}, fault("printer"), fault("printer")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.dial(b).Heartbeat(ctx, &pb.TerminalStatus{FirmwareVersion: "9.2", AppVersion: "2.0", ConfigVersion: 4}, fault("network")); err != nil {
		t.Fatal(err)
	}
	rep, err := admin.FleetReport(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"ONLINE": 2, "NEVER_SEEN": 1}
	for _, kc := range rep.GetByConnectivity() {
		if want[kc.GetKey()] != kc.GetCount() {
			t.Errorf("connectivity %s = %d, want %d", kc.GetKey(), kc.GetCount(), want[kc.GetKey()])
		}
	}
	if rep.GetTotalTerminals() != 3 || len(rep.GetFaults()) != 2 || rep.GetFaults()[0].GetComponent() != "printer" || rep.GetFaults()[0].GetCount() != 2 {
		t.Errorf("report = total %d, faults %v", rep.GetTotalTerminals(), rep.GetFaults())
	}
	if fv := rep.GetFirmwareVersions(); len(fv) != 2 || rep.GetAppVersions()[0].GetCount() != 2 || rep.GetConfigVersions()[0].GetKey() != "4" {
		t.Errorf("versions = %v %v %v", fv, rep.GetAppVersions(), rep.GetConfigVersions())
	}
	if rep.GetAuthorizations() != 0 || rep.GetApprovalRate() != 0 {
		t.Errorf("approval stats without payments = %d/%v", rep.GetAuthorizations(), rep.GetApprovalRate())
	}
	if _, err := admin.FleetReport(ctx, "NOPE", ""); status.Code(err) != codes.NotFound {
		t.Errorf("report of a missing merchant: %v, want NotFound", err)
	}

	online, err := admin.AllTerminals(ctx, &pb.ListTerminalsRequest{MerchantId: "MID1", Connectivity: pb.Connectivity_CONNECTIVITY_ONLINE})
	if err != nil || len(online) != 2 {
		t.Errorf("online terminals = %d, %v; want 2", len(online), err)
	}
	provisioned, err := admin.AllTerminals(ctx, &pb.ListTerminalsRequest{State: pb.TerminalState_TERMINAL_STATE_PROVISIONED})
	if err != nil || len(provisioned) != 1 || provisioned[0].GetSerialNumber() != "SN3" {
		t.Errorf("provisioned terminals = %v, %v", provisioned, err)
	}
	page, err := e.admin.ListTerminals(e.adminCtx(), &pb.ListTerminalsRequest{PageSize: 2})
	if err != nil || len(page.GetTerminals()) != 2 || page.GetNextPageToken() == "" {
		t.Fatalf("first page = %d terminals, next %q, %v", len(page.GetTerminals()), page.GetNextPageToken(), err)
	}
	page2, err := e.admin.ListTerminals(e.adminCtx(), &pb.ListTerminalsRequest{PageSize: 2, PageToken: page.GetNextPageToken()})
	if err != nil || len(page2.GetTerminals()) != 1 || page2.GetNextPageToken() != "" {
		t.Errorf("second page = %d terminals, next %q, %v", len(page2.GetTerminals()), page2.GetNextPageToken(), err)
	}
	if _, err := e.admin.ListTerminals(e.adminCtx(), &pb.ListTerminalsRequest{PageToken: "bogus"}); status.Code(err) != codes.InvalidArgument || reason(err) != "INVALID_PAGE_TOKEN" {
		t.Errorf("bogus page token: %v", err)
	}
	stores, err := admin.AllStores(ctx, "MID1")
	if err != nil || len(stores) != 2 || stores[0].GetTimeZone() != "Pacific/Auckland" {
		t.Errorf("stores = %v, %v", stores, err)
	}
	evs, err := admin.AuditEvents(ctx, &pb.ListAuditEventsRequest{MerchantId: "MID1"}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[pb.AuditEventType]int{}
	for _, ev := range evs {
		seen[ev.GetType()]++
	}
	if seen[pb.AuditEventType_AUDIT_EVENT_TYPE_MERCHANT_CREATED] != 1 || seen[pb.AuditEventType_AUDIT_EVENT_TYPE_STORE_CREATED] != 2 ||
		seen[pb.AuditEventType_AUDIT_EVENT_TYPE_TERMINAL_PROVISIONED] != 3 || seen[pb.AuditEventType_AUDIT_EVENT_TYPE_TERMINAL_REGISTERED] != 4 { // 2 issued, 2 confirmed by first use
		t.Errorf("audit trail of MID1 = %v", seen)
	}
}

func TestRestartKeepsFleetAndTokens(t *testing.T) {
	dir := t.TempDir()
	e := startFleetEnv(t, dir)
	ctx := t.Context()
	e.merchant("MID1", "s1")
	admin := e.dial(testAdminToken)
	opSecret, _, err := admin.CreateAdminToken(ctx, "ops", pb.Role_ROLE_OPERATOR, 0)
	if err != nil {
		t.Fatal(err)
	}
	tid, cred := e.registered("SN1", "MID1", "s1")
	pending := e.provision("SN2", "MID1", "s1")
	cmd, err := admin.SendCommand(ctx, tid, pb.CommandType_COMMAND_TYPE_RESYNC_CONFIG, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.dial(cred).Heartbeat(ctx, &pb.TerminalStatus{FirmwareVersion: "fw-7"}, &pb.Fault{Component: "printer"}); err != nil {
		t.Fatal(err)
	}
	before, err := e.dial(cred).VerifyMerchant(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	e = startFleetEnv(t, dir)
	if _, err := e.dial(opSecret).AllMerchants(ctx); err != nil {
		t.Errorf("operator token after restart: %v", err)
	}
	term := e.dial(cred)
	after, err := term.VerifyMerchant(ctx, "")
	if err != nil {
		t.Fatalf("credential after restart: %v", err)
	}
	if after.GetIdentity().GetKeyId() != before.GetIdentity().GetKeyId() {
		t.Errorf("signing key changed across restart: %s → %s", before.GetIdentity().GetKeyId(), after.GetIdentity().GetKeyId())
	}
	got, err := e.dial(testAdminToken).GetTerminal(ctx, tid)
	if err != nil {
		t.Fatal(err)
	}
	if got.GetLastStatus().GetFirmwareVersion() != "fw-7" || len(got.GetRecentFaults()) != 1 || got.GetDevice().GetModel() != "A920" {
		t.Errorf("terminal after restart = %v", got)
	}
	hb, err := term.Heartbeat(ctx, &pb.TerminalStatus{})
	if err != nil {
		t.Fatal(err)
	}
	if len(hb.GetCommands()) != 1 || hb.GetCommands()[0].GetCommandId() != cmd.GetCommandId() {
		t.Errorf("pending command after restart: %v", hb.GetCommands())
	}
	if _, err := e.dial("").Register(ctx, "SN2", pending.GetEnrollmentCode(), nil); err != nil {
		t.Errorf("enrollment code after restart: %v", err)
	}
	if n := len(e.auditEvents(pb.AuditEventType_AUDIT_EVENT_TYPE_TOKEN_CREATED)); n != 1 {
		t.Errorf("token audit events after restart = %d, want 1", n)
	}
}

func TestAdminTokensAreShownOnce(t *testing.T) {
	e := newFleetEnv(t)
	ctx := t.Context()
	admin := e.dial(testAdminToken)
	secret, tok, err := admin.CreateAdminToken(ctx, "ci", pb.Role_ROLE_AUDITOR, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if tok.GetExpireTime() == nil || tok.GetRole() != pb.Role_ROLE_AUDITOR {
		t.Errorf("token = %v", tok)
	}
	list, err := admin.ListAdminTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].GetTokenId() != "bootstrap" || list[1].GetTokenId() != tok.GetTokenId() {
		t.Errorf("tokens = %v", list)
	}
	for _, l := range list {
		if l.String() == "" || containsStr(l.String(), secret) || containsStr(l.String(), testAdminToken) {
			t.Errorf("listed token %v reveals a secret", l)
		}
	}
	if _, err := admin.RevokeAdminToken(ctx, tok.GetTokenId()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.dial(secret).AllMerchants(ctx); status.Code(err) != codes.Unauthenticated {
		t.Errorf("revoked token: %v, want Unauthenticated", err)
	}
	if _, err := admin.RevokeAdminToken(ctx, "tok_missing"); status.Code(err) != codes.NotFound {
		t.Errorf("revoke missing: %v, want NotFound", err)
	}
}
