package server_test

import (
	"testing"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// TestRefundScopeFollowsMerchantPolicy checks that a terminal cannot refund
// another terminal's sale until the merchant allows refunds across its
// terminals, that the change is audited, and that it survives a restart.
func TestRefundScopeFollowsMerchantPolicy(t *testing.T) {
	e := newPayEnv(t)
	_, cred2 := e.registered("SN-PAY-2", "M1", "S1")
	refund := func(pay pb.PaymentServiceClient, cred, id, authID string) string {
		t.Helper()
		r, err := pay.Refund(bearer(t.Context(), cred), &pb.RefundRequest{
			RequestId: id, AuthorizationId: authID, Amount: &pb.Money{MinorUnits: 100, Currency: "NZD"},
		})
		if err != nil {
			t.Fatalf("Refund %s: %v", id, err)
		}
		return r.GetResponseCode()
	}
	sale := e.authorize(saleReq("s-1", 1000)).GetAuthorizationId()
	if code := refund(e.pay, cred2, "r-1", sale); code != "57" {
		t.Errorf("refund of another terminal's sale by default: got %s, want 57", code)
	}
	if code := refund(e.pay, e.cred, "r-2", sale); code != "00" {
		t.Errorf("refund at the terminal that took the sale: got %s, want 00", code)
	}

	up, err := e.admin.UpdateMerchant(e.adminCtx(), &pb.UpdateMerchantRequest{
		Merchant:   &pb.Merchant{MerchantId: "M1", AllowCrossTerminalRefunds: true},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"allow_cross_terminal_refunds"}},
	})
	if err != nil || !up.GetMerchant().GetAllowCrossTerminalRefunds() {
		t.Fatalf("UpdateMerchant: got %v, %v; want allow_cross_terminal_refunds", up, err)
	}
	audited := false
	for _, ev := range e.auditEvents(pb.AuditEventType_AUDIT_EVENT_TYPE_MERCHANT_UPDATED) {
		if ev.GetMerchantId() == "M1" && ev.GetAttributes()["allow_cross_terminal_refunds"] == "true" {
			audited = true
		}
	}
	if !audited {
		t.Error("enabling cross-terminal refunds left no audit event saying so")
	}
	if code := refund(e.pay, cred2, "r-3", sale); code != "00" {
		t.Errorf("refund of another terminal's sale once allowed: got %s, want 00", code)
	}

	if err := e.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	e2 := startFleetEnv(t, e.dir)
	pay := pb.NewPaymentServiceClient(e2.conn)
	m, err := e2.admin.GetMerchant(e2.adminCtx(), &pb.GetMerchantRequest{MerchantId: "M1"})
	if err != nil || !m.GetMerchant().GetAllowCrossTerminalRefunds() {
		t.Fatalf("GetMerchant after restart: got %v, %v; want allow_cross_terminal_refunds", m, err)
	}
	if code := refund(pay, cred2, "r-4", sale); code != "00" {
		t.Errorf("cross-terminal refund after restart: got %s, want 00", code)
	}

	// Turning it off again needs the mask, and takes effect at once.
	if _, err := e2.admin.UpdateMerchant(e2.adminCtx(), &pb.UpdateMerchantRequest{
		Merchant:   &pb.Merchant{MerchantId: "M1"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"allow_cross_terminal_refunds"}},
	}); err != nil {
		t.Fatal(err)
	}
	if code := refund(pay, cred2, "r-5", sale); code != "57" {
		t.Errorf("cross-terminal refund after turning it off: got %s, want 57", code)
	}
}
