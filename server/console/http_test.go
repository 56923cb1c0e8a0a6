package console_test

import (
	"encoding/csv"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

func TestEveryPageRenders(t *testing.T) {
	e := newEnv(t)
	e.merchant("M1", "Tea House", "S1")
	tid, _ := e.registered("SN-1", "M1", "S1")
	b := e.browser()
	b.login(rootToken)
	for _, path := range []string{"/", "/terminals", "/terminals?q=sn-1", "/terminals/" + tid, "/merchants", "/merchants/M1",
		"/config", "/config?merchant=M1", "/alerts", "/audit", "/audit?type=TERMINAL_REGISTERED", "/settlement", "/settlement?merchant=M1",
		"/transactions", "/tokens", "/login"} {
		code, body := b.get(path)
		if code != http.StatusOK {
			t.Errorf("GET %s: got %d, want 200\n%.3000s", path, code, body)
		}
	}
	for _, path := range []string{"/", "/config", "/config?merchant=M1", "/settlement?merchant=M1", "/terminals/" + tid} {
		if _, body := b.get(path); strings.Contains(body, `id="error"`) {
			t.Errorf("GET %s shows an error on a healthy fleet\n%.3000s", path, body[strings.Index(body, `id="error"`):])
		}
	}
	if _, body := b.get("/terminals?q=sn-1"); !strings.Contains(body, tid) {
		t.Errorf("search for the serial: terminal %s not listed", tid)
	}
	b.do(http.MethodGet, "/lang/zh-CN?back=/terminals", nil, nil)
	if _, body := b.get("/terminals"); !strings.Contains(body, `lang="zh-CN"`) || !strings.Contains(body, "终端") {
		t.Errorf("after the language switch: page is not in Chinese\n%.1500s", body)
	}
}

func TestSignInSessionAndHeaders(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	if code, _ := b.get("/"); code != http.StatusSeeOther {
		t.Fatalf("GET / signed out: got %d, want a redirect to /login", code)
	}
	code, _, _ := b.do(http.MethodPost, "/login", url.Values{"token": {"pfa_wrong-token-0123456789"}}, map[string]string{"Origin": e.url})
	if code != http.StatusUnauthorized {
		t.Errorf("login with a wrong token: got %d, want 401", code)
	}
	code, _, _ = b.do(http.MethodPost, "/login", url.Values{"token": {rootToken}}, map[string]string{"Origin": "https://evil.example"})
	if code != http.StatusForbidden {
		t.Errorf("login posted from another site: got %d, want 403", code)
	}
	code, _, h := b.do(http.MethodPost, "/login", url.Values{"token": {rootToken}}, map[string]string{"Origin": e.url})
	if code != http.StatusSeeOther {
		t.Fatalf("login: got %d, want 303", code)
	}
	ck := h.Get("Set-Cookie")
	for _, want := range []string{"posfleet_session=", "HttpOnly", "SameSite=Strict", "Max-Age="} {
		if !strings.Contains(ck, want) {
			t.Errorf("session cookie %q: missing %s", ck, want)
		}
	}
	if strings.Contains(ck, rootToken) {
		t.Errorf("session cookie carries the admin token")
	}
	_, body, h := b.do(http.MethodGet, "/", nil, nil)
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q: missing %s", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP %q allows inline code", csp)
	}
	if h.Get("X-Frame-Options") != "DENY" {
		t.Errorf("X-Frame-Options = %q, want DENY", h.Get("X-Frame-Options"))
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, " style=") {
		t.Errorf("page has inline script or style")
	}
	if code, _ := b.post("/", "/logout", url.Values{}); code != http.StatusSeeOther {
		t.Errorf("logout: got %d, want 303", code)
	}
	if code, _ := b.get("/"); code != http.StatusSeeOther {
		t.Errorf("GET / after sign-out: got %d, want a redirect to /login", code)
	}
}

