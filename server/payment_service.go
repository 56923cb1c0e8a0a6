package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/pan"
	"github.com/posfleet/posfleet/server/payment"
)

// paymentService implements pb.PaymentServiceServer for terminals.
type paymentService struct {
	pb.UnimplementedPaymentServiceServer
	s *Server
}

func init() {
	errorTable = append(errorTable,
		errorMapping{payment.ErrUnavailable, codes.Unavailable, "PAYMENTS_UNAVAILABLE"},
		errorMapping{payment.ErrClosed, codes.Unavailable, "SHUTTING_DOWN"},
		errorMapping{payment.ErrRequestIDReused, codes.AlreadyExists, "REQUEST_ID_REUSED"},
		errorMapping{payment.ErrBatchMismatch, codes.FailedPrecondition, "BATCH_MISMATCH"},
		errorMapping{payment.ErrBadPageToken, codes.InvalidArgument, "INVALID_PAGE_TOKEN"},
	)
}

// openPayments starts the payment engine on the fleet and config push.
func (s *Server) openPayments() error {
	dir := &paymentDirectory{fleet: s.fleet, config: s.config, logger: s.logger.With("component", "payment")}
	var err error
	opts := payment.DefaultOptions()
	opts.OnCommit = s.metrics.committed
	s.payments, err = payment.Open(context.Background(), s.db, dir, s.audit, opts,
		s.logger.With("component", "payment"))
	if err != nil {
		return fmt.Errorf("server: open payments: %w", err)
	}
	s.closers = append(s.closers, s.payments.Close)
	s.hooks.paymentStats = s.payments.Stats
	return nil
}

