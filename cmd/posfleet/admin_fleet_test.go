package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

func TestAdminFleetCommands(t *testing.T) {
	cli := StartAdminCLI(t)
	p := cli.P
	admin, mustAdmin, expect := cli.Run, cli.Must, cli.Expect

	out := mustAdmin("merchants", "create", "--id", "MID1", "--legal-name", "Kiwi Foods Ltd", "--display-name", "Kiwi", "--mcc", "5411", "--currency", "NZD", "--city", "Auckland", "--country", "NZ")
	expect(out, "MERCHANT", "MID1", "Kiwi Foods Ltd", "v1")
	mustAdmin("stores", "create", "--merchant", "MID1", "--id", "akl-01", "--name", "Queen St", "--time-zone", "Pacific/Auckland")
	expect(mustAdmin("stores", "list"), "akl-01", "Pacific/Auckland")

	out = mustAdmin("--json", "terminals", "provision", "--serial", "SN-CLI-1", "--merchant", "MID1", "--store", "akl-01", "--label", "Lane 1")
	var prov pb.ProvisionTerminalResponse
	if err := protojson.Unmarshal([]byte(out), &prov); err != nil {
		t.Fatalf("provision --json output %q: %v", out, err)
	}
	if prov.GetEnrollmentCode() == "" || prov.GetTerminalId() == "" {
		t.Fatalf("provision returned %v", &prov)
	}

	// The device registers and reports a fault.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	anon, err := client.Dial(p.Addr, client.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	reg, err := anon.Register(ctx, "SN-CLI-1", prov.GetEnrollmentCode(), &pb.DeviceInfo{Model: "A920", FirmwareVersion: "fw-1", AppVersion: "app-1"})
	if err != nil {
		t.Fatal(err)
	}
	term, err := client.Dial(p.Addr, client.WithInsecure(), client.WithBearer(reg.GetCredential()))
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	if _, err := term.Heartbeat(ctx, &pb.TerminalStatus{FirmwareVersion: "fw-1", AppVersion: "app-1"}, &pb.Fault{Component: "printer", Code: "P07"}); err != nil {
		t.Fatal(err)
	}

	tid := prov.GetTerminalId()
	expect(mustAdmin("terminals", "list", "--merchant", "MID1", "--state", "active"), "TERMINAL", tid, "SN-CLI-1", "ACTIVE", "ONLINE", "fw-1")
	expect(mustAdmin("terminals", "get", "--id", tid), "serial_number", "SN-CLI-1", "printer P07", "Lane 1")
	expect(mustAdmin("commands", "send", "--terminal", tid, "--type", "upload-logs", "--param", "since=24h"), "UPLOAD_LOGS", "PENDING", "since=24h")
	expect(mustAdmin("commands", "list", "--terminal", tid), "UPLOAD_LOGS", tid)
	expect(mustAdmin("commands", "send", "--terminal", tid, "--type", "rotate-credential"), "ROTATE_CREDENTIAL", "PENDING")
	expect(mustAdmin("merchants", "update", "--id", "MID1", "--display-name", "Kiwi Fresh"), "Kiwi Fresh", "v2")
	expect(mustAdmin("merchants", "get", "--id", "MID1"), "allow_cross_terminal_refunds", "false")
	mustAdmin("merchants", "update", "--id", "MID1", "--allow-cross-terminal-refunds")
	expect(mustAdmin("merchants", "get", "--id", "MID1"), "allow_cross_terminal_refunds", "true")
	mustAdmin("merchants", "update", "--id", "MID1", "--allow-cross-terminal-refunds=false")
	expect(mustAdmin("merchants", "get", "--id", "MID1"), "allow_cross_terminal_refunds", "false")
	expect(mustAdmin("report", "fleet"), "connectivity", "ONLINE", "faults by component", "printer", "fw-1")
	expect(mustAdmin("audit", "list", "--type", "terminal-registered"), "TERMINAL_REGISTERED", tid, "serial_number=SN-CLI-1")
	expect(mustAdmin("terminals", "suspend", "--id", tid, "--reason", "inspection"), "SUSPENDED")

	out = mustAdmin("tokens", "create", "--name", "auditor-1", "--role", "auditor")
	expect(out, "AUDITOR", "secret (shown only once): pfa_")
	secret := strings.TrimSpace(out[strings.LastIndex(out, ": ")+2:])
	expect(mustAdmin("tokens", "list"), "bootstrap", "auditor-1")
	if strings.Contains(mustAdmin("tokens", "list"), secret) {
		t.Error("tokens list prints a secret")
	}
	auditor := []string{"POSFLEET_ADMIN_TOKEN=" + secret}
	out, code := runCLI(t, auditor, "admin", "--target", p.Addr, "merchants", "list")
	if code != 0 || !strings.Contains(out, "MID1") {
		t.Errorf("auditor merchants list: exit %d\n%s", code, out)
	}
	out, code = runCLI(t, auditor, "admin", "--target", p.Addr, "merchants", "create", "--id", "M2", "--legal-name", "x", "--mcc", "5411", "--currency", "NZD")
	if code == 0 || !strings.Contains(out, "permission denied: role AUDITOR may not call this method (needs OPERATOR) (INSUFFICIENT_ROLE)") {
		t.Errorf("auditor merchants create: exit %d, want a permission denied failure with its reason\n%s", code, out)
	}

	// Bad input is explained, not sent.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"merchants", "create", "--id", "M3", "--legal-name", "x", "--currency", "NZD"}, "--mcc is required"},
		{[]string{"terminals", "list", "--state", "sleeping"}, "want one of active, provisioned, retired, suspended"},
		{[]string{"commands", "send", "--terminal", tid, "--type", "reboot", "--param", "novalue"}, "key=value"},
		{[]string{"merchants", "create", "--id", "bad id!", "--legal-name", "x", "--mcc", "5411", "--currency", "NZD"}, "invalid input: "},
		{[]string{"merchants", "create", "--id", "bad id!", "--legal-name", "x", "--mcc", "5411", "--currency", "NZD"}, "\n  merchant.merchant_id: must be"},
	} {
		out, code := admin(tc.args...)
		if code == 0 || !strings.Contains(out, tc.want) {
			t.Errorf("admin %s: exit %d, want failure mentioning %q\n%s", strings.Join(tc.args, " "), code, tc.want, out)
		}
	}
}
