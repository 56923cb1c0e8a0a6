package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// simCLI runs "posfleet terminal" with one terminal file and keeps every
// output, to check that the credential is never printed.
type simCLI struct {
	t       *testing.T
	file    string
	outputs []string
}

func (s *simCLI) run(args ...string) (string, int) {
	s.t.Helper()
	out, code := runCLI(s.t, nil, append(append([]string{"terminal"}, args...), "--terminal-file", s.file)...)
	s.outputs = append(s.outputs, out)
	return out, code
}

func (s *simCLI) must(args ...string) string {
	s.t.Helper()
	out, code := s.run(args...)
	if code != 0 {
		s.t.Fatalf("posfleet terminal %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// provisionForSim creates merchant MID (NZD) with store s1 and provisions a
// terminal; it returns the terminal ID and enrollment code. The --json
// flag comes last, after the verb's own flags.
func provisionForSim(t *testing.T, cli *AdminCLI, mid, serial string) (string, string) {
	t.Helper()
	cli.Must("merchants", "create", "--id", mid, "--legal-name", "Sim Foods Ltd", "--mcc", "5411", "--currency", "NZD")
	cli.Must("stores", "create", "--merchant", mid, "--id", "s1", "--name", "One")
	var prov pb.ProvisionTerminalResponse
	out := cli.Must("terminals", "provision", "--serial", serial, "--merchant", mid, "--store", "s1", "--json")
	if err := protojson.Unmarshal([]byte(out), &prov); err != nil {
		t.Fatalf("provision ... --json output %q: %v", out, err)
	}
	return prov.GetTerminalId(), prov.GetEnrollmentCode()
}

func TestTerminalSimulator(t *testing.T) {
	cli := StartAdminCLI(t)
	tid, code := provisionForSim(t, cli, "MIDSIM", "SN-SIM-1")
	sim := &simCLI{t: t, file: filepath.Join(t.TempDir(), "terminal.json")}

	if out, code := sim.run("pay", "1NZD"); code == 0 || !strings.Contains(out, "terminal register") {
		t.Errorf("pay before register: exit %d, want a hint to register\n%s", code, out)
	}
	out := sim.must("register", "--serial", "SN-SIM-1", "--code", code, "--target", cli.P.Addr)
	cli.Expect(out, tid, "MIDSIM", "identity_verified  yes")
	fi, err := os.Stat(sim.file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("terminal file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	if out, code := sim.run("register", "--serial", "SN-SIM-1", "--code", code, "--target", cli.P.Addr); code == 0 || !strings.Contains(out, "already holds terminal "+tid) {
		t.Errorf("second register over the file: exit %d\n%s", code, out)
	}

	// Registered and paid, no heartbeat: the terminal is online.
	cli.Expect(sim.must("pay", "12.50NZD"), "APPROVED", "00 approved", "12.50 NZD", "batch             1")
	cli.Expect(sim.must("pay", "--amount", "7.30", "--currency", "NZD", "--entry-mode", "contactless"), "APPROVED", "7.30 NZD")
	cli.Expect(sim.must("pay", "5NZD", "--card", "tok_test_decline"), "DECLINED", "05")
	if out, code := sim.run("pay", "5.001NZD"); code == 0 || !strings.Contains(out, "NZD has 2 decimals") {
		t.Errorf("pay 5.001NZD: exit %d\n%s", code, out)
	}
	got := cli.Must("terminals", "get", "--id", tid)
	cli.Expect(got, "connectivity      ONLINE", "last_heartbeat    -")
	if strings.Contains(got, "last_seen         -") {
		t.Errorf("terminal that paid has no last_seen:\n%s", got)
	}

	// The last approved payment is reversed; then part of the first refunded.
	cli.Expect(sim.must("reverse"), "REVERSED", "7.30 NZD")
	cli.Expect(sim.must("refund", "2.00NZD"), "APPROVED", "2.00 NZD", "remaining_refundable  10.50 NZD")

	// A fault message that tries to forge an output line, recolour and
	// reorder text is shown escaped.
	forged := "jam\n2026-01-01T00:00:00Z printer P00 FORGED\x1b[31m\u202eevil"
	sim.must("heartbeat", "--battery", "80", "--fault", "printer:P07:"+forged)
	got = cli.Must("terminals", "get", "--id", tid)
	cli.Expect(got, "battery", "80%", `jam\n2026-01-01T00:00:00Z printer P00 FORGED\x1b[31m\u202eevil`)
	for _, line := range strings.Split(got, "\n") {
		if strings.HasPrefix(line, "2026-01-01") || strings.ContainsAny(line, "\x1b\u202e") {
			t.Errorf("forged or raw line in terminals get: %q", line)
		}
	}
	js := cli.Must("terminals", "get", "--id", tid, "--json")
	if strings.ContainsAny(js, "\x1b\u202e") {
		t.Errorf("terminals get --json has raw escapes:\n%s", js)
	}
	var resp pb.GetTerminalResponse
	if err := protojson.Unmarshal([]byte(js), &resp); err != nil || resp.GetTerminal().GetRecentFaults()[0].GetMessage() != forged {
		t.Errorf("terminals get --json does not decode to the stored message: %v, %v", err, resp.GetTerminal().GetRecentFaults())
	}

	// A config published for the terminal reaches the watching simulator.
	var pub pb.PublishConfigResponse
	out = cli.Must("config", "publish", "--terminal", tid, "--receipt-header", "Kia ora", "--per-transaction-limit", "250NZD", "--json")
	if err := protojson.Unmarshal([]byte(out), &pub); err != nil {
		t.Fatalf("publish --json output %q: %v", out, err)
	}
	cli.Expect(sim.must("watch", "--count", "1", "--for", "30s"), "config v1", `"Kia ora"`, "250.00 NZD", "stopped at config version 1")
	cli.Expect(cli.Must("rollout", "get", "--id", pub.GetRolloutId()), "applied             1") // acknowledged before the watch stopped

	out = sim.must("close-batch")
	cli.Expect(out, "terminal  1 / 12.50 NZD  1 / 2.00 NZD  1 / 7.30 NZD", "server    1 / 12.50 NZD  1 / 2.00 NZD  1 / 7.30 NZD", "IN BALANCE", "batch 2 is open")
	cli.Expect(cli.Must("report", "settlement", "--merchant", "MIDSIM"), "1 / 12.50 NZD", "CLOSED")

	var st terminalState
	b, _ := os.ReadFile(sim.file)
	if err := json.Unmarshal(b, &st); err != nil || st.Credential == "" || st.OpenBatch != 2 || len(st.Journal) != 0 || st.ConfigVersion != 1 {
		t.Fatalf("terminal file after close = %+v, %v; want a credential, batch 2 open, empty journal, config 1", st, err)
	}
	for _, o := range sim.outputs {
		if strings.Contains(o, st.Credential) {
			t.Errorf("an output shows the credential:\n%s", o)
		}
	}
	// A terminal that lost its journal closes with the server's totals.
	sim.must("pay", "3NZD")
	st.Journal, st.OpenBatch = nil, 0
	b, _ = json.Marshal(&st)
	if err := os.WriteFile(sim.file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := sim.run("close-batch"); code == 0 || !strings.Contains(out, "--from-server") {
		t.Errorf("close-batch without a journal: exit %d, want a hint to --from-server\n%s", code, out)
	}
	cli.Expect(sim.must("close-batch", "--from-server", "--admin-token-file", cli.TokenFile),
		"terminal  1 / 3.00 NZD", "IN BALANCE", "batch 2 closed")

	// A file others may read is refused: it holds the credential.
	if err := os.Chmod(sim.file, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := sim.run("heartbeat"); code == 0 || !strings.Contains(out, "chmod 600") {
		t.Errorf("heartbeat with a 0644 file: exit %d\n%s", code, out)
	}
}

// The simulator remembers a TLS server and its CA from registration.
func TestTerminalSimulatorOverTLS(t *testing.T) {
	cert, key := writeSelfSigned(t)
	dir := t.TempDir()
	srv := StartServe(t, dir, "--tls-cert", cert, "--tls-key", key)
	cli := &AdminCLI{t: t, P: srv, TokenFile: filepath.Join(dir, "admin.token")}
	tls := func(args ...string) []string { return append(args, "--tls-ca", cert) }
	cli.Must(tls("merchants", "create", "--id", "MIDTLS", "--legal-name", "TLS Ltd", "--mcc", "5411", "--currency", "NZD")...)
	cli.Must(tls("stores", "create", "--merchant", "MIDTLS", "--id", "s1", "--name", "One")...)
	var prov pb.ProvisionTerminalResponse
	if err := protojson.Unmarshal([]byte(cli.Must(tls("terminals", "provision", "--serial", "SN-TLS", "--merchant", "MIDTLS", "--store", "s1", "--json")...)), &prov); err != nil {
		t.Fatal(err)
	}
	sim := &simCLI{t: t, file: filepath.Join(t.TempDir(), "terminal.json")}
	sim.must("register", "--serial", "SN-TLS", "--code", prov.GetEnrollmentCode(), "--target", srv.Addr, "--tls-ca", cert)
	cli.Expect(sim.must("pay", "1.00NZD"), "APPROVED")
}
