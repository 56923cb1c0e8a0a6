package server

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/posfleet/posfleet/server/payment"
)

// TestHotPathMetricsDoNotAllocate pins the cost of recording on the
// payment path: counters are resolved to their label children once, so
// recording a decision, a commit or a refusal allocates nothing.
func TestHotPathMetricsDoNotAllocate(t *testing.T) {
	m := newMetrics(&Server{})
	approved := payment.AuthorizeResult{Decision: payment.DecisionApproved, ResponseCode: payment.CodeApproved}
	declined := payment.AuthorizeResult{Decision: payment.DecisionDeclined, ResponseCode: payment.CodeInsufficientFunds}
	nzd := payment.Money{MinorUnits: 1250, Currency: "NZD"}
	m.authorized(nzd, approved, nil) // the currency's first approval resolves its child
	m.rateLimited("quota_payment")
	tests := []struct {
		name string
		f    func()
	}{
		{"approval", func() { m.authorized(nzd, approved, nil) }},
		{"decline", func() { m.authorized(nzd, declined, nil) }},
		{"failed call", func() { m.authorized(nzd, payment.AuthorizeResult{}, errors.New("x")) }},
		{"commit", func() { m.committed(12, 3*time.Millisecond) }},
		{"rate limit", func() { m.rateLimited("quota_payment") }},
	}
	for _, tc := range tests {
		if got := testing.AllocsPerRun(100, tc.f); got != 0 {
			t.Errorf("%s: %v allocations per call, want 0", tc.name, got)
		}
	}
}

// BenchmarkMetricsPerAuthorize measures what metrics add to one Authorize
// call: the gRPC provider's interceptor around a no-op handler, and the
// decision's own counters.
func BenchmarkMetricsPerAuthorize(b *testing.B) {
	m := newMetrics(&Server{})
	intercept := m.grpc.UnaryServerInterceptor()
	info := &grpc.UnaryServerInfo{FullMethod: paymentSvc + "Authorize"}
	handler := func(context.Context, any) (any, error) { return nil, nil }
	res := payment.AuthorizeResult{Decision: payment.DecisionApproved, ResponseCode: payment.CodeApproved}
	nzd := payment.Money{MinorUnits: 1250, Currency: "NZD"}
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := intercept(ctx, nil, info, handler); err != nil {
			b.Fatal(err)
		}
		m.authorized(nzd, res, nil)
	}
}
