package server

import (
	"context"
	"errors"
	"log/slog"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/payment"
	"github.com/posfleet/posfleet/server/store"
)

// Payments returns the payment engine in service. After a storage failure
// stops an engine, the payment supervisor puts a reopened one in its place,
// so callers fetch the engine for each request instead of keeping it.
func (e *Engines) Payments() *payment.Engine { return e.payments.Load() }

// paymentReopenBackoff bounds the wait between attempts to reopen a
// stopped payment engine: it starts at min and doubles up to max. A
// PostgreSQL failover takes seconds, so max keeps the engine at most a
// second behind the new primary.
var paymentReopenBackoff = struct{ min, max time.Duration }{100 * time.Millisecond, time.Second}

// supervisePayments watches the payment engine in service. When a commit
// failure stops it (the database went away: a lost connection, a primary
// killed, a failover in progress), the supervisor waits, with backoff, until
// the store answers a commit again, opens a fresh engine on it — which
// rebuilds its state from what is durable, exactly as at start — and swaps
// it in. Requests in between get payment.ErrUnavailable (Unavailable with
// RetryInfo); clients retry with the same request ID, which idempotency
// makes safe. onRecovered, if set, is called after each swap.
//
// It returns the closer that stops the supervisor and closes the engine in
// service then.
func (e *Engines) supervisePayments(open func(context.Context) (*payment.Engine, error), onRecovered func(), logger *slog.Logger) func() error {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			cur := e.payments.Load()
			select {
			case <-ctx.Done():
				return
			case <-cur.Stopped():
			}
			stoppedAt := time.Now()
			logger.Warn("payment engine stopped on a storage failure; reopening it once the store answers", "err", cur.Failure())
			next, attempts, err := e.reopenPayments(ctx, open, logger)
			if err != nil {
				return // closing
			}
			e.payments.Store(next)
			// The stopped engine writes nothing more: closing it only
			// answers what was still queued on it with ErrUnavailable.
			_ = cur.Close()
			logger.Info("payment engine reopened after a storage failure", "down_for", time.Since(stoppedAt), "attempts", attempts)
			if onRecovered != nil {
				onRecovered()
			}
		}
	}()
	return func() error {
		cancel()
		<-done
		return e.payments.Load().Close()
	}
}

// reopenPayments opens a fresh payment engine once the store answers,
// retrying with backoff until it succeeds or ctx ends. It returns the
// engine and how many attempts it took.
func (e *Engines) reopenPayments(ctx context.Context, open func(context.Context) (*payment.Engine, error), logger *slog.Logger) (*payment.Engine, int, error) {
	wait := paymentReopenBackoff.min
	for attempt := 1; ; attempt++ {
		err := e.storeAnswers()
		if err == nil {
			var p *payment.Engine
			if p, err = open(ctx); err == nil {
				return p, attempt, nil
			}
		}
		logger.Warn("payment engine not reopened yet", "attempt", attempt, "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil, attempt, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, paymentReopenBackoff.max)
	}
}

// storeAnswers reports whether the store takes a commit now: it is reachable
// (on PostgreSQL, a ping on a read-write connection, found through the URL's
// target_session_attrs) and an empty commit succeeds. A low disk does not
// count: the engine refuses payments itself while it lasts.
func (e *Engines) storeAnswers() error {
	if err := e.DB.Writable(); err != nil && !errors.Is(err, store.ErrDiskLow) {
		return err
	}
	return e.DB.UpdateReserved(func(*store.Txn) error { return nil })
}

// paymentsRecovered reports the payment service SERVING again once a
// reopened engine took over, unless the server is not serving yet or the
// disk is low (then updateReadiness decides).
func (s *Server) paymentsRecovered() {
	s.readyMu.Lock()
	defer s.readyMu.Unlock()
	if !s.serving || (s.eng.Space != nil && s.eng.Space.Status().Low) {
		return
	}
	s.health.SetServingStatus(pb.PaymentService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
}
