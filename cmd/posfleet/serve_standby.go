package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/posfleet/posfleet/server"
)

// standbyPhase opens the server on cfg. On PostgreSQL, while another node
// serves the database, the node waits as a hot standby: gRPC answers on
// the handoff's listener with health NOT_SERVING and every call refused
// Unavailable NOT_LEADER, and the metrics listener (when set) answers
// /readyz 503. When the writer role frees up (the serving node died or
// stopped), the server opens from the database and the standby answering
// stops; the caller serves the server on the same handoff and sets the
// returned ops handler to the server's. A ctx ended while waiting returns
// errStoppedAsStandby.
type standbyPhase struct {
	handoff *server.Handoff
	ops     swapHandler
	// metricsOnce starts the metrics listener once, as a standby or after.
	metricsOnce sync.Once
	metrics     *http.Server
}

var errStoppedAsStandby = errors.New("stopped while waiting as a standby")

// open builds the server, waiting as a standby if needed.
func (p *standbyPhase) open(ctx context.Context, cfg server.Config, metricsLis net.Listener, logger *slog.Logger) (*server.Server, error) {
	var sb *server.Standby
	cfg.OnStandby = func() {
		sb = server.StartStandby(p.handoff.Listener(), cfg, logger)
		p.ops.h.Store(&handlerBox{server.StandbyOpsHandler()})
		p.serveMetrics(metricsLis, logger)
	}
	srv, err := server.NewContext(ctx, cfg, logger)
	if sb != nil {
		sb.Stop()
	}
	if err != nil && sb != nil && ctx.Err() != nil {
		return nil, errStoppedAsStandby
	}
	return srv, err
}

// serveMetrics starts the metrics listener, once.
func (p *standbyPhase) serveMetrics(lis net.Listener, logger *slog.Logger) {
	if lis == nil {
		return
	}
	p.metricsOnce.Do(func() { p.metrics = serveMetrics(lis, &p.ops, logger) })
}

// close stops the metrics listener, if started.
func (p *standbyPhase) close() {
	if p.metrics != nil {
		p.metrics.Close()
	}
}

// swapHandler serves the handler last stored: the standby's, then the
// server's.
type swapHandler struct{ h atomic.Pointer[handlerBox] }

type handlerBox struct{ http.Handler }

func (s *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if b := s.h.Load(); b != nil {
		b.ServeHTTP(w, r)
		return
	}
	http.Error(w, "starting", http.StatusServiceUnavailable)
}
