package payment_test

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// benchEnv opens an engine on a real, synced store with the wall clock.
func benchEnv(b *testing.B) *env {
	v := newEnv(b)
	v.reopenWithClock(time.Now)
	return v
}

func (v *env) reopenWithClock(now func() time.Time) {
	v.t.Helper()
	v.opts.Now = now
	v.reopen()
}

// BenchmarkAuthorize measures durable approvals through the group commit:
// many goroutines (b.SetParallelism × GOMAXPROCS) authorizing at once, each
// answer released only after its synced commit. decisions/commit shows how
// many decisions shared one fsync.
func BenchmarkAuthorize(b *testing.B) {
	for _, par := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("goroutines=%dxGOMAXPROCS", par), func(b *testing.B) {
			v := benchEnv(b)
			var next atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(par)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				id := next.Add(1)
				term := fmt.Sprintf("TB%06d", id%1000)
				req := sale(term, "", 1234)
				i := 0
				for pb.Next() {
					i++
					req.RequestID = "b" + strconv.FormatInt(id, 36) + "-" + strconv.Itoa(i)
					req.Card.Token = "tok_bench_" + req.RequestID
					res, err := v.eng.Authorize(b.Context(), req)
					if err != nil || res.ResponseCode != "00" {
						b.Errorf("Authorize: %+v, %v", res, err)
						return
					}
				}
			})
			b.StopTimer()
			cs := v.eng.CommitStats()
			if cs.Commits > 0 {
				b.ReportMetric(float64(cs.Decisions)/float64(cs.Commits), "decisions/commit")
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "auths/s")
		})
	}
}

// BenchmarkReplay measures answering a replay of a durable decision, which
// needs no commit.
func BenchmarkReplay(b *testing.B) {
	v := benchEnv(b)
	req := sale(term1, "replayed", 500)
	if _, err := v.eng.Authorize(b.Context(), req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		res, err := v.eng.Authorize(b.Context(), req)
		if err != nil || !res.Replayed {
			b.Fatalf("replay: %+v, %v", res, err)
		}
	}
}

// BenchmarkOpen measures rebuilding the state on start from a ledger of
// 20,000 transactions of the retention period.
func BenchmarkOpen(b *testing.B) {
	v := benchEnv(b)
	const n = 20000
	done := make(chan error, 64)
	for w := range 64 {
		go func() {
			for i := w; i < n; i += 64 {
				req := sale(fmt.Sprintf("TO%06d", i%500), fmt.Sprint("o-", i), 100)
				req.Card.Token = fmt.Sprint("tok_open_", i)
				if _, err := v.eng.Authorize(b.Context(), req); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 64 {
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		v.reopen()
	}
}
