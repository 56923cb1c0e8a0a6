package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

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

func TestAdminConfigFailsClosedAndShowsLayersHistoryAndDiffs(t *testing.T) {
	cli := StartAdminCLI(t)
	admin, mustAdmin, expect := cli.Run, cli.Must, cli.Expect
	mustAdmin("merchants", "create", "--id", "ACME01", "--legal-name", "Acme Ltd", "--mcc", "5411", "--currency", "NZD")
	mustAdmin("stores", "create", "--merchant", "ACME01", "--id", "akl-01", "--name", "Queen St", "--time-zone", "Pacific/Auckland")
	tid, _ := cli.ProvisionAndRegister("ACME01", "akl-01", "SN-CFG-2")

	mustAdmin("config", "publish", "--merchant", "ACME01", "--daily-limit", "NZD:500000")
	out := mustAdmin("config", "publish", "--merchant", "ACME01", "--receipt-footer", "Thank you")
	expect(out, "receipt_footer", "(unset)", `"Thank you"`)
	// The footer change kept the limit; the store's time zone reached the
	// terminal; each value names its source.
	out = mustAdmin("config", "show", "--terminal", tid)
	expect(out, "5000.00 NZD", "merchant ACME01 v2 (ro-2)", "Pacific/Auckland", "store record", "Thank you")

	for _, bad := range [][]string{
		{"config", "publish"},
		{"config", "publish", "--merchant", "ACME01", "--daily-limit", "USD:100000"},
		{"config", "publish", "--merchant", "ACME01", "--daily-limit", "XXX:100"},
		{"config", "publish", "--merchant", "ACME01", "--daily-limit", "nzd:100"},
		{"config", "publish", "--merchant", "ACME01", "--replace", "--receipt-footer", "x"},
		{"config", "publish", "--merchant", "ACME01", "--clear", "per-transaction-limit"},
		{"merchants", "create", "--id", "BAD01", "--legal-name", "Bad", "--mcc", "5411", "--currency", "XYZ"},
		{"config", "diff", "--from", "1"},
	} {
		if out, code := admin(bad...); code == 0 {
			t.Errorf("posfleet admin %s succeeded:\n%s", strings.Join(bad, " "), out)
		}
	}

	out = mustAdmin("config", "publish", "--merchant", "ACME01", "--clear", "daily-limit", "--dry-run")
	expect(out, "daily_limit", "NZD:500000", "(unset)", "dry run: nothing published", tid)
	expect(mustAdmin("config", "layer", "--merchant", "ACME01"), "daily_limit", "5000.00 NZD", "ro-2")
	expect(mustAdmin("config", "history", "--merchant", "ACME01"), "ro-2", "ro-1", "receipt_footer,daily_limit")
	expect(mustAdmin("config", "diff", "--from", "1", "--to", "2"), "receipt_footer", `"Thank you"`)

	out = mustAdmin("--json", "config", "publish", "--merchant", "ACME01", "--receipt-header", "Kia ora", "--stages", "50,100",
		"--gate-soak", "1m", "--gate-max-approval-drop", "0.1", "--auto-rollback")
	var gated pb.PublishConfigResponse
	if err := protojson.Unmarshal([]byte(out), &gated); err != nil {
		t.Fatalf("publish --json output %q: %v", out, err)
	}
	expect(mustAdmin("rollout", "get", "--id", gated.GetRolloutId()), "soak 1m0s, min 20 payments, approval drop 0.1", "auto-rollback true", "waiting")
	mustAdmin("rollout", "abort", "--id", gated.GetRolloutId())

	// A staged rollback, advanced by hand: the terminal runs the version of
	// the stage that took it in (stage 1 when its bucket falls in the first
	// 1%, stage 2 otherwise), and the rollout lists that version.
	out = mustAdmin("--json", "config", "rollback", "--merchant", "ACME01", "--stages", "1,100")
	var rb pb.RollbackConfigResponse
	if err := protojson.Unmarshal([]byte(out), &rb); err != nil {
		t.Fatalf("rollback --json output %q: %v", out, err)
	}
	id := rb.GetRollout().GetRolloutId()
	out = mustAdmin("rollout", "advance", "--id", id)
	expect(out, id, "(published 5)")
	var eff pb.GetEffectiveConfigResponse
	if err := protojson.Unmarshal([]byte(mustAdmin("--json", "config", "show", "--terminal", tid)), &eff); err != nil {
		t.Fatal(err)
	}
	var gr pb.GetRolloutResponse
	if err := protojson.Unmarshal([]byte(mustAdmin("--json", "rollout", "get", "--id", id)), &gr); err != nil {
		t.Fatal(err)
	}
	got := gr.GetRollout()
	v := eff.GetConfig().GetVersion()
	if !slices.Contains(got.GetStageVersions(), v) || !strings.Contains(out, fmt.Sprintf("(published %d)", got.GetStageVersions()[0])) ||
		eff.GetConfig().GetSettings().GetReceiptFooter() != "" {
		t.Errorf("terminal runs version %d with footer %q; rollout stage versions %v; rollout list says:\n%s",
			v, eff.GetConfig().GetSettings().GetReceiptFooter(), got.GetStageVersions(), out)
	}
}