func TestWriteWithoutCSRFRefused(t *testing.T) {
	e := newEnv(t)
	e.merchant("M1", "Tea House", "S1")
	b := e.browser()
	b.login(rootToken)
	form := url.Values{"merchant_id": {"M2"}, "legal_name": {"M2 Ltd"}, "mcc": {"5411"}, "currency": {"CNY"}}
	cases := []struct {
		name   string
		header map[string]string
		csrf   string
	}{
		{"no CSRF token", map[string]string{"Origin": e.url}, ""},
		{"wrong CSRF token", map[string]string{"Origin": e.url}, "forged"},
		{"right token, foreign origin", map[string]string{"Origin": "https://evil.example"}, "page"},
		{"right token, no origin", nil, "page"},
	}
	_, page := b.get("/merchants")
	for _, tc := range cases {
		f := url.Values{}
		for k, v := range form {
			f[k] = v
		}
		if tc.csrf == "page" {
			f.Set("csrf", csrfOf(t, page))
		} else if tc.csrf != "" {
			f.Set("csrf", tc.csrf)
		}
		if code, _, _ := b.do(http.MethodPost, "/merchants", f, tc.header); code != http.StatusForbidden {
			t.Errorf("%s: got %d, want 403", tc.name, code)
		}
	}
	if _, err := e.admin.GetMerchant(e.root(), &pb.GetMerchantRequest{MerchantId: "M2"}); err == nil {
		t.Fatal("a refused write created the merchant")
	}
	if code, _ := b.post("/merchants", "/merchants", form); code != http.StatusSeeOther {
		t.Fatalf("the same write from the page: got %d, want 303", code)
	}
	if _, err := e.admin.GetMerchant(e.root(), &pb.GetMerchantRequest{MerchantId: "M2"}); err != nil {
		t.Fatalf("GetMerchant after the write: %v", err)
	}
}

func TestRolesAsInAdminService(t *testing.T) {
	e := newEnv(t)
	e.merchant("M1", "Tea House", "S1")
	tid, _ := e.registered("SN-1", "M1", "S1")
	auditor := e.browser()
	auditor.login(e.token("desk", pb.Role_ROLE_AUDITOR))
	_, page := auditor.get("/terminals/" + tid)
	if strings.Contains(page, "act-suspend") || strings.Contains(page, "command-form") {
		t.Errorf("auditor sees write controls on the terminal page")
	}
	if _, p := auditor.get("/merchants"); strings.Contains(p, "merchant-form") {
		t.Errorf("auditor sees the create-merchant form")
	}
	// A forged write (the auditor's own CSRF token, hand-made form) reaches
	// AdminService, which refuses it.
	code, body := auditor.post("/terminals/"+tid, "/terminals/"+tid+"/suspend", url.Values{"confirm": {"yes"}, "reason": {"forged"}})
	if code != http.StatusForbidden {
		t.Errorf("auditor's forged suspend: got %d, want 403\n%.1000s", code, body)
	}
	got, err := e.admin.GetTerminal(e.root(), &pb.GetTerminalRequest{TerminalId: tid})
	if err != nil || got.GetTerminal().GetState() == pb.TerminalState_TERMINAL_STATE_SUSPENDED {
		t.Fatalf("terminal after the forged suspend: %v, %v; want not suspended", got.GetTerminal().GetState(), err)
	}

	op := e.browser()
	op.login(e.token("ops", pb.Role_ROLE_OPERATOR))
	if _, p := op.get("/"); strings.Contains(p, `href="/tokens"`) {
		t.Errorf("operator sees the tokens page in the navigation")
	}
	if code, _ := op.get("/tokens"); code != http.StatusForbidden {
		t.Errorf("operator GET /tokens: got %d, want 403", code)
	}
	code, _ = op.post("/", "/tokens", url.Values{"name": {"mine"}, "role": {"ADMIN"}})
	if code != http.StatusForbidden {
		t.Errorf("operator creating a token: got %d, want 403", code)
	}
	// The operator may suspend, after confirming; audited as its token.
	code, body = op.post("/terminals/"+tid, "/terminals/"+tid+"/suspend", url.Values{"reason": {"lost"}})
	if code != http.StatusOK || !strings.Contains(body, "confirm-form") {
		t.Fatalf("suspend without confirmation: got %d, want the confirmation form", code)
	}
	if code, _ := op.post("/terminals/"+tid, "/terminals/"+tid+"/suspend", url.Values{"confirm": {"yes"}, "reason": {"lost"}}); code != http.StatusSeeOther {
		t.Fatalf("confirmed suspend: got %d, want 303", code)
	}
	evs, err := e.admin.ListAuditEvents(e.root(), &pb.ListAuditEventsRequest{Type: pb.AuditEventType_AUDIT_EVENT_TYPE_TERMINAL_SUSPENDED})
	if err != nil || len(evs.GetEvents()) != 1 || !strings.HasPrefix(evs.GetEvents()[0].GetActor(), "admin:") || evs.GetEvents()[0].GetActor() == "admin:bootstrap" {
		t.Fatalf("suspension audit: %v, %v; want one event by the operator's token", evs.GetEvents(), err)
	}
}

func TestValidationErrorNextToField(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login(rootToken)
	code, body := b.post("/merchants", "/merchants", url.Values{"merchant_id": {"M1"}, "legal_name": {"M1 Ltd"}, "mcc": {"5411"}, "currency": {"cny"}})
	if code != http.StatusBadRequest {
		t.Fatalf("create with a lower-case currency: got %d, want 400", code)
	}
	i := strings.Index(body, `name="currency"`)
	if i < 0 || !strings.Contains(body[i:min(len(body), i+400)], `class="ferr"`) {
		t.Errorf("no error shown next to the currency field\n%.3000s", body)
	}
}

