package server_test

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server"
)

// retryDelay returns the RetryInfo delay of err, or 0.
func retryDelay(err error) time.Duration {
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	return 0
}

// assertRateLimited fails unless err is ResourceExhausted RATE_LIMITED with
// a positive RetryInfo.
func assertRateLimited(t *testing.T, what string, err error) {
	t.Helper()
	if status.Code(err) != codes.ResourceExhausted || reason(err) != "RATE_LIMITED" || retryDelay(err) <= 0 {
		t.Fatalf("%s: %v (reason %q, retry %v), want ResourceExhausted RATE_LIMITED with a RetryInfo", what, err, reason(err), retryDelay(err))
	}
}

// A terminal rotating its credential in a loop used to add an audit event
// per call (47,289 in 10 s). Its credential quota stops it after the burst,
// with a RetryInfo, while another terminal behind the same address keeps
// working.
func TestRotateCredentialFloodIsBoundedPerCredential(t *testing.T) {
	e := newFleetEnv(t)
	e.merchant("MID1", "s1")
	_, cred := e.registered("SN-FLOOD", "MID1", "s1")
	_, other := e.registered("SN-OTHER", "MID1", "s1")
	rotated := 0
	var err error
	for range 200 {
		var resp *pb.RotateCredentialResponse
		resp, err = e.term.RotateCredential(bearer(t.Context(), cred), &pb.RotateCredentialRequest{})
		if err != nil {
			break
		}
		cred = resp.GetCredential()
		rotated++
	}
	assertRateLimited(t, "RotateCredential flood", err)
	if rotated > 5 {
		t.Errorf("rotations before the limit = %d, want at most the burst of 5", rotated)
	}
	issued := 0
	for _, ev := range e.auditEvents(pb.AuditEventType_AUDIT_EVENT_TYPE_CREDENTIAL_ROTATED) {
		if ev.GetAttributes()["stage"] == "issued" {
			issued++
		}
	}
	if issued != rotated {
		t.Errorf("rotations audited as issued = %d, want %d", issued, rotated)
	}
	t.Logf("RotateCredential flood: %d rotations (and audit events) before RATE_LIMITED, retry after %v", rotated, retryDelay(err))
	if _, err := e.term.RotateCredential(bearer(t.Context(), other), &pb.RotateCredentialRequest{}); err != nil {
		t.Errorf("another terminal's rotation during the flood: %v", err)
	}
	if _, err := e.term.Heartbeat(bearer(t.Context(), cred), &pb.HeartbeatRequest{Status: &pb.TerminalStatus{}}); err != nil {
		t.Errorf("the limited terminal's heartbeat (another class): %v", err)
	}
}

// A VerifyMerchant flood with a wrong merchant used to store one alert per
// call (129,165 in 20 s). The identity quota bounds the calls, and the
// alerts of one terminal and claimed merchant are coalesced into one event
// per window carrying the count.
func TestMerchantMismatchFloodIsCoalesced(t *testing.T) {
	e := newFleetEnv(t)
	e.merchant("MID1", "s1")
	e.merchant("MID2", "s1")
	_, cred := e.registered("SN-MM", "MID1", "s1")
	_, other := e.registered("SN-MM2", "MID1", "s1")
	const calls = 300
	var answered, limited int
	for range calls {
		resp, err := e.term.VerifyMerchant(bearer(t.Context(), cred), &pb.VerifyMerchantRequest{ClaimedMerchantId: "MID2"})
		switch {
		case err == nil && !resp.GetMatches():
			answered++
		case status.Code(err) == codes.ResourceExhausted:
			assertRateLimited(t, "VerifyMerchant flood", err)
			limited++
		default:
			t.Fatalf("VerifyMerchant: %v, matches %v", err, resp.GetMatches())
		}
	}
	if limited == 0 {
		t.Errorf("%d mismatching VerifyMerchant calls, none rate limited", calls)
	}
	evs := e.auditEvents(pb.AuditEventType_AUDIT_EVENT_TYPE_MERCHANT_MISMATCH)
	t.Logf("VerifyMerchant mismatch flood: %d calls, %d answered, %d rate limited, %d alert events", calls, answered, limited, len(evs))
	if len(evs) != 1 {
		t.Fatalf("mismatch events after %d answered calls = %d, want 1 per window", answered, len(evs))
	}
	// The other terminal's claim is a separate alert, not hidden by the
	// flood.
	if resp, err := e.term.VerifyMerchant(bearer(t.Context(), other), &pb.VerifyMerchantRequest{ClaimedMerchantId: "MID2"}); err != nil || resp.GetMatches() {
		t.Fatalf("other terminal's VerifyMerchant: %v, matches %v", err, resp.GetMatches())
	}
	if n := len(e.auditEvents(pb.AuditEventType_AUDIT_EVENT_TYPE_MERCHANT_MISMATCH)); n != 2 {
		t.Errorf("mismatch events after another terminal's claim = %d, want 2", n)
	}
}

