package server_test

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

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

// ListAuditEvents with a time range returns exactly the events recorded
// within it, alone and with a type, newest first.
func TestListAuditEventsTimeRange(t *testing.T) {
	e := newFleetEnv(t)
	e.merchant("M1", "S1")
	e.provision("SN-A", "M1", "S1")
	time.Sleep(2 * time.Millisecond)
	from := time.Now()
	b := e.provision("SN-B", "M1", "S1")
	c := e.provision("SN-C", "M1", "S1")
	time.Sleep(2 * time.Millisecond)
	to := time.Now()
	time.Sleep(2 * time.Millisecond)
	e.provision("SN-D", "M1", "S1")
	for _, req := range []*pb.ListAuditEventsRequest{
		{StartTime: timestamppb.New(from), EndTime: timestamppb.New(to)},
		{StartTime: timestamppb.New(from), EndTime: timestamppb.New(to), Type: pb.AuditEventType_AUDIT_EVENT_TYPE_TERMINAL_PROVISIONED},
		{StartTime: timestamppb.New(from), EndTime: timestamppb.New(to), MerchantId: "M1", PageSize: 1},
	} {
		var got []string
		for token := ""; ; {
			req.PageToken = token
			resp, err := e.admin.ListAuditEvents(e.adminCtx(), req)
			if err != nil {
				t.Fatalf("%v: %v", req, err)
			}
			if resp.GetSearchedFrom() != nil {
				t.Errorf("%v: searched_from %v on a page that read everything", req, resp.GetSearchedFrom())
			}
			for _, ev := range resp.GetEvents() {
				got = append(got, ev.GetTerminalId())
			}
			if token = resp.GetNextPageToken(); token == "" {
				break
			}
		}
		if want := []string{c.GetTerminalId(), b.GetTerminalId()}; !slices.Equal(got, want) {
			t.Errorf("%v: got events of %v, want %v", req, got, want)
		}
	}
}
