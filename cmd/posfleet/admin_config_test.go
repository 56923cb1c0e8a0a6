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

func TestAdminConfigAndRolloutCommands(t *testing.T) {
	cli := StartAdminCLI(t)
	p := cli.P
	admin, mustAdmin, expect := cli.Run, cli.Must, cli.Expect
	mustAdmin("merchants", "create", "--id", "MID1", "--legal-name", "Kiwi Foods Ltd", "--mcc", "5411", "--currency", "NZD")
	mustAdmin("stores", "create", "--merchant", "MID1", "--id", "akl-01", "--name", "Queen St")
	var prov pb.ProvisionTerminalResponse
	if err := protojson.Unmarshal([]byte(mustAdmin("--json", "terminals", "provision", "--serial", "SN-CFG-1", "--merchant", "MID1", "--store", "akl-01")), &prov); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	anon, err := client.Dial(p.Addr, client.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if _, err := anon.Register(ctx, "SN-CFG-1", prov.GetEnrollmentCode(), &pb.DeviceInfo{Model: "A920"}); err != nil {
		t.Fatal(err)
	}
	tid := prov.GetTerminalId()

	out := mustAdmin("config", "publish", "--merchant", "MID1", "--receipt-header", "Kia ora", "--daily-limit", "NZD:50000",
		"--entry-modes", "chip,contactless", "--heartbeat-interval", "30s", "--extra", "printer.density=3", "--description", "winter")
	expect(out, "ROLLOUT", "merchant MID1", "1/1 (100%)", "RUNNING")
	out = mustAdmin("config", "show", "--terminal", tid)
	expect(out, "Kia ora", "NZD:50000", "chip,contactless", "30s", "extra.printer.density", "UTC")

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
