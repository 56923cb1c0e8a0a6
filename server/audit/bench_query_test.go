package audit_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/audit"
)

// BenchmarkListQueries measures a page of 20 of each query kind whose
// matches are few and older than the bulk of the trail (see queryTrail),
// at two trail sizes: the same ns/op and reads/op at both say that a
// page's cost does not depend on the trail.
//
//	go test -run '^$' -bench BenchmarkListQueries ./server/audit/
func BenchmarkListQueries(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		log := openLog(b)
		_, bulkStart := queryTrail(b, log, n)
		old := bulkStart.Add(-2 * time.Hour)
		queries := []struct {
			name string
			f    audit.Filter
		}{
			{"newest", audit.Filter{}},
			{"terminal", audit.Filter{TerminalID: "T0000090"}},
			{"type", audit.Filter{Type: audit.MerchantMismatch}},
			{"time-range", audit.Filter{Start: old.Add(10 * time.Minute), End: old.Add(30 * time.Minute)}},
			{"type+time-range", audit.Filter{Type: audit.MerchantMismatch, Start: old.Add(10 * time.Minute), End: old.Add(30 * time.Minute)}},
			{"merchant+time-range", audit.Filter{MerchantID: "M1", Start: bulkStart.Add(100 * time.Second), End: bulkStart.Add(120 * time.Second)}},
		}
		for _, q := range queries {
			b.Run(fmt.Sprintf("%s/trail=%d", q.name, n), func(b *testing.B) {
				b.ReportAllocs()
				reads := log.Reads()
				for b.Loop() {
					p, err := log.ListPage(b.Context(), q.f, 20, "")
					if err != nil || len(p.Events) == 0 {
						b.Fatalf("page: %d events, %v", len(p.Events), err)
					}
				}
				b.ReportMetric(float64(log.Reads()-reads)/float64(b.N), "reads/op")
			})
		}
		log.Close()
	}
}
