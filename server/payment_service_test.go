package server_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// payEnv is a running server with one registered terminal of merchant M1.
type payEnv struct {
	*fleetEnv
	tid, cred string
	pay       pb.PaymentServiceClient
}

func newPayEnv(t *testing.T) *payEnv {
	t.Helper()
	e := newFleetEnv(t)
	e.merchant("M1", "S1")
	tid, cred := e.registered("SN-PAY-1", "M1", "S1")
	return &payEnv{fleetEnv: e, tid: tid, cred: cred, pay: pb.NewPaymentServiceClient(e.conn)}
}

func saleReq(id string, amount int64) *pb.AuthorizeRequest {
	return &pb.AuthorizeRequest{
		RequestId:  id,
		MerchantId: "M1",
		Amount:     &pb.Money{MinorUnits: amount, Currency: "NZD"},
		Card:       &pb.Card{Token: "tok_" + id, MaskedPan: "411111******1111", EntryMode: pb.EntryMode_ENTRY_MODE_CONTACTLESS},
		LocalTime:  timestamppb.Now(),
		Capture:    true,
	}
}

func (e *payEnv) authorize(req *pb.AuthorizeRequest) *pb.AuthorizeResponse {
	e.t.Helper()
	resp, err := e.pay.Authorize(bearer(e.t.Context(), e.cred), req)
	if err != nil {
		e.t.Fatalf("Authorize %s: %v", req.GetRequestId(), err)
	}
	return resp
}

