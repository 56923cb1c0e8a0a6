package server

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/payment"
)

// paymentService implements pb.PaymentServiceServer for terminals.
type paymentService struct {
	pb.UnimplementedPaymentServiceServer
	s *Server
}

// Authorize authorizes a card payment for the calling terminal.
func (p *paymentService) Authorize(ctx context.Context, req *pb.AuthorizeRequest) (*pb.AuthorizeResponse, error) {
	pr, err := terminalPrincipal(ctx)
	if err != nil {
		return nil, err
	}
	var v violations
	v.requestID("request_id", req.GetRequestId())
	v.merchantID("merchant_id", req.GetMerchantId())
	amount := v.money("amount", req.GetAmount())
	card := v.card("card", req.GetCard())
	local := v.timestamp("local_time", req.GetLocalTime())
	if err := v.err(); err != nil {
		return nil, err
	}
	start := time.Now()
	res, err := p.s.eng.Payments().Authorize(ctx, payment.AuthorizeRequest{
		TerminalID: pr.TerminalID,
		RequestID:  req.GetRequestId(),
		MerchantID: req.GetMerchantId(),
		Amount:     amount,
		Card:       card,
		LocalTime:  local,
		Capture:    req.GetCapture(),
	})
	p.s.eng.signals.record(pr.TerminalID, res, err, time.Since(start))
	p.s.metrics.authorized(amount, res, err)
	if err != nil {
		return nil, p.s.toStatus(ctx, err)
	}
	return &pb.AuthorizeResponse{
		AuthorizationId: res.AuthorizationID,
		Decision:        pb.Decision(res.Decision),
		ResponseCode:    res.ResponseCode,
		AuthCode:        res.AuthCode,
		Message:         res.Message,
		BatchNumber:     res.BatchNumber,
		Replayed:        res.Replayed,
		DecisionTime:    timestamppb.New(res.DecisionTime),
	}, nil
}

// Reverse cancels an authorization of the calling terminal.
func (p *paymentService) Reverse(ctx context.Context, req *pb.ReverseRequest) (*pb.ReverseResponse, error) {
	pr, err := terminalPrincipal(ctx)
	if err != nil {
		return nil, err
	}
	var v violations
	v.requestID("request_id", req.GetRequestId())
	v.requestID("original_request_id", req.GetOriginalRequestId())
	v.enum("reason", int32(req.GetReason()), pb.ReversalReason_name, false)
	if err := v.err(); err != nil {
		return nil, err
	}
	res, err := p.s.eng.Payments().Reverse(ctx, payment.ReverseRequest{
		TerminalID:        pr.TerminalID,
		RequestID:         req.GetRequestId(),
		OriginalRequestID: req.GetOriginalRequestId(),
		Reason:            payment.ReversalReason(req.GetReason()),
	})
	if err != nil {
		return nil, p.s.toStatus(ctx, err)
	}
	out := &pb.ReverseResponse{
		Status:          pb.ReverseStatus(res.Status),
		AuthorizationId: res.AuthorizationID,
		Replayed:        res.Replayed,
	}
	if res.Status == payment.ReverseStatusReversed {
		out.ReversedAmount = paymentMoneyToPB(res.ReversedAmount.MinorUnits, res.ReversedAmount.Currency)
	}
	return out, nil
}

// Refund refunds part or all of an approved sale of the terminal's merchant.
func (p *paymentService) Refund(ctx context.Context, req *pb.RefundRequest) (*pb.RefundResponse, error) {
	pr, err := terminalPrincipal(ctx)
	if err != nil {
		return nil, err
	}
	var v violations
	amount := v.followUp(req.GetRequestId(), req.GetAuthorizationId(), req.GetAmount())
	if err := v.err(); err != nil {
		return nil, err
	}
	res, err := p.s.eng.Payments().Refund(ctx, payment.RefundRequest{
		TerminalID:      pr.TerminalID,
		RequestID:       req.GetRequestId(),
		AuthorizationID: req.GetAuthorizationId(),
		Amount:          amount,
	})
	if err != nil {
		return nil, p.s.toStatus(ctx, err)
	}
	out := &pb.RefundResponse{
		RefundId:     res.RefundID,
		Decision:     pb.Decision(res.Decision),
		ResponseCode: res.ResponseCode,
		Message:      res.Message,
		BatchNumber:  res.BatchNumber,
		Replayed:     res.Replayed,
	}
	if r := res.RemainingRefundable; r.Currency != "" {
		out.RemainingRefundable = paymentMoneyToPB(r.MinorUnits, r.Currency)
	}
	return out, nil
}

// CloseBatch closes the calling terminal's open batch.
func (p *paymentService) CloseBatch(ctx context.Context, req *pb.CloseBatchRequest) (*pb.CloseBatchResponse, error) {
	pr, err := terminalPrincipal(ctx)
	if err != nil {
		return nil, err
	}
	var v violations
	v.requestID("request_id", req.GetRequestId())
	if req.GetBatchNumber() == 0 {
		v.add("batch_number", "is required (batches are numbered from 1)")
	}
	totals := v.totals("terminal_totals", req.GetTerminalTotals())
	if err := v.err(); err != nil {
		return nil, err
	}
	res, err := p.s.eng.Payments().CloseBatch(ctx, payment.CloseBatchRequest{
		TerminalID:     pr.TerminalID,
		RequestID:      req.GetRequestId(),
		BatchNumber:    req.GetBatchNumber(),
		TerminalTotals: totals,
	})
	if err != nil {
		return nil, p.s.toStatus(ctx, err)
	}
	return &pb.CloseBatchResponse{
		BatchNumber:     res.BatchNumber,
		ServerTotals:    totalsToPB(res.ServerTotals),
		InBalance:       res.InBalance,
		NextBatchNumber: res.NextBatchNumber,
		CloseTime:       timestamppb.New(res.CloseTime),
		Replayed:        res.Replayed,
	}, nil
}