// Terminals carrying 16 faults of 250 characters each made a ListTerminals
// page of 1,000 (what the SDK and the CLI ask for) exceed the 4 MiB response
// limit. Pages are cut by size as well: every page stays within
// MaxPageBytes (here 16 KiB) and paging still lists every terminal once.
func TestListPagesAreBoundedInBytes(t *testing.T) {
	cfg, e := pageBytesEnv(t, 16<<10)
	e.merchant("MID1", "s1")
	const terminals = 40
	faults := make([]*pb.Fault, 16)
	for i := range faults {
		faults[i] = &pb.Fault{Component: fmt.Sprintf("part%d", i), Code: "E1", Message: strings.Repeat("x", 250)}
	}
	for i := range terminals {
		_, cred := e.registered(fmt.Sprintf("SN-%d", i), "MID1", "s1")
		if _, err := e.term.Heartbeat(bearer(t.Context(), cred), &pb.HeartbeatRequest{Status: &pb.TerminalStatus{}, Faults: faults}); err != nil {
			t.Fatal(err)
		}
	}
	seen, pages := pageAllBounded(t, cfg.MaxPageBytes, func(token string) (proto.Message, []string, string, error) {
		resp, err := e.admin.ListTerminals(e.adminCtx(), &pb.ListTerminalsRequest{PageSize: 1000, PageToken: token})
		var ids []string
		for _, x := range resp.GetTerminals() {
			ids = append(ids, x.GetTerminalId())
		}
		return resp, ids, resp.GetNextPageToken(), err
	})
	t.Logf("ListTerminals of %d terminals with 16 faults of 250 characters: %d pages of at most %d bytes", terminals, pages, cfg.MaxPageBytes)
	if len(seen) != terminals || pages < 2 {
		t.Errorf("listed %d terminals in %d pages, want %d in several pages", len(seen), pages, terminals)
	}
}