func TestAuthorizeOverGRPC(t *testing.T) {
	e := newPayEnv(t)
	ctx := bearer(t.Context(), e.cred)
	first := e.authorize(saleReq("r-1", 1250))
	if first.GetDecision() != pb.Decision_DECISION_APPROVED || first.GetResponseCode() != "00" || len(first.GetAuthCode()) != 6 ||
		first.GetBatchNumber() != 1 || first.GetReplayed() || first.GetAuthorizationId() == "" || first.GetDecisionTime() == nil {
		t.Fatalf("Authorize: got %v, want an approval in batch 1", first)
	}
	again := e.authorize(saleReq("r-1", 1250))
	if !again.GetReplayed() || again.GetAuthorizationId() != first.GetAuthorizationId() || again.GetAuthCode() != first.GetAuthCode() {
		t.Errorf("replay: got %v, want %v replayed", again, first)
	}
	if r := e.authorize(saleReq("r-1", 1251)); r.GetResponseCode() != "94" {
		t.Errorf("reused request ID: got %s, want 94", r.GetResponseCode())
	}
	decl := saleReq("r-2", 100)
	decl.Card.Token = "tok_test_nsf"
	if r := e.authorize(decl); r.GetDecision() != pb.Decision_DECISION_DECLINED || r.GetResponseCode() != "51" || r.GetMessage() == "" {
		t.Errorf("test card: got %v, want a 51 decline", r)
	}

	// Merchant-code jumping: declined with 03 and an alert in the audit trail.
	jump := saleReq("r-3", 100)
	jump.MerchantId = "M2"
	if r := e.authorize(jump); r.GetResponseCode() != "03" {
		t.Errorf("other merchant: got %s, want 03", r.GetResponseCode())
	}
	evs := e.auditEvents(pb.AuditEventType_AUDIT_EVENT_TYPE_MERCHANT_MISMATCH)
	if len(evs) != 1 || evs[0].GetTerminalId() != e.tid || evs[0].GetAttributes()["claimed_merchant_id"] != "M2" {
		t.Errorf("merchant-mismatch events: got %v, want one for %s claiming M2", evs, e.tid)
	}

	// Reverse, refund and close.
	rev, err := e.pay.Reverse(ctx, &pb.ReverseRequest{RequestId: "v-1", OriginalRequestId: "r-1", Reason: pb.ReversalReason_REVERSAL_REASON_CUSTOMER_CANCEL})
	if err != nil || rev.GetStatus() != pb.ReverseStatus_REVERSE_STATUS_REVERSED || rev.GetReversedAmount().GetMinorUnits() != 1250 {
		t.Fatalf("Reverse: got %v, %v; want REVERSED 1250", rev, err)
	}
	ghost, err := e.pay.Reverse(ctx, &pb.ReverseRequest{RequestId: "v-2", OriginalRequestId: "late", Reason: pb.ReversalReason_REVERSAL_REASON_TIMEOUT})
	if err != nil || ghost.GetStatus() != pb.ReverseStatus_REVERSE_STATUS_ORIGINAL_NOT_FOUND || ghost.GetReversedAmount() != nil {
		t.Fatalf("Reverse of an unknown original: got %v, %v", ghost, err)
	}
	if r := e.authorize(saleReq("late", 10)); r.GetResponseCode() != "12" {
		t.Errorf("original after its reversal: got %s, want 12", r.GetResponseCode())
	}
	s2 := e.authorize(saleReq("r-4", 2000))
	ref, err := e.pay.Refund(ctx, &pb.RefundRequest{RequestId: "f-1", AuthorizationId: s2.GetAuthorizationId(), Amount: &pb.Money{MinorUnits: 500, Currency: "NZD"}})
	if err != nil || ref.GetResponseCode() != "00" || ref.GetRemainingRefundable().GetMinorUnits() != 1500 || ref.GetRefundId() == "" {
		t.Fatalf("Refund: got %v, %v; want 00 with 1500 remaining", ref, err)
	}
	over, err := e.pay.Refund(ctx, &pb.RefundRequest{RequestId: "f-2", AuthorizationId: s2.GetAuthorizationId(), Amount: &pb.Money{MinorUnits: 1501, Currency: "NZD"}})
	if err != nil || over.GetResponseCode() != "13" {
		t.Errorf("refund beyond the capture: got %v, %v; want 13", over, err)
	}
	_, err = e.pay.CloseBatch(ctx, &pb.CloseBatchRequest{RequestId: "c-0", BatchNumber: 2, TerminalTotals: &pb.BatchTotals{}})
	if status.Code(err) != codes.FailedPrecondition || reason(err) != "BATCH_MISMATCH" {
		t.Errorf("close of the wrong batch: got %v, want FailedPrecondition BATCH_MISMATCH", err)
	}
	closed, err := e.pay.CloseBatch(ctx, &pb.CloseBatchRequest{RequestId: "c-1", BatchNumber: 1, TerminalTotals: &pb.BatchTotals{
		SaleCount: 1, SaleAmount: &pb.Money{MinorUnits: 2000, Currency: "NZD"},
		RefundCount: 1, RefundAmount: &pb.Money{MinorUnits: 500, Currency: "NZD"},
		ReversalCount: 1, ReversalAmount: &pb.Money{MinorUnits: 1250, Currency: "NZD"},
	}})
	if err != nil || !closed.GetInBalance() || closed.GetNextBatchNumber() != 2 || closed.GetServerTotals().GetSaleAmount().GetMinorUnits() != 2000 {
		t.Fatalf("CloseBatch: got %v, %v; want in balance, next batch 2", closed, err)
	}
	if _, err := e.pay.Reverse(ctx, &pb.ReverseRequest{RequestId: "c-1", OriginalRequestId: "x", Reason: pb.ReversalReason_REVERSAL_REASON_TIMEOUT}); status.Code(err) != codes.AlreadyExists || reason(err) != "REQUEST_ID_REUSED" {
		t.Errorf("reversal reusing a close's request ID: got %v, want AlreadyExists REQUEST_ID_REUSED", err)
	}

	// Operators see the ledger and the settlement.
	admin := e.adminCtx()
	list, err := e.admin.ListTransactions(admin, &pb.ListTransactionsRequest{TerminalId: e.tid, PageSize: 3})
	if err != nil || len(list.GetTransactions()) != 3 || list.GetNextPageToken() == "" {
		t.Fatalf("ListTransactions: got %v, %v; want a page of 3 and a next page", list, err)
	}
	for i, tx := range list.GetTransactions()[1:] {
		if prev := list.GetTransactions()[i]; tx.GetLedgerSequence() >= prev.GetLedgerSequence() || tx.GetLedgerSequence() == 0 {
			t.Errorf("ledger_sequence %d listed after %d, want newest first", tx.GetLedgerSequence(), prev.GetLedgerSequence())
		}
	}
	all, err := e.admin.ListTransactions(admin, &pb.ListTransactionsRequest{MerchantId: "M1", Decision: pb.Decision_DECISION_APPROVED})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []pb.TransactionKind
	for _, tx := range all.GetTransactions() {
		kinds = append(kinds, tx.GetKind())
		if tx.GetTransactionId() == first.GetAuthorizationId() && (!tx.GetReversed() || tx.GetReversalReason() != pb.ReversalReason_REVERSAL_REASON_CUSTOMER_CANCEL) {
			t.Errorf("reversed sale listed as %v", tx)
		}
		if tx.GetTransactionId() == s2.GetAuthorizationId() && tx.GetRefundedAmount().GetMinorUnits() != 500 {
			t.Errorf("refunded sale listed as %v", tx)
		}
	}
	if len(kinds) != 3 || !slices.Contains(kinds, pb.TransactionKind_TRANSACTION_KIND_REFUND) {
		t.Errorf("approved transactions of M1: got kinds %v, want two sales and a refund", kinds)
	}
	date := time.Now().In(mustZone(t, "Pacific/Auckland")).Format("2006-01-02")
	rep, err := e.admin.GetSettlementReport(admin, &pb.GetSettlementReportRequest{MerchantId: "M1", BusinessDate: date})
	if err != nil {
		t.Fatal(err)
	}
	if tot := rep.GetTotals(); tot.GetSaleAmount().GetMinorUnits() != 2000 || tot.GetRefundAmount().GetMinorUnits() != 500 ||
		tot.GetReversalAmount().GetMinorUnits() != 1250 || len(rep.GetBatches()) != 1 || rep.GetBatches()[0].GetState() != pb.BatchState_BATCH_STATE_CLOSED {
		t.Errorf("settlement of %s: got %v", date, rep)
	}
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Skipf("time zone data unavailable: %v", err)
	}
	return loc
}

