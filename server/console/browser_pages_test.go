package console_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

func TestBrowserSignInAndOut(t *testing.T) {
	e := newEnv(t)
	ctx := tab(t)
	run(t, ctx, chromedp.Navigate(e.url+"/"), chromedp.WaitVisible(chromedp.ID("token")))
	e.signIn(t, ctx, rootToken)
	if who := textOf(t, ctx, "#who"); !strings.Contains(who, "ADMIN") {
		t.Errorf("signed in as %q, want the ADMIN bootstrap token", who)
	}
	screenshot(t, ctx, "")
	run(t, ctx, chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("token")))
	// The old session is gone: the dashboard asks for a sign-in again.
	run(t, ctx, chromedp.Navigate(e.url+"/"), chromedp.WaitVisible(chromedp.ID("token")))
	url, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(url, "/login") {
		t.Errorf("after sign-out, / went to %s, want /login", url)
	}
}

func TestBrowserRoles(t *testing.T) {
	e := newEnv(t)
	e.merchant("M1", "Tea House", "S1")
	tid, _ := e.registered("SN-1", "M1", "S1")
	ctx := tab(t)
	e.signIn(t, ctx, e.token("desk", pb.Role_ROLE_AUDITOR))
	run(t, ctx, chromedp.Navigate(e.url+"/terminals/"+tid), chromedp.WaitVisible(chromedp.ID("identity")))
	if controls := evalInt(t, ctx, `document.querySelectorAll("#actions, #act-suspend, #command-form").length`); controls != 0 {
		t.Errorf("auditor sees %d write controls on the terminal page, want none", controls)
	}
	screenshot(t, ctx, "auditor")
	// Forge the suspend form an operator would see, with the auditor's own
	// valid CSRF token: AdminService refuses it.
	run(t, ctx,
		evalVoid(`(function () {
			var f = document.createElement("form");
			f.method = "post"; f.action = "/terminals/`+tid+`/suspend";
			[["csrf", document.querySelector("input[name=csrf]").value], ["confirm", "yes"], ["reason", "forged"]].forEach(function (kv) {
				var i = document.createElement("input"); i.type = "hidden"; i.name = kv[0]; i.value = kv[1]; f.appendChild(i);
			});
			document.body.appendChild(f); f.submit(); return true;
		})()`),
		chromedp.WaitVisible(chromedp.ID("error")),
	)
	if msg := textOf(t, ctx, "#error"); !strings.Contains(msg, "role") {
		t.Errorf("forged write answered %q, want a role refusal", msg)
	}
	got, err := e.admin.GetTerminal(e.root(), &pb.GetTerminalRequest{TerminalId: tid})
	if err != nil || got.GetTerminal().GetState() == pb.TerminalState_TERMINAL_STATE_SUSPENDED {
		t.Fatalf("terminal after the forged suspend: %v, %v; want not suspended", got.GetTerminal().GetState(), err)
	}

	op := tab(t)
	e.signIn(t, op, e.token("ops", pb.Role_ROLE_OPERATOR))
	if evalInt(t, op, `document.querySelectorAll('nav a[href="/tokens"]').length`) != 0 {
		t.Errorf("operator's navigation links to the tokens page")
	}
	run(t, op, chromedp.Navigate(e.url+"/tokens"), chromedp.WaitVisible(chromedp.ID("error")))
	if msg := textOf(t, op, "#error"); !strings.Contains(msg, "role") {
		t.Errorf("operator on /tokens: %q, want a role refusal", msg)
	}
	// The operator may suspend, after a confirmation step.
	run(t, op,
		chromedp.Navigate(e.url+"/terminals/"+tid),
		chromedp.Click(chromedp.ID("act-suspend")),
		chromedp.WaitVisible(chromedp.ID("confirm-form")),
		chromedp.SendKeys(chromedp.CSS(`input[name="reason"]`), "lost in store"),
		chromedp.Click(chromedp.ID("confirm")),
		chromedp.WaitVisible(chromedp.ID("flash")),
	)
	if st := textOf(t, op, "#state"); st != "SUSPENDED" {
		t.Errorf("terminal state shown %q after suspending, want SUSPENDED", st)
	}
	screenshot(t, op, "operator")
}

