package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTerminalSimulatorCapture(t *testing.T) {
	cli := StartAdminCLI(t)
	_, code := provisionForSim(t, cli, "MIDCAP", "SN-CAP-1")
	sim := &simCLI{t: t, file: filepath.Join(t.TempDir(), "terminal.json")}
	sim.must("register", "--serial", "SN-CAP-1", "--code", code, "--target", cli.P.Addr)

	if out, code := sim.run("capture"); code == 0 || !strings.Contains(out, "no approved pre-auth") {
		t.Errorf("capture without a pre-auth: exit %d\n%s", code, out)
	}
	cli.Expect(sim.must("pay", "--preauth", "20NZD"), "APPROVED")
	cli.Expect(sim.must("open-batch"), "server  0 / 0.00 NZD  0 / 0.00 NZD  0 / 0.00 NZD  1 / 20.00 NZD", "batch 1 is open since")
	cli.Expect(sim.must("capture", "15NZD"), "APPROVED", "15.00 NZD", "released", "5.00 NZD", "capture_id", "batch          1")
	if out, code := sim.run("capture"); code == 0 || !strings.Contains(out, "no approved pre-auth") {
		t.Errorf("capture with every pre-auth captured: exit %d\n%s", code, out)
	}
	sim.must("pay", "3NZD")
	cli.Expect(sim.must("close-batch"), "terminal  2 / 18.00 NZD", "server    2 / 18.00 NZD", "IN BALANCE", "batch 2 is open")

	// A terminal that lost its journal closes a batch holding a capture
	// with the server's totals.
	sim.must("pay", "--preauth", "10NZD")
	sim.must("capture")
	var st terminalState
	b, _ := os.ReadFile(sim.file)
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	st.Journal, st.OpenBatch = nil, 0
	b, _ = json.Marshal(&st)
	if err := os.WriteFile(sim.file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cli.Expect(sim.must("open-batch"), "server  1 / 10.00 NZD", "batch 2 is open")
	cli.Expect(sim.must("close-batch", "--from-server", "--admin-token-file", cli.TokenFile),
		"terminal  1 / 10.00 NZD", "IN BALANCE", "batch 2 closed")
}
