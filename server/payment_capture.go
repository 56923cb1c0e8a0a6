package server

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/payment"
)

// Capture completes a pre-auth of the calling terminal.
func (p *paymentService) Capture(ctx context.Context, req *pb.CaptureRequest) (*pb.CaptureResponse, error) {
	pr, err := terminalPrincipal(ctx)
	if err != nil {
		return nil, err
	}
	var v violations
	amount := v.followUp(req.GetRequestId(), req.GetAuthorizationId(), req.GetAmount())
	if err := v.err(); err != nil {
		return nil, err
	}
	res, err := p.s.eng.Payments().Capture(ctx, payment.CaptureRequest{
		TerminalID:      pr.TerminalID,
		RequestID:       req.GetRequestId(),
		AuthorizationID: req.GetAuthorizationId(),
		Amount:          amount,
	})
	if err != nil {
		return nil, p.s.toStatus(ctx, err)
	}
	out := &pb.CaptureResponse{
		CaptureId:    res.CaptureID,
		Decision:     pb.Decision(res.Decision),
		ResponseCode: res.ResponseCode,
		AuthCode:     res.AuthCode,
		Message:      res.Message,
		BatchNumber:  res.BatchNumber,
		Replayed:     res.Replayed,
		DecisionTime: timestamppb.New(res.DecisionTime),
	}
	if r := res.ReleasedAmount; r.Currency != "" {
		out.ReleasedAmount = paymentMoneyToPB(r.MinorUnits, r.Currency)
	}
	return out, nil
}

// followUp checks the fields of a request that names an earlier
// authorization with an amount (Refund, Capture) and returns the amount.
func (v *violations) followUp(requestID, authorizationID string, amount *pb.Money) payment.Money {
	v.requestID("request_id", requestID)
	if v.required("authorization_id", authorizationID) {
		v.match("authorization_id", authorizationID, transactionIDFormat, "an authorization_id returned by Authorize")
	}
	return v.money("amount", amount)
}

// GetOpenBatch returns the calling terminal's open batch.
func (p *paymentService) GetOpenBatch(ctx context.Context, _ *pb.GetOpenBatchRequest) (*pb.GetOpenBatchResponse, error) {
	pr, err := terminalPrincipal(ctx)
	if err != nil {
		return nil, err
	}
	b, err := p.s.eng.Payments().OpenBatch(ctx, pr.TerminalID)
	if err != nil {
		return nil, p.s.toStatus(ctx, err)
	}
	return &pb.GetOpenBatchResponse{
		BatchNumber:  b.Number,
		OpenTime:     timestamppb.New(b.OpenTime),
		ServerTotals: totalsToPB(b.ServerTotals),
	}, nil
}