// paymentStatus converts a payment engine error into a status: field checks
// become InvalidArgument with a BadRequest; a failed engine also turns the
// payment service's health NOT_SERVING; the rest go through the error table.
func (s *Server) paymentStatus(ctx context.Context, err error) error {
	var ve *payment.ValidationError
	if errors.As(err, &ve) {
		var v violations
		v.add(ve.Field, "%s", ve.Reason)
		return v.err()
	}
	if errors.Is(err, payment.ErrUnavailable) && s.health != nil {
		s.health.SetServingStatus(pb.PaymentService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	return s.fleetStatus(ctx, err)
}

// reTransactionID matches authorization and refund IDs.
var reTransactionID = newCharFormat("A-Za-z0-9", 1, 64)

// requestID checks a required idempotency key.
func (v *violations) requestID(field, id string) {
	if v.required(field, id) && v.match(field, id, reRequestID, "1-64 letters, digits, '-', '_', '.' or ':'") &&
		pan.Contains(id) {
		v.add(field, "%s", pan.Reason)
	}
}

// money checks a required amount and returns it; the amount's sign is the
// engine's business (a decline with 13), its currency code is input format.
func (v *violations) money(field string, m *pb.Money) payment.Money {
	if m == nil {
		v.add(field, "is required")
		return payment.Money{}
	}
	// The field name is built only for a violation: this runs on every
	// payment.
	switch cur := m.GetCurrency(); {
	case cur == "":
		v.add(field+".currency", "is required")
	case !reCurrency.MatchString(cur):
		v.add(field+".currency", "must be an ISO 4217 code such as \"NZD\"")
	}
	return payment.Money{MinorUnits: m.GetMinorUnits(), Currency: m.GetCurrency()}
}

// card checks a card: a token, never a card number.
func (v *violations) card(field string, c *pb.Card) payment.Card {
	if c == nil {
		v.add(field, "is required")
		return payment.Card{}
	}
	card := payment.Card{Token: c.GetToken(), MaskedPAN: c.GetMaskedPan(), EntryMode: payment.EntryMode(c.GetEntryMode())}
	for _, e := range payment.CheckCard(card) {
		v.add(field+strings.TrimPrefix(e.Field, "card"), "%s", e.Reason)
	}
	return card
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
	res, err := p.s.payments.Authorize(ctx, payment.AuthorizeRequest{
		TerminalID: pr.TerminalID,
		RequestID:  req.GetRequestId(),
		MerchantID: req.GetMerchantId(),
		Amount:     amount,
		Card:       card,
		LocalTime:  local,
		Capture:    req.GetCapture(),
	})
	p.s.paySignals.record(pr.TerminalID, res, err, time.Since(start))
	p.s.metrics.authorized(amount, res, err)
	if err != nil {
		return nil, p.s.paymentStatus(ctx, err)
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
	res, err := p.s.payments.Reverse(ctx, payment.ReverseRequest{
		TerminalID:        pr.TerminalID,
		RequestID:         req.GetRequestId(),
		OriginalRequestID: req.GetOriginalRequestId(),
		Reason:            payment.ReversalReason(req.GetReason()),
	})
	if err != nil {
		return nil, p.s.paymentStatus(ctx, err)
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
	v.requestID("request_id", req.GetRequestId())
	if v.required("authorization_id", req.GetAuthorizationId()) {
		v.match("authorization_id", req.GetAuthorizationId(), reTransactionID, "an authorization_id returned by Authorize")
	}
	amount := v.money("amount", req.GetAmount())
	if err := v.err(); err != nil {
		return nil, err
	}
	res, err := p.s.payments.Refund(ctx, payment.RefundRequest{
		TerminalID:      pr.TerminalID,
		RequestID:       req.GetRequestId(),
		AuthorizationID: req.GetAuthorizationId(),
		Amount:          amount,
	})
	if err != nil {
		return nil, p.s.paymentStatus(ctx, err)
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
	res, err := p.s.payments.CloseBatch(ctx, payment.CloseBatchRequest{
		TerminalID:     pr.TerminalID,
		RequestID:      req.GetRequestId(),
		BatchNumber:    req.GetBatchNumber(),
		TerminalTotals: totals,
	})
	if err != nil {
		return nil, p.s.paymentStatus(ctx, err)
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

// totals checks a terminal's batch totals: required, amounts not negative
// and in one currency.
func (v *violations) totals(field string, t *pb.BatchTotals) payment.BatchTotals {
	if t == nil {
		v.add(field, "is required")
		return payment.BatchTotals{}
	}
	out := payment.BatchTotals{
		SaleCount: t.GetSaleCount(), RefundCount: t.GetRefundCount(),
		ReversalCount: t.GetReversalCount(), PreauthCount: t.GetPreauthCount(),
	}
	for _, a := range []struct {
		name string
		m    *pb.Money
		into *int64
	}{
		{"sale_amount", t.GetSaleAmount(), &out.SaleAmount},
		{"refund_amount", t.GetRefundAmount(), &out.RefundAmount},
		{"reversal_amount", t.GetReversalAmount(), &out.ReversalAmount},
		{"preauth_amount", t.GetPreauthAmount(), &out.PreauthAmount},
	} {
		if a.m == nil {
			continue
		}
		f := field + "." + a.name
		*a.into = a.m.GetMinorUnits()
		if a.m.GetMinorUnits() < 0 {
			v.add(f+".minor_units", "must not be negative")
		}
		c := a.m.GetCurrency()
		switch {
		case c == "":
		case !reCurrency.MatchString(c):
			v.add(f+".currency", "must be an ISO 4217 code such as \"NZD\"")
		case out.Currency != "" && c != out.Currency:
			v.add(f+".currency", "must equal the other amounts' currency (%s)", out.Currency)
		default:
			out.Currency = c
		}
	}
	return out
}

func paymentMoneyToPB(minor int64, currency string) *pb.Money {
	return &pb.Money{MinorUnits: minor, Currency: currency}
}

func totalsToPB(t payment.BatchTotals) *pb.BatchTotals {
	return &pb.BatchTotals{
		SaleCount:      t.SaleCount,
		SaleAmount:     paymentMoneyToPB(t.SaleAmount, t.Currency),
		RefundCount:    t.RefundCount,
		RefundAmount:   paymentMoneyToPB(t.RefundAmount, t.Currency),
		ReversalCount:  t.ReversalCount,
		ReversalAmount: paymentMoneyToPB(t.ReversalAmount, t.Currency),
		PreauthCount:   t.PreauthCount,
		PreauthAmount:  paymentMoneyToPB(t.PreauthAmount, t.Currency),
	}
}

// timestampOrNil converts t, leaving the zero time unset.
func timestampOrNil(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