func TestAdminConfigMaintenanceWindowAndFreezeFlags(t *testing.T) {
	cli := StartAdminCLI(t)
	admin, mustAdmin, expect := cli.Run, cli.Must, cli.Expect
	mustAdmin("merchants", "create", "--id", "MW01", "--legal-name", "Night Shop Ltd", "--mcc", "5411", "--currency", "NZD")
	mustAdmin("stores", "create", "--merchant", "MW01", "--id", "akl-01", "--name", "Queen St", "--time-zone", "Pacific/Auckland")
	cli.ProvisionAndRegister("MW01", "akl-01", "SN-MW-1")

	out := mustAdmin("--json", "config", "publish", "--merchant", "MW01", "--receipt-footer", "night",
		"--window", "22:00-02:00", "--window-jitter", "10m",
		"--freeze", "2026-12-20T00:00:00Z/2026-12-27T00:00:00Z", "--freeze", "2027-01-01T00:00:00+13:00/2027-01-02T00:00:00+13:00")
	var pub pb.PublishConfigResponse
	if err := protojson.Unmarshal([]byte(out), &pub); err != nil {
		t.Fatalf("publish --json output %q: %v", out, err)
	}
	plan := pub.GetRollout().GetPlan()
	if w := plan.GetMaintenanceWindow(); w.GetStart() != "22:00" || w.GetEnd() != "02:00" || w.GetJitter().AsDuration() != 10*time.Minute {
		t.Errorf("maintenance window %v, want 22:00-02:00 with 10m jitter", w)
	}
	if fz := plan.GetFreezes(); len(fz) != 2 || !fz[1].GetStartTime().AsTime().Equal(time.Date(2026, 12, 31, 11, 0, 0, 0, time.UTC)) {
		t.Errorf("freezes %v, want two, the second from 2026-12-31T11:00:00Z", fz)
	}
	expect(mustAdmin("rollout", "get", "--id", pub.GetRolloutId()), "22:00-02:00 store local time, jitter 10m0s",
		"2026-12-20T00:00:00Z/2026-12-27T00:00:00Z")

	var rb pb.RollbackConfigResponse
	if err := protojson.Unmarshal([]byte(mustAdmin("--json", "config", "rollback", "--merchant", "MW01", "--window", "02:00-05:00")), &rb); err != nil {
		t.Fatal(err)
	}
	if w := rb.GetRollout().GetPlan().GetMaintenanceWindow(); w.GetStart() != "02:00" || w.GetEnd() != "05:00" {
		t.Errorf("rollback's maintenance window %v, want 02:00-05:00", w)
	}

	for _, bad := range [][]string{
		{"config", "publish", "--merchant", "MW01", "--receipt-header", "x", "--window", "02:00"},
		{"config", "publish", "--merchant", "MW01", "--receipt-header", "x", "--window", "2am-5am"},
		{"config", "publish", "--merchant", "MW01", "--receipt-header", "x", "--window", "02:00-05:00", "--window-jitter", "4h"},
		{"config", "publish", "--merchant", "MW01", "--receipt-header", "x", "--window-jitter", "1m"},
		{"config", "publish", "--merchant", "MW01", "--receipt-header", "x", "--freeze", "2026-12-20"},
		{"config", "publish", "--merchant", "MW01", "--receipt-header", "x", "--freeze", "2026-12-27T00:00:00Z/2026-12-20T00:00:00Z"},
	} {
		if out, code := admin(bad...); code == 0 {
			t.Errorf("posfleet admin %s succeeded:\n%s", strings.Join(bad, " "), out)
		}
	}
	out, _ = admin("config", "publish", "--merchant", "MW01", "--receipt-header", "x", "--window", "02:00-05:00", "--window-jitter", "4h")
	expect(out, "rollout.maintenance_window.jitter")
}