func TestSettlementCSVMatchesReport(t *testing.T) {
	e := newEnv(t)
	e.merchant("M1", "Tea House", "S1")
	_, cred := e.registered("SN-1", "M1", "S1")
	e.pay(cred, "M1", "r-1", 1250, "tok_a")
	e.pay(cred, "M1", "r-2", 999, "tok_b")
	date := time.Now().In(mustZone(t, "Asia/Shanghai")).Format(time.DateOnly)
	rep, err := e.admin.GetSettlementReport(e.root(), &pb.GetSettlementReportRequest{MerchantId: "M1", BusinessDate: date})
	if err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.login(rootToken)
	code, body, h := b.do(http.MethodGet, "/settlement.csv?merchant=M1&date="+date, nil, nil)
	if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/csv") {
		t.Fatalf("CSV export: %d %s", code, h.Get("Content-Type"))
	}
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("CSV: %v\n%s", err, body)
	}
	last := rows[len(rows)-1]
	if len(rows) != 3 || last[5] != "TOTAL" {
		t.Fatalf("CSV rows %q: want a header, one batch and a TOTAL line", rows)
	}
	tot := rep.GetTotals()
	if last[6] != strconv.FormatUint(tot.GetSaleCount(), 10) || last[7] != "22.49" || tot.GetSaleAmount().GetMinorUnits() != 2249 || last[14] != "CNY" {
		t.Errorf("CSV total %q, report %v; want 2 sales of 22.49 CNY", last, tot)
	}
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestPublishRefusalShownNextToField(t *testing.T) {
	e := newEnv(t)
	e.merchant("M1", "Tea House", "S1")
	b := e.browser()
	b.login(rootToken)
	code, body := b.post("/config?merchant=M1", "/config", url.Values{"merchant": {"M1"}, "receipt_header": {"Hi"}, "stages": {"50,200"}})
	if code != http.StatusBadRequest {
		t.Fatalf("publish with a 200%% stage: got %d, want 400\n%.2000s", code, body)
	}
	i := strings.Index(body, `name="stages"`)
	if i < 0 || !strings.Contains(body[i:min(len(body), i+300)], `class="ferr"`) {
		t.Errorf("no error next to the stages field\n%.4000s", body)
	}
	if vs, err := e.admin.ListConfigVersions(e.root(), &pb.ListConfigVersionsRequest{Scope: &pb.ConfigScope{MerchantId: "M1"}}); err != nil || len(vs.GetVersions()) != 0 {
		t.Errorf("versions after a refused publish: %v, %v; want none", vs.GetVersions(), err)
	}
}

