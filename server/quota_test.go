package server

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/posfleet/posfleet/server/auth"
)

// Every authenticated method spends a quota, terminal methods their own
// class: a new RPC added to the access table cannot slip through unlimited.
func TestEveryAuthenticatedMethodHasAQuotaClass(t *testing.T) {
	q := DefaultQuotas()
	classes := map[quotaClass]bool{}
	for _, x := range q.all() {
		classes[x.class] = true
	}
	for method, need := range methodAccess {
		c := classOf(method)
		switch {
		case need.public && c != "":
			t.Errorf("public %s has quota class %q, want none", method, c)
		case !need.public && !classes[c]:
			t.Errorf("%s has quota class %q, want one of the configured classes", method, c)
		case need.terminal && terminalQuotaClass[method] == "":
			t.Errorf("terminal method %s is not in terminalQuotaClass", method)
		}
	}
}

func TestQuotasScaleAndValidate(t *testing.T) {
	q := DefaultQuotas().Scale(0.001)
	if err := q.Validate(); err != nil {
		t.Fatalf("scaled defaults: %v", err)
	}
	if got := q.Credential.Burst; got != 1 {
		t.Errorf("scaled credential burst = %d, want at least 1", got)
	}
	if !DefaultQuotas().Scale(0).Disabled {
		t.Error("Scale(0) does not disable quotas")
	}
	bad := DefaultQuotas()
	bad.Heartbeat.Rate = 0
	if bad.Validate() == nil {
		t.Error("a zero rate validated")
	}
}

// BenchmarkQuotaTake measures the quota check on the payment path, with
// many terminals calling in parallel.
func BenchmarkQuotaTake(b *testing.B) {
	q := DefaultQuotas()
	q.Payment = Quota{Rate: 1e9, Burst: 1e9}
	l := newQuotaLimiter(q)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := auth.NewContext(context.Background(), auth.Principal{Kind: auth.KindTerminal, TerminalID: fmt.Sprintf("T%07d", rand.IntN(10000))})
		for pb.Next() {
			if err := l.take(ctx, paymentSvc+"Authorize"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