// heartbeat reports a healthy status for a terminal.
func (e *env) heartbeat(cred string) {
	e.t.Helper()
	battery := uint32(81)
	if _, err := e.term.Heartbeat(bearer(e.t.Context(), cred), &pb.HeartbeatRequest{Status: &pb.TerminalStatus{
		FirmwareVersion: "fw1", AppVersion: "app1", BatteryPercent: &battery, Paper: pb.PaperStatus_PAPER_STATUS_OK, Network: pb.NetworkType_NETWORK_TYPE_WIFI,
	}}); err != nil {
		e.t.Fatalf("Heartbeat: %v", err)
	}
}

// pay makes a sale of minor units CNY with card token tok.
func (e *env) pay(cred, mid, id string, minor int64, tok string) *pb.AuthorizeResponse {
	e.t.Helper()
	resp, err := e.payments.Authorize(bearer(e.t.Context(), cred), &pb.AuthorizeRequest{
		RequestId: id, MerchantId: mid, Amount: &pb.Money{MinorUnits: minor, Currency: "CNY"},
		Card:      &pb.Card{Token: tok, MaskedPan: "411111******1111", EntryMode: pb.EntryMode_ENTRY_MODE_CHIP},
		LocalTime: timestamppb.Now(), Capture: true,
	})
	if err != nil {
		e.t.Fatalf("Authorize %s: %v", id, err)
	}
	return resp
}

// connectivity returns the API's terminal counts by connectivity.
func (e *env) connectivity() (map[string]uint64, uint64) {
	e.t.Helper()
	rep, err := e.admin.GetFleetReport(e.root(), &pb.GetFleetReportRequest{})
	if err != nil {
		e.t.Fatalf("GetFleetReport: %v", err)
	}
	m := map[string]uint64{}
	for _, kc := range rep.GetByConnectivity() {
		m[kc.GetKey()] = kc.GetCount()
	}
	return m, rep.GetTotalTerminals()
}

func TestBrowserDashboardMatchesAPI(t *testing.T) {
	e := newEnv(t)
	e.merchant("M1", "Tea House", "S1")
	e.merchant("M2", "Noodle Bar", "S1")
	var creds []string
	for i := range 3 {
		_, cred := e.registered(fmt.Sprintf("SN-%d", i), "M1", "S1")
		creds = append(creds, cred)
	}
	if _, err := e.admin.ProvisionTerminal(e.root(), &pb.ProvisionTerminalRequest{SerialNumber: "SN-NEW", MerchantId: "M2", StoreId: "S1"}); err != nil {
		t.Fatal(err)
	}
	e.heartbeat(creds[0])
	e.heartbeat(creds[1])
	e.pay(creds[0], "M1", "r-1", 1250, "tok_a")
	e.pay(creds[0], "M1", "r-2", 800, "tok_b")
	e.pay(creds[1], "M1", "r-3", 999, "tok_test_decline")

	ctx := tab(t)
	e.signIn(t, ctx, rootToken)
	run(t, ctx, chromedp.WaitVisible(chromedp.ID("total-terminals")))
	want, total := e.connectivity()
	if got := textOf(t, ctx, "#total-terminals"); got != strconv.FormatUint(total, 10) || total != 4 {
		t.Errorf("total terminals shown %s, API %d, want 4", got, total)
	}
	for _, k := range []string{"ONLINE", "STALE", "OFFLINE", "NEVER_SEEN"} {
		if got := textOf(t, ctx, `td[data-conn="`+k+`"]`); got != strconv.FormatUint(want[k], 10) {
			t.Errorf("%s shown %s, API says %d", k, got, want[k])
		}
	}
	if want["ONLINE"] != 3 || want["NEVER_SEEN"] != 1 {
		t.Errorf("API: %v, want 3 online (registered) and 1 never seen (only provisioned)", want)
	}
	if got := textOf(t, ctx, `tr[data-merchant="M1"] .approvals`); got != "2" {
		t.Errorf("M1 approvals today shown %s, want 2", got)
	}
	if got := textOf(t, ctx, `tr[data-merchant="M1"] .declines`); got != "1" {
		t.Errorf("M1 declines today shown %s, want 1", got)
	}
	if got := textOf(t, ctx, `tr[data-merchant="M1"] .amount`); got != "20.50 CNY" {
		t.Errorf("M1 approved amount shown %q, want 20.50 CNY", got)
	}
	screenshot(t, ctx, "")

	// The dashboard refreshes by itself: a fifth terminal comes online.
	e.registered("SN-LATE", "M2", "S1")
	want, total = e.connectivity()
	if want["ONLINE"] != 4 || total != 5 {
		t.Fatalf("API after the late registration: %v of %d, want 4 online of 5", want, total)
	}
	waitText(t, ctx, `td[data-conn="ONLINE"]`, "the API's count", func(s string) bool { return s == "4" })
	if got := textOf(t, ctx, "#total-terminals"); got != "5" {
		t.Errorf("total after the refresh %s, want 5", got)
	}

	// Usable on a tablet: in portrait, nothing sticks out sideways.
	run(t, ctx, chromedp.EmulateViewport(768, 1024, chromedp.EmulatePortrait, chromedp.EmulateTouch), chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("total-terminals")))
	if over := evalInt(t, ctx, `document.documentElement.scrollWidth - window.innerWidth`); over > 0 {
		t.Errorf("dashboard at 768×1024 is %d px wider than the screen", over)
	}
	screenshot(t, ctx, "tablet")
}