func TestPaymentInputIsRejectedWithFieldViolations(t *testing.T) {
	e := newPayEnv(t)
	ctx := bearer(t.Context(), e.cred)
	tests := []struct {
		name   string
		req    func(r *pb.AuthorizeRequest)
		fields []string
	}{
		{"PAN as token", func(r *pb.AuthorizeRequest) { r.Card.Token = "4111111111111111" }, []string{"card.token"}},
		{"PAN inside a token", func(r *pb.AuthorizeRequest) { r.Card.Token = "tok_4111111111111111" }, []string{"card.token"}},
		{"unmasked masked PAN", func(r *pb.AuthorizeRequest) { r.Card.MaskedPan = "5500005555555559" }, []string{"card.masked_pan"}},
		{"PAN as request ID", func(r *pb.AuthorizeRequest) { r.RequestId = "4111111111111111" }, []string{"request_id"}},
		{"PAN inside a request ID", func(r *pb.AuthorizeRequest) {
			r.RequestId, r.Card.Token = "4111111111111111-1", "tok_1"
		}, []string{"request_id"}},
		{"grouped PAN as request ID", func(r *pb.AuthorizeRequest) {
			r.RequestId, r.Card.Token = "4111-1111-1111-1111", "tok_1"
		}, []string{"request_id"}},
		{"everything missing", func(r *pb.AuthorizeRequest) { *r = pb.AuthorizeRequest{} }, []string{"request_id", "merchant_id", "amount", "card"}},
		{"several card fields", func(r *pb.AuthorizeRequest) {
			r.Card = &pb.Card{Token: "tok 1", MaskedPan: "41**11", EntryMode: 0}
		}, []string{"card.token", "card.masked_pan", "card.entry_mode"}},
		// A card number is refused before anything else is looked at.
		{"card number with other faults", func(r *pb.AuthorizeRequest) {
			r.Card = &pb.Card{Token: "4111-1111-1111-1111", MaskedPan: "41**11", EntryMode: 0}
		}, []string{"card.token"}},
		{"bad currency", func(r *pb.AuthorizeRequest) { r.Amount.Currency = "nzd" }, []string{"amount.currency"}},
		// Kept as Unix nanoseconds, these were stored as times centuries off.
		{"local time after 2200", func(r *pb.AuthorizeRequest) {
			r.LocalTime = timestamppb.New(time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC))
		}, []string{"local_time"}},
		{"local time before 1970", func(r *pb.AuthorizeRequest) {
			r.LocalTime = timestamppb.New(time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC))
		}, []string{"local_time"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := saleReq("bad-1", 100)
			tt.req(req)
			_, err := e.pay.Authorize(ctx, req)
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("got %v, want InvalidArgument", err)
			}
			if got := violationFields(err); !slices.Equal(got, tt.fields) {
				t.Errorf("violations: got %v, want %v", got, tt.fields)
			}
			if msg := status.Convert(err).Message(); containsStr(msg, "4111111111111111") || containsStr(msg, "5500005555555559") {
				t.Errorf("error echoes the card number: %q", msg)
			}
		})
	}
	// Nothing reached the ledger.
	list, err := e.admin.ListTransactions(e.adminCtx(), &pb.ListTransactionsRequest{TerminalId: e.tid})
	if err != nil || len(list.GetTransactions()) != 0 {
		t.Errorf("ledger after bad input: got %v, %v; want empty", list, err)
	}
	_, err = e.pay.Reverse(ctx, &pb.ReverseRequest{RequestId: "x"})
	if got := violationFields(err); !slices.Equal(got, []string{"original_request_id", "reason"}) {
		t.Errorf("Reverse violations: got %v", got)
	}
	_, err = e.pay.Reverse(ctx, &pb.ReverseRequest{RequestId: "r-5500-0055-5555-5559", OriginalRequestId: "o-4111111111111111"})
	if got := violationFields(err); !slices.Equal(got, []string{"request_id", "original_request_id"}) {
		t.Errorf("Reverse violations with card numbers in request IDs: got %v", got)
	}
	_, err = e.pay.CloseBatch(ctx, &pb.CloseBatchRequest{RequestId: "x", BatchNumber: 1, TerminalTotals: &pb.BatchTotals{
		SaleAmount: &pb.Money{MinorUnits: -1, Currency: "NZD"}, RefundAmount: &pb.Money{Currency: "USD"},
	}})
	if got := violationFields(err); !slices.Equal(got, []string{"terminal_totals.sale_amount.minor_units", "terminal_totals.refund_amount.currency"}) {
		t.Errorf("CloseBatch violations: got %v", got)
	}
	_, err = e.admin.ListTransactions(e.adminCtx(), &pb.ListTransactionsRequest{BatchNumber: 3})
	if got := violationFields(err); !slices.Equal(got, []string{"batch_number"}) {
		t.Errorf("ListTransactions violations: got %v", got)
	}
	_, err = e.admin.GetSettlementReport(e.adminCtx(), &pb.GetSettlementReportRequest{MerchantId: "M1", BusinessDate: "2026-13-01"})
	if got := violationFields(err); !slices.Equal(got, []string{"business_date"}) {
		t.Errorf("GetSettlementReport violations: got %v (%v)", got, err)
	}
	// Admins cannot pay; terminals cannot read the ledger.
	if _, err := e.pay.Authorize(e.adminCtx(), saleReq("adm", 1)); status.Code(err) != codes.PermissionDenied {
		t.Errorf("Authorize with an admin token: got %v, want PermissionDenied", err)
	}
	if _, err := e.admin.ListTransactions(ctx, &pb.ListTransactionsRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("ListTransactions with a terminal credential: got %v, want PermissionDenied", err)
	}
}

