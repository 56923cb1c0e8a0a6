package main

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

func TestAdminConfigAndRolloutCommands(t *testing.T) {
	cli := StartAdminCLI(t)
	admin, mustAdmin, expect := cli.Run, cli.Must, cli.Expect
	mustAdmin("merchants", "create", "--id", "MID1", "--legal-name", "Kiwi Foods Ltd", "--mcc", "5411", "--currency", "NZD")
	mustAdmin("stores", "create", "--merchant", "MID1", "--id", "akl-01", "--name", "Queen St")
	tid, _ := cli.ProvisionAndRegister("MID1", "akl-01", "SN-CFG-1")

	out := mustAdmin("config", "publish", "--merchant", "MID1", "--receipt-header", "Kia ora", "--daily-limit", "500NZD", "--per-transaction-limit", "NZD:12050",
		"--entry-modes", "chip,contactless", "--heartbeat-interval", "30s", "--extra", "printer.density=3", "--description", "winter")
	expect(out, "ROLLOUT", "merchant MID1", "1/1 (100%)", "RUNNING")
	out = mustAdmin("config", "show", "--terminal", tid)
	expect(out, "Kia ora", "500.00 NZD", "120.50 NZD", "chip,contactless", "30s", "extra.printer.density", "UTC")

	var pub pb.PublishConfigResponse
	out = mustAdmin("--json", "config", "publish", "--stages", "50,100", "--max-failure-ratio", "0.2", "--receipt-footer", "bye")
	if err := protojson.Unmarshal([]byte(out), &pub); err != nil {
		t.Fatalf("publish --json output %q: %v", out, err)
	}
	id := pub.GetRolloutId()
	expect(mustAdmin("rollout", "get", "--id", id), id, "global", "50%, 100%", "0.200")
	expect(mustAdmin("rollout", "pause", "--id", id, "--reason", "lunch"), id, "PAUSED")
	expect(mustAdmin("rollout", "list", "--state", "paused"), id)
	expect(mustAdmin("rollout", "resume", "--id", id), "RUNNING")
	expect(mustAdmin("rollout", "abort", "--id", id, "--reason", "typo"), "ABORTED")
	expect(mustAdmin("rollout", "list"), id, "ABORTED", "ro-1")

	for _, bad := range [][]string{
		{"config", "publish", "--daily-limit", "500"},
		{"config", "publish", "--daily-limit", "5.001NZD"},
		{"config", "publish", "--heartbeat-interval", "1s"},
		{"config", "publish", "--stages", "50,20"},
		{"rollout", "abort", "--id", id},
		{"rollout", "get"},
		{"config", "show", "--terminal", "NOPE0000"},
	} {
		if out, code := admin(bad...); code == 0 {
			t.Errorf("posfleet admin %s succeeded:\n%s", strings.Join(bad, " "), out)
		}
	}
	out, _ = admin("config", "publish", "--heartbeat-interval", "1s")
	expect(out, "settings.heartbeat_interval")
}
