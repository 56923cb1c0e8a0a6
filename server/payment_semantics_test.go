package server_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// payCall is one PaymentService call by a terminal, reduced to what the
// documented semantics are about: its response code ("" when the response
// has none) or its error.
type payCall func(ctx context.Context, pay pb.PaymentServiceClient) (code string, err error)

func nzd(n int64) *pb.Money { return &pb.Money{MinorUnits: n, Currency: "NZD"} }

func authorizeCall(req *pb.AuthorizeRequest) payCall {
	return func(ctx context.Context, pay pb.PaymentServiceClient) (string, error) {
		r, err := pay.Authorize(ctx, req)
		return r.GetResponseCode(), err
	}
}

func refundCall(id, authID string, amount int64) payCall {
	return func(ctx context.Context, pay pb.PaymentServiceClient) (string, error) {
		r, err := pay.Refund(ctx, &pb.RefundRequest{RequestId: id, AuthorizationId: authID, Amount: nzd(amount)})
		return r.GetResponseCode(), err
	}
}

func captureCall(id, authID string, amount int64) payCall {
	return func(ctx context.Context, pay pb.PaymentServiceClient) (string, error) {
		r, err := pay.Capture(ctx, &pb.CaptureRequest{RequestId: id, AuthorizationId: authID, Amount: nzd(amount)})
		return r.GetResponseCode(), err
	}
}

func reverseCall(id, original string) payCall {
	return func(ctx context.Context, pay pb.PaymentServiceClient) (string, error) {
		_, err := pay.Reverse(ctx, &pb.ReverseRequest{RequestId: id, OriginalRequestId: original, Reason: pb.ReversalReason_REVERSAL_REASON_TIMEOUT})
		return "", err
	}
}

func closeCall(id string, batch uint64, sales uint64) payCall {
	return func(ctx context.Context, pay pb.PaymentServiceClient) (string, error) {
		_, err := pay.CloseBatch(ctx, &pb.CloseBatchRequest{RequestId: id, BatchNumber: batch, TerminalTotals: &pb.BatchTotals{SaleCount: sales}})
		return "", err
	}
}

func openBatchCall(ctx context.Context, pay pb.PaymentServiceClient) (string, error) {
	_, err := pay.GetOpenBatch(ctx, &pb.GetOpenBatchRequest{})
	return "", err
}

// newPayEnvWithSaleAndPreauth is newPayEnv with an approved sale
// (request_id "sale", 1000) and pre-auth ("pre", 500).
func newPayEnvWithSaleAndPreauth(t *testing.T) (e *payEnv, sale, preauth *pb.AuthorizeResponse) {
	t.Helper()
	e = newPayEnv(t)
	sale = e.authorize(saleReq("sale", 1000))
	pre := saleReq("pre", 500)
	pre.Capture = false
	return e, sale, e.authorize(pre)
}

// TestRequestIDConflicts pins the rule written in payment.proto: a reused
// request_id with different content gets 94 from the RPCs that answer with
// a response code and ALREADY_EXISTS / REQUEST_ID_REUSED from the others;
// either way the first answer stands and is still replayed.
func TestRequestIDConflicts(t *testing.T) {
	e, s, p := newPayEnvWithSaleAndPreauth(t)
	ctx := bearer(t.Context(), e.cred)

	tests := []struct {
		name          string
		first, second payCall
		wantCode      string
		wantErr       codes.Code
	}{
		{"Authorize", authorizeCall(saleReq("a", 10)), authorizeCall(saleReq("a", 11)), "94", codes.OK},
		{"Refund", refundCall("f", s.GetAuthorizationId(), 10), refundCall("f", s.GetAuthorizationId(), 11), "94", codes.OK},
		{"Capture", captureCall("c", p.GetAuthorizationId(), 100), captureCall("c", p.GetAuthorizationId(), 101), "94", codes.OK},
		{"Reverse", reverseCall("v", "gone-1"), reverseCall("v", "gone-2"), "", codes.AlreadyExists},
		{"CloseBatch", closeCall("b", 1, 2), closeCall("b", 1, 3), "", codes.AlreadyExists},
		{"Authorize under a Reverse's ID", reverseCall("x", "gone-3"), authorizeCall(saleReq("x", 10)), "94", codes.OK},
		{"Reverse under an Authorize's ID", authorizeCall(saleReq("y", 10)), reverseCall("y", "gone-4"), "", codes.AlreadyExists},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			firstCode, err := tc.first(ctx, e.pay)
			if err != nil {
				t.Fatalf("first request: %v", err)
			}
			code, err := tc.second(ctx, e.pay)
			if status.Code(err) != tc.wantErr || code != tc.wantCode {
				t.Fatalf("reused request_id: got code %q, error %v; want code %q, %v", code, err, tc.wantCode, tc.wantErr)
			}
			if tc.wantErr == codes.AlreadyExists && reason(err) != "REQUEST_ID_REUSED" {
				t.Errorf("reused request_id: got reason %q, want REQUEST_ID_REUSED", reason(err))
			}
			again, err := tc.first(ctx, e.pay)
			if err != nil || again != firstCode {
				t.Errorf("first request again: got %q, %v; want its first answer %q", again, err, firstCode)
			}
		})
	}
}

// TestSuspendedAndRetiredTerminals pins the rule written in payment.proto:
// a suspended terminal's new money is declined with 57 while it can still
// reverse, read and close its batch; a retired terminal is refused.
func TestSuspendedAndRetiredTerminals(t *testing.T) {
	e, s, p := newPayEnvWithSaleAndPreauth(t)
	ctx := bearer(t.Context(), e.cred)
	e.authorize(saleReq("to-reverse", 300))
	if _, err := e.admin.SuspendTerminal(e.adminCtx(), &pb.SuspendTerminalRequest{TerminalId: e.tid, Reason: "inspection"}); err != nil {
		t.Fatal(err)
	}
	calls := []struct {
		name string
		call payCall
		want string
	}{
		{"Authorize", authorizeCall(saleReq("s-a", 10)), "57"},
		{"Refund", refundCall("s-f", s.GetAuthorizationId(), 10), "57"},
		{"Capture", captureCall("s-c", p.GetAuthorizationId(), 100), "57"},
		{"Reverse", reverseCall("s-v", "to-reverse"), ""},
		{"GetOpenBatch", openBatchCall, ""},
		{"CloseBatch", closeCall("s-b", 1, 1), ""},
	}
	for _, c := range calls {
		if code, err := c.call(ctx, e.pay); err != nil || code != c.want {
			t.Errorf("suspended %s: got code %q, error %v; want code %q and no error", c.name, code, err, c.want)
		}
	}

	if _, err := e.admin.RetireTerminal(e.adminCtx(), &pb.RetireTerminalRequest{TerminalId: e.tid, Reason: "stolen"}); err != nil {
		t.Fatal(err)
	}
	calls = append(calls, struct {
		name string
		call payCall
		want string
	}{"replay of an earlier Authorize", authorizeCall(saleReq("sale", 1000)), ""})
	for _, c := range calls {
		if _, err := c.call(ctx, e.pay); status.Code(err) != codes.PermissionDenied || reason(err) != "TERMINAL_RETIRED" {
			t.Errorf("retired %s: got %v, want PermissionDenied TERMINAL_RETIRED", c.name, err)
		}
	}
}