// TestUUIDsThatLookLikeCardNumbersAreAccepted checks the whole path with
// random UUIDs whose all-digit segments pass as a card number printed in
// groups of four: refusing them refused about 1 in 2,700 of the request
// IDs the client SDK makes up, and 1 in 600 of its reversals' IDs.
func TestUUIDsThatLookLikeCardNumbersAreAccepted(t *testing.T) {
	e := newPayEnv(t)
	ctx := bearer(t.Context(), e.cred)
	req := saleReq("215b5a48-0955-4884-9833-3b561c09bea6", 100)
	req.Card.Token = "13da6b35-0586-4040-9914-3b19ae3afae3"
	if r := e.authorize(req); r.GetDecision() != pb.Decision_DECISION_APPROVED {
		t.Fatalf("Authorize: got %v, want approved", r)
	}
	rev, err := e.pay.Reverse(ctx, &pb.ReverseRequest{
		RequestId: "37caafc7-2496-4036-9519-8d298571b989", OriginalRequestId: req.GetRequestId(),
		Reason: pb.ReversalReason_REVERSAL_REASON_TIMEOUT,
	})
	if err != nil || rev.GetStatus() != pb.ReverseStatus_REVERSE_STATUS_REVERSED {
		t.Fatalf("Reverse: got %v, %v; want reversed", rev, err)
	}
	// A canonical UUID inside a longer ID is still an identifier.
	if r := e.authorize(saleReq("id:215b5a48-0955-4884-9833-3b561c09bea6:2", 100)); r.GetDecision() != pb.Decision_DECISION_APPROVED {
		t.Fatalf("Authorize with an embedded UUID: got %v, want approved", r)
	}
	// The same digits outside a canonical UUID are still refused.
	lookalike := saleReq("215b5a48_0955_4884_9833_3b561c09bea6", 100)
	lookalike.Card.Token = "13da6b35_0586_4040_9914_3b19ae3afae3"
	_, err = e.pay.Authorize(ctx, lookalike)
	if got := violationFields(err); !slices.Equal(got, []string{"request_id", "card.token"}) {
		t.Errorf("non-canonical lookalikes: got %v, want request_id and card.token violations", err)
	}
}

