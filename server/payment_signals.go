package server

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/posfleet/posfleet/server/configpush"
	"github.com/posfleet/posfleet/server/payment"
)

// paymentSignals counts each terminal's Authorize outcomes in memory since
// the server started. It is config push's PaymentSignals: the payment
// handler reports into it and payment gates read it, so neither domain
// package knows the other. Safe for concurrent use; recording is lock-free
// once a terminal has an entry.
type paymentSignals struct {
	terms sync.Map // terminal ID → *terminalPayments
}

// terminalPayments are one terminal's counters.
type terminalPayments struct {
	payments, approved, systemErrors atomic.Uint64
	latency                          atomic.Int64 // nanoseconds
}

// record counts the outcome of one Authorize call of terminal tid that took
// d: the engine's result, or err when the call failed inside the server.
// Replays and calls ended by the client are not counted.
func (p *paymentSignals) record(tid string, res payment.AuthorizeResult, err error, d time.Duration) {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || (err == nil && res.Replayed) {
		return
	}
	v, ok := p.terms.Load(tid)
	if !ok {
		v, _ = p.terms.LoadOrStore(tid, &terminalPayments{})
	}
	t := v.(*terminalPayments)
	t.payments.Add(1)
	t.latency.Add(int64(d))
	switch {
	case err != nil || res.ResponseCode == "96":
		t.systemErrors.Add(1)
	case res.Decision == payment.DecisionApproved:
		t.approved.Add(1)
	}
}

// PaymentStats implements configpush.PaymentSignals.
func (p *paymentSignals) PaymentStats(tid string) configpush.PaymentStats {
	v, ok := p.terms.Load(tid)
	if !ok {
		return configpush.PaymentStats{}
	}
	t := v.(*terminalPayments)
	return configpush.PaymentStats{
		Payments: t.payments.Load(), Approved: t.approved.Load(), SystemErrors: t.systemErrors.Load(),
		Latency: time.Duration(t.latency.Load()),
	}
}