func TestBrowserPublishStagedConfig(t *testing.T) {
	e := newEnv(t)
	e.merchant("M1", "Tea House", "S1")
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	for i := range 4 {
		_, cred := e.registered(fmt.Sprintf("SN-%d", i), "M1", "S1")
		c, err := client.Dial(e.addr, client.WithBearer(cred), client.WithInsecure())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go c.WatchConfig(ctx, client.ConfigWatch{Apply: func(context.Context, *pb.WatchConfigResponse) error { return nil }, MinBackoff: 50 * time.Millisecond})
	}

	b := tab(t)
	e.signIn(t, b, rootToken)
	run(t, b,
		chromedp.Navigate(e.url+"/config?merchant=M1"),
		chromedp.WaitVisible(chromedp.ID("publish-form")),
		chromedp.SendKeys(chromedp.CSS(`#publish-form input[name="receipt_header"]`), "欢迎光临 Tea House"),
		chromedp.SendKeys(chromedp.CSS(`#publish-form input[name="stages"]`), "50,100"),
		chromedp.SendKeys(chromedp.CSS(`#publish-form input[name="description"]`), "new receipt header"),
		chromedp.Click(chromedp.ID("publish")),
		chromedp.WaitVisible(chromedp.ID("rollout")),
	)
	// Without auto-advance the rollout waits after its healthy first stage;
	// the operator advances it from the page, which then shows it complete.
	waitText(t, b, "#rollout-state", "PAUSED", func(s string) bool { return s == "PAUSED" })
	// The first stage's terminals (a hash-chosen half of the fleet) all
	// applied the version; the rest wait for the operator.
	included := textOf(t, b, "#included")
	waitText(t, b, "#applied", "the stage's "+included, func(s string) bool { return s == included })
	run(t, b, chromedp.Click(chromedp.ID("ro-advance")), chromedp.WaitVisible(chromedp.ID("flash")))
	waitText(t, b, "#rollout-state", "COMPLETED", func(s string) bool { return s == "COMPLETED" })
	waitText(t, b, "#applied", "4 of 4", func(s string) bool { return s == "4" })
	screenshot(t, b, "")
	ro, err := e.admin.ListRollouts(e.root(), &pb.ListRolloutsRequest{})
	if err != nil || len(ro.GetRollouts()) != 1 || ro.GetRollouts()[0].GetState() != pb.RolloutState_ROLLOUT_STATE_COMPLETED ||
		!strings.HasPrefix(ro.GetRollouts()[0].GetActor(), "admin:") {
		t.Fatalf("API rollouts: %v, %v; want one completed rollout by the admin token", ro.GetRollouts(), err)
	}
}