func TestPaymentPolicyFromFleetAndConfig(t *testing.T) {
	e := newPayEnv(t)
	// Limits come from the effective config.
	e.publish(&pb.PublishConfigRequest{Scope: &pb.ConfigScope{TerminalId: e.tid}, Settings: &pb.Settings{
		PerTransactionLimit: &pb.Money{MinorUnits: 5000, Currency: "NZD"},
		AcceptedEntryModes:  []pb.EntryMode{pb.EntryMode_ENTRY_MODE_CHIP, pb.EntryMode_ENTRY_MODE_CONTACTLESS},
		CardVelocityLimit:   proto.Uint32(1),
	}})
	if r := e.authorize(saleReq("big", 5001)); r.GetResponseCode() != "61" {
		t.Errorf("over the per-transaction limit: got %s, want 61", r.GetResponseCode())
	}
	swipe := saleReq("swipe", 100)
	swipe.Card.EntryMode = pb.EntryMode_ENTRY_MODE_SWIPE
	if r := e.authorize(swipe); r.GetResponseCode() != "12" {
		t.Errorf("entry mode not accepted: got %s, want 12", r.GetResponseCode())
	}
	a := saleReq("v-1", 100)
	a.Card.Token = "tok_same_card"
	b := saleReq("v-2", 100)
	b.Card.Token = "tok_same_card"
	if r1, r2 := e.authorize(a), e.authorize(b); r1.GetResponseCode() != "00" || r2.GetResponseCode() != "65" {
		t.Errorf("velocity: got %s then %s, want 00 then 65", r1.GetResponseCode(), r2.GetResponseCode())
	}
	// A limit in another currency than the merchant's would decline every
	// payment: it is refused at publish time.
	for _, s := range []*pb.Settings{
		{PerTransactionLimit: &pb.Money{MinorUnits: 1 << 40, Currency: "USD"}},
		{DailyLimit: &pb.Money{MinorUnits: 1 << 40, Currency: "USD"}},
	} {
		_, err := e.admin.PublishConfig(e.adminCtx(), &pb.PublishConfigRequest{Scope: &pb.ConfigScope{TerminalId: e.tid}, Settings: s})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("publish of a USD limit for an NZD merchant: %v, want InvalidArgument", err)
		}
	}
	if r := e.authorize(saleReq("after-usd", 1)); r.GetResponseCode() != "00" {
		t.Errorf("after the refused publishes: got %s, want 00", r.GetResponseCode())
	}
	e.publish(&pb.PublishConfigRequest{Scope: &pb.ConfigScope{TerminalId: e.tid}, Settings: &pb.Settings{
		DailyLimit: &pb.Money{MinorUnits: 1 << 40, Currency: "NZD"},
	}})
	if r := e.authorize(saleReq("nzd-daily", 1)); r.GetResponseCode() != "00" {
		t.Errorf("daily limit in the merchant's currency: got %s, want 00", r.GetResponseCode())
	}
	// Suspension comes from the fleet: 57, not an error.
	if _, err := e.admin.SuspendTerminal(e.adminCtx(), &pb.SuspendTerminalRequest{TerminalId: e.tid, Reason: "inspection"}); err != nil {
		t.Fatal(err)
	}
	if r := e.authorize(saleReq("susp", 100)); r.GetResponseCode() != "57" {
		t.Errorf("suspended terminal: got %s, want 57", r.GetResponseCode())
	}
}

