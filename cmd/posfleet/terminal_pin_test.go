package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// The fingerprint printed at provisioning pins the server's signing key:
// register accepts an identity signed with it and refuses another.
func TestTerminalRegisterPinsSigningKey(t *testing.T) {
	cli := StartAdminCLI(t)
	cli.Must("merchants", "create", "--id", "MIDPIN", "--legal-name", "Pin Foods Ltd", "--mcc", "5411", "--currency", "NZD")
	cli.Must("stores", "create", "--merchant", "MIDPIN", "--id", "s1", "--name", "One")
	provision := func(serial string) *pb.ProvisionTerminalResponse {
		var prov pb.ProvisionTerminalResponse
		out := cli.Must("terminals", "provision", "--serial", serial, "--merchant", "MIDPIN", "--store", "s1", "--json")
		if err := protojson.Unmarshal([]byte(out), &prov); err != nil {
			t.Fatalf("provision --json output %q: %v", out, err)
		}
		if fp := prov.GetSigningKeyFingerprint(); !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(fp) || !strings.HasPrefix(fp, prov.GetSigningKeyId()) {
			t.Fatalf("provision: fingerprint %q, key ID %q; want 64 hex characters starting with the key ID", fp, prov.GetSigningKeyId())
		}
		return &prov
	}
	table := cli.Must("terminals", "provision", "--serial", "SN-PIN-0", "--merchant", "MIDPIN", "--store", "s1")
	cli.Expect(table, "SIGNING KEY FINGERPRINT")

	good := provision("SN-PIN-1")
	sim := &simCLI{t: t, file: filepath.Join(t.TempDir(), "terminal.json")}
	out := sim.must("register", "--serial", "SN-PIN-1", "--code", good.GetEnrollmentCode(), "--target", cli.P.Addr,
		"--signing-key-fingerprint", good.GetSigningKeyFingerprint())
	cli.Expect(out, "identity_verified", "signed by the pinned key", good.GetSigningKeyFingerprint())

	// An operator rotates the key: the old one stays published as retired.
	rot := cli.Must("keys", "rotate")
	cli.Expect(rot, "ACTIVE", "RETIRED", good.GetSigningKeyFingerprint(), "ENDORSED BY")

	other := provision("SN-PIN-2")
	wrong := strings.Repeat("0", 64)
	sim2 := &simCLI{t: t, file: filepath.Join(t.TempDir(), "terminal.json")}
	if out, code := sim2.run("register", "--serial", "SN-PIN-2", "--code", other.GetEnrollmentCode(), "--target", cli.P.Addr,
		"--signing-key-fingerprint", wrong); code == 0 || !strings.Contains(out, "not the pinned one") {
		t.Errorf("register with a wrong pin: exit %d, want a refusal\n%s", code, out)
	}
}
