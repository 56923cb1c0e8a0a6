package server_test

import (
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// ListTransactions filters by store and by response code, alone and with
// the other filters, and refuses bad values with their fields named.
func TestListTransactionsByStoreAndResponseCode(t *testing.T) {
	e := newPayEnv(t)
	e.store("M1", "S2")
	tid2, cred2 := e.registered("SN-PAY-2", "M1", "S2")
	pay := func(cred, id, token string) string {
		t.Helper()
		req := saleReq(id, 100)
		if token != "" {
			req.Card.Token = token
		}
		r, err := e.pay.Authorize(bearer(t.Context(), cred), req)
		if err != nil {
			t.Fatalf("Authorize %s: %v", id, err)
		}
		return r.GetAuthorizationId()
	}
	s1ok := pay(e.cred, "s1-ok", "")
	s1nsf := pay(e.cred, "s1-nsf", "tok_test_nsf")
	s2ok := pay(cred2, "s2-ok", "")
	s2nsf := pay(cred2, "s2-nsf", "tok_test_nsf")
	s2dnh := pay(cred2, "s2-dnh", "tok_test_decline")

	tests := []struct {
		name string
		req  *pb.ListTransactionsRequest
		want []string // newest first
	}{
		{"store S2", &pb.ListTransactionsRequest{MerchantId: "M1", StoreId: "S2"}, []string{s2dnh, s2nsf, s2ok}},
		{"store S1", &pb.ListTransactionsRequest{MerchantId: "M1", StoreId: "S1"}, []string{s1nsf, s1ok}},
		{"code 51", &pb.ListTransactionsRequest{ResponseCode: "51"}, []string{s2nsf, s1nsf}},
		{"code 00 in store S2", &pb.ListTransactionsRequest{MerchantId: "M1", StoreId: "S2", ResponseCode: "00"}, []string{s2ok}},
		{"store S2 declined", &pb.ListTransactionsRequest{MerchantId: "M1", StoreId: "S2", Decision: pb.Decision_DECISION_DECLINED}, []string{s2dnh, s2nsf}},
		{"code 05 of the S1 terminal", &pb.ListTransactionsRequest{TerminalId: e.tid, ResponseCode: "05"}, nil},
		{"code 05 of the S2 terminal", &pb.ListTransactionsRequest{TerminalId: tid2, ResponseCode: "05"}, []string{s2dnh}},
	}
	for _, tc := range tests {
		resp, err := e.admin.ListTransactions(e.adminCtx(), tc.req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var got []string
		for _, tx := range resp.GetTransactions() {
			got = append(got, tx.GetTransactionId())
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
		if resp.GetSearchedFrom() != nil {
			t.Errorf("%s: searched_from %v on a page that read everything", tc.name, resp.GetSearchedFrom())
		}
	}

	bad := []struct {
		req    *pb.ListTransactionsRequest
		fields []string
	}{
		{&pb.ListTransactionsRequest{StoreId: "S1"}, []string{"store_id"}},
		{&pb.ListTransactionsRequest{MerchantId: "M1", StoreId: "S/1"}, []string{"store_id"}},
		{&pb.ListTransactionsRequest{ResponseCode: "99"}, []string{"response_code"}},
		{&pb.ListTransactionsRequest{ResponseCode: "5", StoreId: "S 1"}, []string{"store_id", "store_id", "response_code"}},
	}
	for _, tc := range bad {
		_, err := e.admin.ListTransactions(e.adminCtx(), tc.req)
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("%v: got %v, want InvalidArgument", tc.req, err)
			continue
		}
		if got := violationFields(err); !slices.Equal(got, tc.fields) {
			t.Errorf("%v: violations got %v, want %v", tc.req, got, tc.fields)
		}
	}
}