func TestPaymentsSurviveRestart(t *testing.T) {
	e := newPayEnv(t)
	var approved []*pb.AuthorizeResponse
	for i := range 20 {
		approved = append(approved, e.authorize(saleReq(fmt.Sprint("p-", i), int64(100+i))))
	}
	if err := e.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	e2 := startFleetEnv(t, e.dir)
	pay := pb.NewPaymentServiceClient(e2.conn)
	for i, want := range approved {
		got, err := pay.Authorize(bearer(t.Context(), e.cred), saleReq(fmt.Sprint("p-", i), int64(100+i)))
		if err != nil || !got.GetReplayed() || got.GetAuthorizationId() != want.GetAuthorizationId() || got.GetAuthCode() != want.GetAuthCode() {
			t.Fatalf("after restart %d: got %v, %v; want %v replayed", i, got, err, want)
		}
	}
}

func TestSettlementReportOfQuietDayAndUnknownMerchant(t *testing.T) {
	e := newPayEnv(t)
	rep, err := e.admin.GetSettlementReport(e.adminCtx(), &pb.GetSettlementReportRequest{MerchantId: "M1", BusinessDate: "2020-01-01"})
	if err != nil {
		t.Fatal(err)
	}
	tot := rep.GetTotals()
	if tot.GetSaleCount() != 0 || tot.GetSaleAmount().GetMinorUnits() != 0 || tot.GetSaleAmount().GetCurrency() != "NZD" {
		t.Errorf("quiet day totals = %v, want zero sales in the merchant's currency NZD", tot)
	}
	_, err = e.admin.GetSettlementReport(e.adminCtx(), &pb.GetSettlementReportRequest{MerchantId: "NOSUCH"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("settlement of an unknown merchant: got %v, want NotFound", err)
	}
}

// A merchant's currency cannot change once it has payments: its batches
// and settlement reports would add two currencies into one total (a change
// to JPY after an NZD sale gave a report of 6000 "NZD" for 1000 NZD and
// 5000 JPY). Before its first payment it can.
func TestMerchantCurrencyIsFixedByItsFirstPayment(t *testing.T) {
	e := newPayEnv(t)
	update := func(currency string) error {
		_, err := e.admin.UpdateMerchant(e.adminCtx(), &pb.UpdateMerchantRequest{Merchant: &pb.Merchant{MerchantId: "M1", Currency: currency}})
		return err
	}
	if err := update("AUD"); err != nil {
		t.Fatalf("currency change before any payment: %v", err)
	}
	if err := update("NZD"); err != nil {
		t.Fatalf("currency change back before any payment: %v", err)
	}
	e.authorize(saleReq("first", 1000))
	if err := update("JPY"); status.Code(err) != codes.FailedPrecondition || reason(err) != "MERCHANT_HAS_PAYMENTS" {
		t.Fatalf("currency change after a payment: %v; want FailedPrecondition MERCHANT_HAS_PAYMENTS", err)
	}
	if err := update("NZD"); err != nil {
		t.Errorf("update to the same currency after a payment: %v", err)
	}
}
