package server_test

import (
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/posfleet/posfleet/server"
)

// BenchmarkAuthorizeGRPC measures Authorize through the whole transport
// (TCP loopback, interceptors, metrics, handler, engine) on an in-memory
// store, so that the per-call cost of the transport is not hidden behind
// fsyncs.
func BenchmarkAuthorizeGRPC(b *testing.B) {
	cfg := server.DefaultConfig("")
	cfg.InMemory = true
	cfg.Quotas = cfg.Quotas.Scale(0)
	e := startObsEnv(b, cfg)
	ctx := bearer(b.Context(), e.cred)
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		id := strconv.FormatInt(next.Add(1), 36)
		i := 0
		for pb.Next() {
			i++
			req := saleReq("bg"+id+"-"+strconv.Itoa(i), 1234)
			resp, err := e.pay.Authorize(ctx, req)
			if err != nil || resp.GetResponseCode() != "00" {
				b.Errorf("Authorize: %v, %v", resp, err)
				return
			}
		}
	})
}
