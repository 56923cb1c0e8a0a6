package server_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

func TestConfigChangesFailClosedOverGRPC(t *testing.T) {
	e := newFleetEnv(t)
	e.merchant("M1", "S1")
	tid, _ := e.registered("SN-1", "M1", "S1")
	m1 := &pb.ConfigScope{MerchantId: "M1"}
	v1 := e.publish(&pb.PublishConfigRequest{Scope: m1, Settings: &pb.Settings{DailyLimit: &pb.Money{MinorUnits: 500000, Currency: "NZD"}}})
	v2 := e.publish(&pb.PublishConfigRequest{Scope: m1, Settings: &pb.Settings{ReceiptFooter: proto.String("Thank you")}})
	if ch := v2.GetChanges(); len(ch) != 1 || ch[0].GetField() != "receipt_footer" || v2.GetLayer().GetDailyLimit().GetMinorUnits() != 500000 {
		t.Fatalf("footer publish changed %v, layer %v; want only the footer, limit kept", ch, v2.GetLayer())
	}

	for _, tc := range []struct {
		name  string
		req   *pb.PublishConfigRequest
		field string
	}{
		{"empty global publish", &pb.PublishConfigRequest{}, "settings"},
		{"limit in another currency", &pb.PublishConfigRequest{Scope: m1, Settings: &pb.Settings{DailyLimit: &pb.Money{MinorUnits: 100000, Currency: "USD"}}}, "settings.daily_limit.currency"},
		{"not a currency", &pb.PublishConfigRequest{Scope: m1, Settings: &pb.Settings{DailyLimit: &pb.Money{MinorUnits: 100, Currency: "XXX"}}}, "settings.daily_limit.currency"},
		{"replace drops the limit", &pb.PublishConfigRequest{Scope: m1, Replace: true, Settings: &pb.Settings{ReceiptFooter: proto.String("bye")}}, "settings.daily_limit"},
		{"unknown clear", &pb.PublishConfigRequest{Scope: m1, ClearFields: []string{"limits"}}, "clear_fields[0]"},
	} {
		_, err := e.admin.PublishConfig(e.adminCtx(), tc.req)
		if status.Code(err) != codes.InvalidArgument || !slices.Contains(violationFields(err), tc.field) {
			t.Errorf("%s: %v (fields %v), want InvalidArgument on %s", tc.name, err, violationFields(err), tc.field)
		}
	}
	_, err := e.admin.CreateMerchant(e.adminCtx(), &pb.CreateMerchantRequest{Merchant: &pb.Merchant{MerchantId: "M9", LegalName: "x", Mcc: "5411", Currency: "XYZ"}})
	if !slices.Contains(violationFields(err), "merchant.currency") {
		t.Errorf("merchant with currency XYZ: %v, want a merchant.currency violation", err)
	}

	// A dry run shows the change and the terminals, and publishes nothing.
	dry, err := e.admin.PublishConfig(e.adminCtx(), &pb.PublishConfigRequest{Scope: m1, DryRun: true, ClearFields: []string{"daily_limit"}})
	if err != nil {
		t.Fatal(err)
	}
	if !dry.GetDryRun() || dry.GetVersion() != 0 || len(dry.GetChanges()) != 1 || dry.GetChanges()[0].GetBefore() != "NZD:500000" ||
		!slices.Equal(dry.GetFirstStageTerminalIds(), []string{tid}) || dry.GetTargetedTerminals() != 1 {
		t.Errorf("dry run = %v, want the daily_limit removal reaching %s and no version", dry, tid)
	}
	layer, err := e.admin.GetConfigLayer(e.adminCtx(), &pb.GetConfigLayerRequest{Scope: m1})
	if err != nil || layer.GetLayer().GetRollout().GetVersion() != v2.GetVersion() || layer.GetLayer().GetLayer().GetDailyLimit() == nil {
		t.Fatalf("GetConfigLayer after the dry run = %v, %v; want version %d with the limit", layer, err, v2.GetVersion())
	}

	// History, diff and provenance.
	hist, err := e.admin.ListConfigVersions(e.adminCtx(), &pb.ListConfigVersionsRequest{Scope: m1})
	if err != nil || len(hist.GetVersions()) != 2 || hist.GetVersions()[0].GetRollout().GetVersion() != v2.GetVersion() {
		t.Fatalf("ListConfigVersions = %v, %v; want versions %d and %d", hist, err, v2.GetVersion(), v1.GetVersion())
	}
	diff, err := e.admin.DiffConfigVersions(e.adminCtx(), &pb.DiffConfigVersionsRequest{FromVersion: v1.GetVersion(), ToVersion: v2.GetVersion()})
	if err != nil || len(diff.GetChanges()) != 1 || diff.GetChanges()[0].GetAfter() != `"Thank you"` {
		t.Errorf("DiffConfigVersions = %v, %v; want the footer", diff, err)
	}
	if _, err := e.admin.DiffConfigVersions(e.adminCtx(), &pb.DiffConfigVersionsRequest{FromVersion: 1, ToVersion: 99}); reason(err) != "CONFIG_VERSION_NOT_FOUND" {
		t.Errorf("diff with an unknown version: %v, want CONFIG_VERSION_NOT_FOUND", err)
	}
	eff, err := e.admin.GetEffectiveConfig(e.adminCtx(), &pb.GetEffectiveConfigRequest{TerminalId: tid})
	if err != nil {
		t.Fatal(err)
	}
	src := map[string]*pb.ConfigValueSource{}
	for _, s := range eff.GetSources() {
		src[s.GetField()] = s
	}
	if s := src["time_zone"]; s.GetOrigin() != pb.ConfigValueOrigin_CONFIG_VALUE_ORIGIN_STORE || eff.GetConfig().GetSettings().GetTimeZone() != "Pacific/Auckland" {
		t.Errorf("time zone %q from %v, want the store's Pacific/Auckland", eff.GetConfig().GetSettings().GetTimeZone(), s)
	}
	if s := src["daily_limit"]; s.GetOrigin() != pb.ConfigValueOrigin_CONFIG_VALUE_ORIGIN_LAYER || s.GetVersion() != v2.GetVersion() || s.GetScope().GetMerchantId() != "M1" {
		t.Errorf("daily_limit source %v, want merchant M1's current layer, version %d", s, v2.GetVersion())
	}

	// Rollback publishes the previous layer as a new version; the terminal
	// runs the version of the stage that took it in (the first when its
	// bucket falls in the first 1%), one the rollout reports.
	rb, err := e.admin.RollbackConfig(e.adminCtx(), &pb.RollbackConfigRequest{Scope: m1, Rollout: &pb.RolloutPlan{StagePercents: []uint32{1, 100}}})
	if err != nil {
		t.Fatal(err)
	}
	if rb.GetRollout().GetRollbackOfVersion() != v2.GetVersion() || len(rb.GetChanges()) != 1 || rb.GetChanges()[0].GetField() != "receipt_footer" {
		t.Errorf("rollback = %v, want version %d's footer removed", rb, v2.GetVersion())
	}
	adv, err := e.admin.AdvanceRollout(e.adminCtx(), &pb.AdvanceRolloutRequest{RolloutId: rb.GetRollout().GetRolloutId()})
	if err != nil {
		t.Fatal(err)
	}
	eff, _ = e.admin.GetEffectiveConfig(e.adminCtx(), &pb.GetEffectiveConfigRequest{TerminalId: tid})
	if got, stages := eff.GetConfig().GetVersion(), adv.GetRollout().GetStageVersions(); len(stages) != 2 ||
		stages[1] != adv.GetRollout().GetCurrentVersion() || !slices.Contains(stages, got) {
		t.Errorf("terminal runs version %d, rollout reports current version %d (stages %v); want one of the stages",
			got, adv.GetRollout().GetCurrentVersion(), stages)
	}
	if eff.GetConfig().GetSettings().GetReceiptFooter() != "" {
		t.Errorf("after the rollback the footer is %q, want none", eff.GetConfig().GetSettings().GetReceiptFooter())
	}
	if _, err := e.admin.AdvanceRollout(e.adminCtx(), &pb.AdvanceRolloutRequest{RolloutId: adv.GetRollout().GetRolloutId()}); reason(err) != "ROLLOUT_STATE" {
		t.Errorf("advancing a finished rollout: %v, want ROLLOUT_STATE", err)
	}
}