// Floods of failing calls used to log a line each: 75 MB of log for a
// failed-authentication flood, 147,767 INFO lines for AckConfig REJECTED.
// Repeated lines are now sampled per kind (message, method, code) with a
// count of the suppressed ones, and a legitimate terminal keeps working
// meanwhile.
func TestFailureFloodsDoNotFloodTheLog(t *testing.T) {
	var logs strings.Builder
	var mu sync.Mutex
	cfg := server.DefaultConfig(t.TempDir())
	cfg.AdminToken = testAdminToken
	conn, _ := startServerLogging(t, cfg, slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelInfo})))
	e := &fleetEnv{t: t, conn: conn, admin: pb.NewAdminServiceClient(conn), term: pb.NewTerminalServiceClient(conn)}
	e.merchant("MID1", "s1")
	floodID, flood := e.registered("SN-FLOOD", "MID1", "s1")
	_, legit := e.registered("SN-LEGIT", "MID1", "s1")
	pub, err := e.admin.PublishConfig(e.adminCtx(), &pb.PublishConfigRequest{
		Scope: &pb.ConfigScope{TerminalId: floodID}, Settings: &pb.Settings{ReceiptHeader: proto.String("x")},
	})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	before := strings.Count(logs.String(), "\n")
	mu.Unlock()

	const calls = 1000
	for i := range calls {
		e.term.Heartbeat(bearer(t.Context(), "pft_wrong"), &pb.HeartbeatRequest{Status: &pb.TerminalStatus{}})
		e.term.AckConfig(bearer(t.Context(), flood), &pb.AckConfigRequest{
			Version: pub.GetVersion(), Result: pb.ConfigApplyResult_CONFIG_APPLY_RESULT_REJECTED, Detail: "bad",
		})
		if i%100 == 0 {
			if _, err := e.term.Heartbeat(bearer(t.Context(), legit), &pb.HeartbeatRequest{Status: &pb.TerminalStatus{}}); err != nil {
				t.Fatalf("legitimate heartbeat during the flood: %v", err)
			}
		}
	}
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	lines := strings.Count(out, "\n") - before
	if lines > 200 {
		t.Errorf("log lines for %d failing calls = %d, want at most 200", 2*calls, lines)
	}
	if !strings.Contains(out, "code=Unauthenticated") || !strings.Contains(out, "config rejected by terminal") {
		t.Errorf("the failures are not logged at all:\n%s", out)
	}
	if strings.Contains(out, "pft_wrong") {
		t.Error("the log contains the presented credential")
	}
	t.Logf("%d failing calls, %d log lines", 2*calls, lines)
}