func TestTokensCreateAndRevokeEndsSessions(t *testing.T) {
	e := newEnv(t)
	admin := e.browser()
	admin.login(rootToken)
	code, body := admin.post("/tokens", "/tokens", url.Values{"name": {"night-desk"}, "role": {"AUDITOR"}, "ttl": {"24h"}})
	m := regexp.MustCompile(`id="new-token">([^<]+)<`).FindStringSubmatch(body)
	if code != http.StatusOK || m == nil {
		t.Fatalf("create token: %d, no secret shown\n%.2000s", code, body)
	}
	if _, again := admin.get("/tokens"); strings.Contains(again, m[1]) {
		t.Errorf("the secret is shown again on the token list")
	}
	desk := e.browser()
	desk.login(m[1])
	if code, _ := desk.get("/"); code != http.StatusOK {
		t.Fatalf("dashboard with the new token: %d", code)
	}
	toks, err := e.admin.ListAdminTokens(e.root(), &pb.ListAdminTokensRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var id string
	for _, tk := range toks.GetAdminTokens() {
		if tk.GetName() == "night-desk" {
			id = tk.GetTokenId()
		}
	}
	if code, _ := admin.post("/tokens", "/tokens/"+id+"/revoke", url.Values{}); code != http.StatusSeeOther {
		t.Fatalf("revoke: got %d, want 303", code)
	}
	// The revoked token's session ends at its next request.
	if code, _ := desk.get("/"); code != http.StatusSeeOther {
		t.Errorf("dashboard after the token was revoked: got %d, want a redirect to /login", code)
	}
	if code, _ := desk.get("/terminals"); code != http.StatusSeeOther {
		t.Errorf("session still alive after revocation: got %d", code)
	}
}

func TestFailedSignInsRateLimited(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	limited := 0
	for i := range 40 {
		code, _, _ := b.do(http.MethodPost, "/login", url.Values{"token": {"pfa_guess-" + strconv.Itoa(i) + "-0123456789"}}, map[string]string{"Origin": e.url})
		if code == http.StatusTooManyRequests {
			limited++
		} else if code != http.StatusUnauthorized {
			t.Fatalf("guess %d: got %d, want 401 or 429", i, code)
		}
	}
	if limited == 0 {
		t.Fatal("40 wrong tokens from one address: none rate limited")
	}
	evs, err := e.admin.ListAuditEvents(e.root(), &pb.ListAuditEventsRequest{Type: pb.AuditEventType_AUDIT_EVENT_TYPE_AUTH_FAILURE})
	if err != nil || len(evs.GetEvents()) == 0 || !strings.HasPrefix(evs.GetEvents()[0].GetPeer(), "127.0.0.1:") {
		t.Errorf("auth failures audited as %v, %v; want the browser's address as peer", evs.GetEvents(), err)
	}
}

func TestTerminalCommandAndRebind(t *testing.T) {
	e := newEnv(t)
	e.merchant("M1", "Tea House", "S1")
	e.merchant("M2", "Noodle Bar", "S9")
	tid, _ := e.registered("SN-1", "M1", "S1")
	b := e.browser()
	b.login(rootToken)
	page := "/terminals/" + tid
	if code, _ := b.post(page, page+"/command", url.Values{"type": {"REBOOT"}, "ttl": {"2h"}}); code != http.StatusSeeOther {
		t.Fatalf("send command: got %d, want 303", code)
	}
	cmds, err := e.admin.ListCommands(e.root(), &pb.ListCommandsRequest{TerminalId: tid})
	if err != nil || len(cmds.GetCommands()) != 1 || cmds.GetCommands()[0].GetType() != pb.CommandType_COMMAND_TYPE_REBOOT {
		t.Fatalf("commands after sending: %v, %v; want one REBOOT", cmds.GetCommands(), err)
	}
	if _, body := b.get(page); !strings.Contains(body, "REBOOT") || !strings.Contains(body, "PENDING") {
		t.Errorf("terminal page does not list the pending REBOOT")
	}
	// A rebind to a store that does not exist is refused next to the field.
	code, body := b.post(page, page+"/rebind", url.Values{"confirm": {"yes"}, "merchant_id": {"M2"}, "store_id": {"NOPE"}, "reason": {"moved"}})
	if code < 400 || !strings.Contains(body, `id="error"`) || !strings.Contains(body, "confirm-form") {
		t.Errorf("rebind to a missing store: got %d, want a refusal shown on the form", code)
	}
	if code, _ := b.post(page, page+"/rebind", url.Values{"confirm": {"yes"}, "merchant_id": {"M2"}, "store_id": {"S9"}, "reason": {"moved"}}); code != http.StatusSeeOther {
		t.Fatalf("rebind: got %d, want 303", code)
	}
	got, err := e.admin.GetTerminal(e.root(), &pb.GetTerminalRequest{TerminalId: tid})
	if err != nil || got.GetTerminal().GetMerchantId() != "M2" || got.GetTerminal().GetStoreId() != "S9" {
		t.Errorf("terminal after rebind: %v, %v; want M2/S9", got.GetTerminal(), err)
	}
}

func TestLanguageFromBrowserAndMerchantEdit(t *testing.T) {
	e := newEnv(t)
	e.merchant("M1", "Tea House", "S1")
	b := e.browser()
	b.login(rootToken)
	_, body, _ := b.do(http.MethodGet, "/merchants/M1", nil, map[string]string{"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
	if !strings.Contains(body, `lang="zh-CN"`) || !strings.Contains(body, "商户") {
		t.Errorf("Accept-Language zh-CN: page not in Chinese")
	}
	_, body, _ = b.do(http.MethodGet, "/merchants/M1", nil, map[string]string{"Accept-Language": "de-DE,fr;q=0.8"})
	if !strings.Contains(body, `lang="en"`) {
		t.Errorf("Accept-Language without a supported language: want English")
	}
	code, _ := b.post("/merchants/M1", "/merchants/M1", url.Values{"legal_name": {"M1 Ltd"}, "display_name": {"茶馆 Tea House"}, "mcc": {"5411"}, "currency": {"CNY"}})
	if code != http.StatusSeeOther {
		t.Fatalf("edit merchant: got %d, want 303", code)
	}
	m, err := e.admin.GetMerchant(e.root(), &pb.GetMerchantRequest{MerchantId: "M1"})
	if err != nil || m.GetMerchant().GetDisplayName() != "茶馆 Tea House" || m.GetMerchant().GetIdentityVersion() < 2 {
		t.Errorf("merchant after the edit: %v, %v; want the new display name and a bumped identity version", m.GetMerchant(), err)
	}
}
