package server_test

import (
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

func TestCaptureOverGRPC(t *testing.T) {
	e := newPayEnv(t)
	ctx := bearer(t.Context(), e.cred)
	pre := saleReq("p-1", 1000)
	pre.Capture = false
	hold := e.authorize(pre)
	nzd := func(n int64) *pb.Money { return &pb.Money{MinorUnits: n, Currency: "NZD"} }

	ob, err := e.pay.GetOpenBatch(ctx, &pb.GetOpenBatchRequest{})
	if err != nil || ob.GetBatchNumber() != 1 || ob.GetOpenTime() == nil ||
		ob.GetServerTotals().GetPreauthCount() != 1 || ob.GetServerTotals().GetSaleCount() != 0 {
		t.Fatalf("GetOpenBatch before capture: got %v, %v; want batch 1 holding one pre-auth", ob, err)
	}

	capReq := &pb.CaptureRequest{RequestId: "c-1", AuthorizationId: hold.GetAuthorizationId(), Amount: nzd(750)}
	got, err := e.pay.Capture(ctx, capReq)
	if err != nil || got.GetResponseCode() != "00" || got.GetDecision() != pb.Decision_DECISION_APPROVED ||
		got.GetAuthCode() != hold.GetAuthCode() || got.GetReleasedAmount().GetMinorUnits() != 250 ||
		got.GetBatchNumber() != 1 || got.GetCaptureId()[0] != 'C' || got.GetReplayed() || got.GetDecisionTime() == nil {
		t.Fatalf("Capture: got %v, %v; want 00 releasing 250 in batch 1", got, err)
	}
	again, err := e.pay.Capture(ctx, capReq)
	if err != nil || !again.GetReplayed() || again.GetCaptureId() != got.GetCaptureId() {
		t.Errorf("Capture replay: got %v, %v; want %s replayed", again, err, got.GetCaptureId())
	}
	if r, err := e.pay.Capture(ctx, &pb.CaptureRequest{RequestId: "c-2", AuthorizationId: hold.GetAuthorizationId(), Amount: nzd(1)}); err != nil || r.GetResponseCode() != "12" {
		t.Errorf("second capture: got %v, %v; want 12", r, err)
	}
	_, err = e.pay.Capture(ctx, &pb.CaptureRequest{RequestId: "c-3", Amount: nzd(1)})
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || firstViolationField(st) != "authorization_id" {
		t.Errorf("capture without authorization_id: got %v, want InvalidArgument on authorization_id", err)
	}

	ob, err = e.pay.GetOpenBatch(ctx, &pb.GetOpenBatchRequest{})
	if err != nil || ob.GetServerTotals().GetSaleAmount().GetMinorUnits() != 750 || ob.GetServerTotals().GetPreauthCount() != 0 {
		t.Fatalf("GetOpenBatch after capture: got %v, %v; want a 750 sale and no hold", ob, err)
	}
	closed, err := e.pay.CloseBatch(ctx, &pb.CloseBatchRequest{RequestId: "close-1", BatchNumber: ob.GetBatchNumber(),
		TerminalTotals: &pb.BatchTotals{SaleCount: 1, SaleAmount: nzd(750)}})
	if err != nil || !closed.GetInBalance() {
		t.Fatalf("CloseBatch: got %v, %v; want in balance", closed, err)
	}
	if ob, err := e.pay.GetOpenBatch(ctx, &pb.GetOpenBatchRequest{}); err != nil || ob.GetBatchNumber() != closed.GetNextBatchNumber() {
		t.Errorf("GetOpenBatch after close: got %v, %v; want batch %d", ob, err, closed.GetNextBatchNumber())
	}

	list, err := e.admin.ListTransactions(e.adminCtx(), &pb.ListTransactionsRequest{TerminalId: e.tid})
	if err != nil {
		t.Fatal(err)
	}
	var sawCapture, sawPreauth bool
	for _, tx := range list.GetTransactions() {
		switch tx.GetKind() {
		case pb.TransactionKind_TRANSACTION_KIND_CAPTURE:
			sawCapture = tx.GetOriginalTransactionId() == hold.GetAuthorizationId() && tx.GetTransactionId() == got.GetCaptureId()
		case pb.TransactionKind_TRANSACTION_KIND_PREAUTH:
			sawPreauth = tx.GetCapturedAmount().GetMinorUnits() == 750
		}
	}
	if !sawCapture || !sawPreauth {
		t.Errorf("ListTransactions: got %v, want the capture naming the pre-auth and the pre-auth captured 750", list.GetTransactions())
	}
}

// firstViolationField returns the field of the first BadRequest violation.
func firstViolationField(st *status.Status) string {
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			return br.GetFieldViolations()[0].GetField()
		}
	}
	return ""
}