// A terminal sending heartbeats with 32 faults in a loop stored 1.24 M
// fault records and took the server to 1.4 GB. Its heartbeat quota and
// fault budget bound both; the heap stays put and another terminal's
// heartbeats keep succeeding.
func TestHeartbeatFaultFloodIsBounded(t *testing.T) {
	e := newFleetEnv(t)
	e.merchant("MID1", "s1")
	_, flood := e.registered("SN-FLOOD", "MID1", "s1")
	_, legit := e.registered("SN-LEGIT", "MID1", "s1")
	faults := make([]*pb.Fault, 32)
	for i := range faults {
		faults[i] = &pb.Fault{Component: fmt.Sprintf("part%d", i), Code: "E1", Message: strings.Repeat("x", 250)}
	}
	heapBefore := heapInUse()
	const calls = 3000
	accepted := 0
	start := time.Now()
	for i := range calls {
		_, err := e.term.Heartbeat(bearer(t.Context(), flood), &pb.HeartbeatRequest{Status: &pb.TerminalStatus{}, Faults: faults})
		switch {
		case err == nil:
			accepted++
		case status.Code(err) != codes.ResourceExhausted:
			t.Fatalf("flooding heartbeat: %v", err)
		}
		if i%500 == 0 {
			if _, err := e.term.Heartbeat(bearer(t.Context(), legit), &pb.HeartbeatRequest{Status: &pb.TerminalStatus{}}); err != nil {
				t.Fatalf("legitimate heartbeat during the flood: %v", err)
			}
		}
	}
	rep, err := e.admin.GetFleetReport(e.adminCtx(), &pb.GetFleetReportRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var stored uint64
	for _, c := range rep.GetFaultsByComponent() {
		stored += c.GetCount()
	}
	grew := heapInUse() - heapBefore
	t.Logf("heartbeat flood: %d calls with 32 faults, %d accepted, %d faults counted, heap +%d KiB", calls, accepted, stored, grew>>10)
	if stored > 120 {
		t.Errorf("faults counted = %d, want at most the terminal's budget of 120", stored)
	}
	// The bucket refills while the flood runs, slowly under -race on a
	// busy machine: the bound is its burst plus what refilled meanwhile.
	q := server.DefaultQuotas().Heartbeat
	if limit := q.Burst + int(q.Rate*time.Since(start).Seconds()) + 1; accepted > limit {
		t.Errorf("heartbeats accepted = %d of %d, want at most the quota's burst and refill (%d)", accepted, calls, limit)
	}
	if grew > 16<<20 {
		t.Errorf("heap grew by %d MiB, want < 16 MiB", grew>>20)
	}
}

// pageBytesEnv starts a server whose list pages are cut at maxBytes.
func pageBytesEnv(t *testing.T, maxBytes int) (server.Config, *fleetEnv) {
	t.Helper()
	cfg := server.DefaultConfig(t.TempDir())
	cfg.AdminToken = testAdminToken
	cfg.MaxPageBytes = maxBytes
	conn, _ := startServer(t, cfg)
	return cfg, &fleetEnv{t: t, conn: conn, admin: pb.NewAdminServiceClient(conn), term: pb.NewTerminalServiceClient(conn)}
}

// pageAllBounded pages through a list with page size 1000 until the next
// token is empty, checking that every page stays within maxBytes (plus the
// response's own fields) and that no item is listed twice; it returns the
// items' IDs and the number of pages.
func pageAllBounded(t *testing.T, maxBytes int, page func(token string) (resp proto.Message, ids []string, next string, err error)) (map[string]bool, int) {
	t.Helper()
	seen := map[string]bool{}
	token := ""
	pages := 0
	for {
		resp, ids, next, err := page(token)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if size := proto.Size(resp); size > maxBytes+512 {
			t.Errorf("page %d is %d bytes, want about %d at most", pages, size, maxBytes)
		}
		for _, id := range ids {
			if seen[id] {
				t.Errorf("%s listed twice", id)
			}
			seen[id] = true
		}
		if token = next; token == "" {
			return seen, pages
		}
	}
}

// ListTransactions and ListRollouts pages are cut by size too, with the
// domain's next token, so paging still lists every item exactly once.
func TestPaymentAndRolloutPagesAreBoundedInBytes(t *testing.T) {
	cfg, fe := pageBytesEnv(t, 1<<10)
	conn := fe.conn
	fe.merchant("M1", "S1")
	tid, cred := fe.registered("SN-PAY-1", "M1", "S1")
	e := &payEnv{fleetEnv: fe, tid: tid, cred: cred, pay: pb.NewPaymentServiceClient(conn)}
	const txs, rollouts = 30, 30
	for i := range txs {
		e.authorize(saleReq(fmt.Sprintf("req-%d", i), int64(100+i)))
	}
	for i := range rollouts {
		e.publish(&pb.PublishConfigRequest{Settings: &pb.Settings{ReceiptHeader: proto.String(fmt.Sprintf("header %d %s", i, strings.Repeat("h", 100)))}})
	}
	seen, pages := pageAllBounded(t, cfg.MaxPageBytes, func(token string) (proto.Message, []string, string, error) {
		resp, err := e.admin.ListTransactions(e.adminCtx(), &pb.ListTransactionsRequest{PageSize: 1000, PageToken: token})
		var ids []string
		for _, x := range resp.GetTransactions() {
			ids = append(ids, x.GetTransactionId())
		}
		return resp, ids, resp.GetNextPageToken(), err
	})
	if len(seen) != txs || pages < 2 {
		t.Errorf("listed %d transactions in %d pages, want %d in several pages", len(seen), pages, txs)
	}
	seen, pages = pageAllBounded(t, cfg.MaxPageBytes, func(token string) (proto.Message, []string, string, error) {
		resp, err := e.admin.ListRollouts(e.adminCtx(), &pb.ListRolloutsRequest{PageSize: 1000, PageToken: token})
		var ids []string
		for _, x := range resp.GetRollouts() {
			ids = append(ids, x.GetRolloutId())
		}
		return resp, ids, resp.GetNextPageToken(), err
	})
	if len(seen) != rollouts || pages < 2 {
		t.Errorf("listed %d rollouts in %d pages, want %d in several pages", len(seen), pages, rollouts)
	}
}

// A settlement report of many batches failed once its response passed the
// send limit. Its batches are now paged, cut by size too, while the totals
// stay those of the whole date on every page; admin tokens are paged the
// same way. The SDK follows the tokens and returns everything.
func TestSettlementReportAndAdminTokenPagesAreBounded(t *testing.T) {
	cfg, fe := pageBytesEnv(t, 1<<10)
	conn := fe.conn
	fe.merchant("M1", "S1")
	const batches, tokens = 30, 30
	for i := range batches {
		tid, cred := fe.registered(fmt.Sprintf("SN-%d", i), "M1", "S1")
		e := &payEnv{fleetEnv: fe, tid: tid, cred: cred, pay: pb.NewPaymentServiceClient(conn)}
		e.authorize(saleReq(fmt.Sprintf("req-%d", i), 100))
	}
	for i := range tokens {
		if _, err := fe.admin.CreateAdminToken(fe.adminCtx(), &pb.CreateAdminTokenRequest{Name: fmt.Sprintf("token-%02d-%s", i, strings.Repeat("n", 50)), Role: pb.Role_ROLE_AUDITOR}); err != nil {
			t.Fatal(err)
		}
	}
	date := time.Now().In(mustZone(t, "Pacific/Auckland")).Format("2006-01-02")
	var totals *pb.BatchTotals
	seen, pages := pageAllBounded(t, cfg.MaxPageBytes, func(token string) (proto.Message, []string, string, error) {
		// No page_size, as an old client sends: a default page, and a
		// next token.
		resp, err := fe.admin.GetSettlementReport(fe.adminCtx(), &pb.GetSettlementReportRequest{MerchantId: "M1", BusinessDate: date, PageToken: token})
		if totals == nil {
			totals = resp.GetTotals()
		} else if !proto.Equal(resp.GetTotals(), totals) {
			t.Errorf("totals changed between pages: %v, then %v", totals, resp.GetTotals())
		}
		var ids []string
		for _, b := range resp.GetBatches() {
			ids = append(ids, fmt.Sprintf("%s#%d", b.GetTerminalId(), b.GetBatchNumber()))
		}
		return resp, ids, resp.GetNextPageToken(), err
	})
	if len(seen) != batches || pages < 2 {
		t.Errorf("reported %d batches in %d pages, want %d in several pages", len(seen), pages, batches)
	}
	if totals.GetSaleCount() != batches || totals.GetSaleAmount().GetMinorUnits() != 100*batches {
		t.Errorf("totals %v, want %d sales of 100", totals, batches)
	}
	seen, pages = pageAllBounded(t, cfg.MaxPageBytes, func(token string) (proto.Message, []string, string, error) {
		resp, err := fe.admin.ListAdminTokens(fe.adminCtx(), &pb.ListAdminTokensRequest{PageSize: 1000, PageToken: token})
		var ids []string
		for _, x := range resp.GetAdminTokens() {
			ids = append(ids, x.GetTokenId())
		}
		return resp, ids, resp.GetNextPageToken(), err
	})
	if len(seen) < tokens || pages < 2 {
		t.Errorf("listed %d admin tokens in %d pages, want at least %d in several pages", len(seen), pages, tokens)
	}
	if _, err := fe.admin.ListAdminTokens(fe.adminCtx(), &pb.ListAdminTokensRequest{PageToken: "nosuch"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("ListAdminTokens with an unknown page token: %v, want InvalidArgument", err)
	}
	c := fe.dial(testAdminToken)
	rep, err := c.SettlementReport(t.Context(), "M1", date)
	if err != nil || len(rep.GetBatches()) != batches || !proto.Equal(rep.GetTotals(), totals) || rep.GetNextPageToken() != "" {
		t.Errorf("SDK SettlementReport: %d batches, totals %v, %v; want %d batches, totals %v", len(rep.GetBatches()), rep.GetTotals(), err, batches, totals)
	}
	if toks, err := c.ListAdminTokens(t.Context()); err != nil || len(toks) != len(seen) {
		t.Errorf("SDK ListAdminTokens: %d tokens, %v; want %d", len(toks), err, len(seen))
	}
}
