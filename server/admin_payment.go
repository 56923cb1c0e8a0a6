package server

import (
	"context"
	"regexp"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/payment"
)

// reBusinessDate matches "YYYY-MM-DD" (the engine checks the calendar).
var reBusinessDate = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)

// ListTransactions lists payment transactions, newest first.
func (a *adminService) ListTransactions(ctx context.Context, req *pb.ListTransactionsRequest) (*pb.ListTransactionsResponse, error) {
	var v violations
	if id := req.GetTerminalId(); id != "" {
		v.terminalID("terminal_id", id)
	}
	if id := req.GetMerchantId(); id != "" {
		v.merchantID("merchant_id", id)
	}
	if req.GetBatchNumber() != 0 && req.GetTerminalId() == "" {
		v.add("batch_number", "requires terminal_id")
	}
	if id := req.GetStoreId(); id != "" {
		v.storeID("store_id", id)
		if req.GetMerchantId() == "" {
			v.add("store_id", "requires merchant_id")
		}
	}
	if c := req.GetResponseCode(); c != "" && !payment.IsResponseCode(c) {
		v.add("response_code", "must be a response code the server answers with, e.g. 51")
	}
	v.enum("decision", int32(req.GetDecision()), pb.Decision_name, true)
	start := v.timestamp("start_time", req.GetStartTime())
	end := v.timestamp("end_time", req.GetEndTime())
	if !start.IsZero() && !end.IsZero() && !end.After(start) {
		v.add("end_time", "must be after start_time")
	}
	size := v.pageSize("page_size", req.GetPageSize())
	if err := v.err(); err != nil {
		return nil, err
	}
	filter := payment.TxFilter{
		TerminalID:   req.GetTerminalId(),
		MerchantID:   req.GetMerchantId(),
		StoreID:      req.GetStoreId(),
		ResponseCode: req.GetResponseCode(),
		BatchNumber:  req.GetBatchNumber(),
		Decision:     payment.Decision(req.GetDecision()),
		Start:        start,
		End:          end,
	}
	var searched time.Time
	txs, next, err := boundedPage(a.s.cfg.MaxPageBytes, size, func(n int) ([]payment.Transaction, string, error) {
		p, err := a.s.eng.Payments().ListTransactionsPage(ctx, filter, n, req.GetPageToken())
		searched = p.SearchedFrom
		return p.Transactions, p.NextPageToken, err
	}, transactionToPB)
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
	}
	res := &pb.ListTransactionsResponse{NextPageToken: next, Transactions: txs}
	if !searched.IsZero() {
		res.SearchedFrom = timestamppb.New(searched)
	}
	return res, nil
}

// GetSettlementReport returns a merchant's settlement for a business date.
func (a *adminService) GetSettlementReport(ctx context.Context, req *pb.GetSettlementReportRequest) (*pb.GetSettlementReportResponse, error) {
	var v violations
	v.merchantID("merchant_id", req.GetMerchantId())
	if d := req.GetBusinessDate(); d != "" {
		v.match("business_date", d, reBusinessDate, "a date as YYYY-MM-DD")
	}
	n := v.pageSize("page_size", req.GetPageSize())
	v.optional("page_token", req.GetPageToken(), 64)
	if err := v.err(); err != nil {
		return nil, err
	}
	m, err := a.s.eng.Fleet.Merchant(req.GetMerchantId())
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
	}
	// The totals are over the whole date; only the batches are paged, and
	// cut by size like every list.
	var rep payment.Settlement
	batches, next, err := boundedPage(a.s.cfg.MaxPageBytes, n, func(n int) ([]payment.BatchSummary, string, error) {
		r, next, err := a.s.eng.Payments().SettlementReportPage(ctx, req.GetMerchantId(), req.GetBusinessDate(), n, req.GetPageToken())
		rep = r
		return r.Batches, next, err
	}, batchSummaryToPB)
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
	}
	if rep.Totals.Currency == "" {
		// A date without transactions still reports zero totals in the
		// merchant's settlement currency.
		rep.Totals.Currency = m.Currency
	}
	return &pb.GetSettlementReportResponse{
		MerchantId:    rep.MerchantID,
		BusinessDate:  rep.BusinessDate,
		Totals:        totalsToPB(rep.Totals),
		GenerateTime:  timestamppb.New(rep.GenerateTime),
		Batches:       batches,
		NextPageToken: next,
	}, nil
}
