package loadgen

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// HealthExecutor drives the standard gRPC health check
// (grpc.health.v1.Health/Check): the cheapest call a gRPC server answers,
// used as the machine's ceiling that other results are quoted against. Each
// arrival makes one call, recorded as OpHealth.
type HealthExecutor struct {
	clients []healthpb.HealthClient
	service string
	timeout time.Duration
}

// NewHealthExecutor returns an executor calling Check for service ("" for
// the whole server) over conns; user i uses conns[i mod len(conns)]. Each
// call gets timeout as its deadline.
func NewHealthExecutor(conns []grpc.ClientConnInterface, service string, timeout time.Duration) (*HealthExecutor, error) {
	if len(conns) == 0 {
		return nil, errors.New("loadgen: health executor needs at least one connection")
	}
	if timeout <= 0 {
		return nil, errors.New("loadgen: health executor timeout must be positive")
	}
	h := &HealthExecutor{service: service, timeout: timeout}
	for _, c := range conns {
		h.clients = append(h.clients, healthpb.NewHealthClient(c))
	}
	return h, nil
}

// Execute makes one health check.
func (h *HealthExecutor) Execute(ctx context.Context, user int, a Arrival, rec Recorder) Outcome {
	c := h.clients[user%len(h.clients)]
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	sent := time.Now()
	resp, err := c.Check(ctx, &healthpb.HealthCheckRequest{Service: h.service})
	done := time.Now()
	o := ErrorOutcome(err)
	if err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		o = Outcome{Class: ClassError, Code: resp.GetStatus().String()}
	}
	rec.Call(OpHealth, a.Intended, sent, done, o)
	return o
}