func TestPaymentGateRollsBackADecliningConfigOverGRPC(t *testing.T) {
	e := newFleetEnv(t)
	e.merchant("M1", "S1")
	pay := pb.NewPaymentServiceClient(e.conn)
	creds := map[string]string{}
	for i := range 12 {
		tid, cred := e.registered(fmt.Sprintf("SN-GATE-%d", i), "M1", "S1")
		creds[tid] = cred
	}
	resp := e.publish(&pb.PublishConfigRequest{
		Scope:    &pb.ConfigScope{MerchantId: "M1"},
		Settings: &pb.Settings{PerTransactionLimit: &pb.Money{MinorUnits: 1, Currency: "NZD"}},
		Rollout: &pb.RolloutPlan{StagePercents: []uint32{50, 100}, AutoAdvance: true,
			PaymentGate: &pb.PaymentGate{MinPayments: 8, SoakTime: durationpb.New(time.Minute), AutoRollback: true}},
	})
	treated := map[string]bool{}
	nTreated := 0
	classify := func(tid string) {
		eff, err := e.admin.GetEffectiveConfig(e.adminCtx(), &pb.GetEffectiveConfigRequest{TerminalId: tid})
		if err != nil {
			t.Fatal(err)
		}
		treated[tid] = eff.GetConfig().GetRolloutId() == resp.GetRolloutId()
		if treated[tid] {
			nTreated++
		}
	}
	for tid := range creds {
		classify(tid)
	}
	// Terminal IDs are random, so the 50% stage takes in none or all of
	// the 12 once in 2^11 runs; the gate needs both a treated and a control
	// group. Terminals registered later join the rollout's draw just the
	// same: add them until both groups have one.
	for i := 12; nTreated == 0 || nTreated == len(creds); i++ {
		if i == 60 {
			t.Fatalf("the first stage reached %d of %d terminals, want some but not all", nTreated, len(creds))
		}
		tid, cred := e.registered(fmt.Sprintf("SN-GATE-%d", i), "M1", "S1")
		creds[tid] = cred
		classify(tid)
	}
	// The gate counts payments from its first evaluation on (once a
	// second): wait for it, so that a slow machine does not leave the
	// payments below in the gate's baseline.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		got, err := e.admin.GetRollout(e.adminCtx(), &pb.GetRolloutRequest{RolloutId: resp.GetRolloutId()})
		if err != nil {
			t.Fatal(err)
		}
		if got.GetRollout().GetPaymentGateStatus().GetSince() != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the payment gate never started watching")
		}
	}
	// The control group pays first, then the treated terminals. The gate
	// may roll the config back as soon as MinPayments declines are in, on a
	// slow machine while the treated terminals are still paying: from then
	// on they approve again, so a treated terminal's 61s form a prefix.
	order := slices.SortedFunc(maps.Keys(creds), func(a, b string) int {
		if treated[a] != treated[b] {
			if treated[a] {
				return 1
			}
			return -1
		}
		return strings.Compare(a, b)
	})
	n, declined, rolledBack := 0, 0, false
	for _, tid := range order {
		// MinPayments from even a single treated terminal.
		for range 8 {
			n++
			req := saleReq(fmt.Sprintf("gate-%d", n), 500)
			r, err := pay.Authorize(bearer(t.Context(), creds[tid]), req)
			if err != nil {
				t.Fatal(err)
			}
			switch code := r.GetResponseCode(); {
			case !treated[tid] && code != "00":
				t.Fatalf("control terminal %s got %s, want 00", tid, code)
			case treated[tid] && code == "61" && !rolledBack:
				declined++
			case treated[tid] && code == "00" && declined >= 8:
				rolledBack = true // the gate has rolled the limit back
			case treated[tid]:
				t.Fatalf("terminal %s in the rollout got %s after %d declines (rolled back: %v), want 61 until the gate rolls back",
					tid, code, declined, rolledBack)
			}
		}
	}
	var ro *pb.Rollout
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, err := e.admin.GetRollout(e.adminCtx(), &pb.GetRolloutRequest{RolloutId: resp.GetRolloutId()})
		if err != nil {
			t.Fatal(err)
		}
		if ro = got.GetRollout(); ro.GetState() == pb.RolloutState_ROLLOUT_STATE_ABORTED || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	gs := ro.GetPaymentGateStatus()
	if ro.GetState() != pb.RolloutState_ROLLOUT_STATE_ABORTED || ro.GetCurrentStage() != 0 || gs.GetVerdict() != "breached" ||
		gs.GetTreatmentApprovalRatio() != 0 || gs.GetReference() != "control" || gs.GetReferenceApprovalRatio() != 1 {
		t.Fatalf("rollout %s stage %d gate %v; want ABORTED in stage 1 by the approval breach", ro.GetState(), ro.GetCurrentStage(), gs)
	}
	for tid := range creds {
		eff, _ := e.admin.GetEffectiveConfig(e.adminCtx(), &pb.GetEffectiveConfigRequest{TerminalId: tid})
		if eff.GetConfig().GetSettings().GetPerTransactionLimit() != nil {
			t.Errorf("%s keeps the declining limit after the automatic rollback", tid)
		}
	}
}