func TestBrowserMerchantMismatchAlert(t *testing.T) {
	e := newEnv(t)
	e.merchant("M1", "Tea House", "S1")
	e.merchant("M2", "Noodle Bar", "S1")
	tid, cred := e.registered("SN-1", "M1", "S1")
	resp, err := e.term.VerifyMerchant(bearer(t.Context(), cred), &pb.VerifyMerchantRequest{ClaimedMerchantId: "M2"})
	if err != nil || resp.GetMatches() {
		t.Fatalf("VerifyMerchant claiming M2: %v, %v; want a mismatch", resp, err)
	}
	ctx := tab(t)
	e.signIn(t, ctx, rootToken)
	rep, err := e.admin.GetFleetReport(e.root(), &pb.GetFleetReportRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := textOf(t, ctx, "#mismatch-alerts"); got != strconv.FormatUint(rep.GetMerchantMismatchAlerts(), 10) || got != "1" {
		t.Errorf("dashboard mismatch alerts %s, API %d, want 1", got, rep.GetMerchantMismatchAlerts())
	}
	run(t, ctx, chromedp.Click(chromedp.ID("mismatch-alerts")), chromedp.WaitVisible(chromedp.CSS(`tr[data-type="MERCHANT_MISMATCH"]`)))
	row := textOf(t, ctx, `tr[data-type="MERCHANT_MISMATCH"]`)
	if !strings.Contains(row, tid) || !strings.Contains(row, "M2") {
		t.Errorf("alert row %q: want the terminal %s and the claimed merchant M2 as evidence", row, tid)
	}
	screenshot(t, ctx, "")
}

func TestBrowserSettlementMatchesReport(t *testing.T) {
	e := newEnv(t)
	e.merchant("M1", "Tea House", "S1", "S2")
	_, c1 := e.registered("SN-1", "M1", "S1")
	_, c2 := e.registered("SN-2", "M1", "S2")
	e.pay(c1, "M1", "r-1", 1250, "tok_a")
	e.pay(c1, "M1", "r-2", 4999, "tok_b")
	e.pay(c2, "M1", "r-3", 30000, "tok_c")
	e.pay(c2, "M1", "r-4", 100, "tok_test_nsf")
	// The terminal in S2 closes its batch with totals that disagree.
	if _, err := e.payments.CloseBatch(bearer(t.Context(), c2), &pb.CloseBatchRequest{RequestId: "close-1", BatchNumber: 1,
		TerminalTotals: &pb.BatchTotals{SaleCount: 2, SaleAmount: &pb.Money{MinorUnits: 30100, Currency: "CNY"}}}); err != nil {
		t.Fatalf("CloseBatch: %v", err)
	}
	date := time.Now().In(mustZone(t, "Asia/Shanghai")).Format(time.DateOnly)
	rep, err := e.admin.GetSettlementReport(e.root(), &pb.GetSettlementReportRequest{MerchantId: "M1", BusinessDate: date})
	if err != nil {
		t.Fatal(err)
	}
	ctx := tab(t)
	e.signIn(t, ctx, rootToken)
	run(t, ctx, chromedp.Navigate(e.url+"/settlement?merchant=M1&date="+date), chromedp.WaitVisible(chromedp.ID("totals")))
	tot := rep.GetTotals()
	for sel, want := range map[string]string{
		"#sale-count":     strconv.FormatUint(tot.GetSaleCount(), 10),
		"#sale-amount":    "362.49 CNY",
		"#refund-count":   strconv.FormatUint(tot.GetRefundCount(), 10),
		"#reversal-count": strconv.FormatUint(tot.GetReversalCount(), 10),
		"#out-of-balance": "1",
	} {
		if got := textOf(t, ctx, sel); got != want {
			t.Errorf("%s shown %q, want %q (report %v)", sel, got, want, tot)
		}
	}
	if tot.GetSaleCount() != 3 || tot.GetSaleAmount().GetMinorUnits() != 36249 {
		t.Errorf("report totals %v, want 3 sales of 362.49 CNY", tot)
	}
	screenshot(t, ctx, "")
}

func TestBrowserScriptNameInert(t *testing.T) {
	e := newEnv(t)
	const name = `<script>alert(1)</script>`
	if _, err := e.admin.CreateMerchant(e.root(), &pb.CreateMerchantRequest{Merchant: &pb.Merchant{
		MerchantId: "EVIL1", LegalName: name, DisplayName: name, Mcc: "5411", Currency: "CNY",
	}}); err != nil {
		t.Fatalf("CreateMerchant: %v", err)
	}
	ctx := tab(t)
	opened := dialogs(t, ctx)
	e.signIn(t, ctx, rootToken)
	for _, path := range []string{"/merchants", "/merchants/EVIL1", "/settlement?merchant=EVIL1"} {
		run(t, ctx, chromedp.Navigate(e.url+path), chromedp.WaitVisible(chromedp.CSS("main")))
	}
	run(t, ctx, chromedp.Navigate(e.url+"/merchants"), chromedp.WaitVisible(chromedp.CSS(`tr[data-merchant="EVIL1"]`)))
	if got := textOf(t, ctx, `tr[data-merchant="EVIL1"] .display-name`); got != name {
		t.Errorf("display name shown as %q, want the literal text %q", got, name)
	}
	if scripts := evalInt(t, ctx, `document.querySelectorAll("main script").length`); scripts != 0 {
		t.Errorf("the page holds %d script elements in <main>, want none", scripts)
	}
	if d := opened(); len(d) != 0 {
		t.Errorf("the merchant name ran as script: dialogs %q", d)
	}
	screenshot(t, ctx, "")
}
