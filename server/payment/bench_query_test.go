package payment_test

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/payment"
)

// ledgerSizes are the ledger sizes of BenchmarkListTransactionsQueries.
var ledgerSizes = flag.String("ledger-sizes", "10000,100000", "BenchmarkListTransactionsQueries: comma-separated ledger sizes")

// BenchmarkListTransactionsQueries measures a page of 20 of each query
// kind whose matches are few and older than the whole bulk of the ledger
// (see costLedger), at two ledger sizes: the same ns/op and reads/op at
// both say that a page's cost does not depend on the ledger.
//
//	go test -run '^$' -bench BenchmarkListTransactionsQueries ./server/payment/ [-ledger-sizes 10000,100000,300000]
func BenchmarkListTransactionsQueries(b *testing.B) {
	for _, size := range strings.Split(*ledgerSizes, ",") {
		n, err := strconv.Atoi(size)
		if err != nil || n < 1 {
			b.Fatalf("-ledger-sizes: %q is not a size", size)
		}
		v := newEnv(b)
		boundary := costLedger(b, v, n)
		queries := []struct {
			name string
			f    payment.TxFilter
		}{
			{"newest", payment.TxFilter{}},
			{"store", payment.TxFilter{MerchantID: "M2", StoreID: "S9"}},
			{"response-code", payment.TxFilter{ResponseCode: "05"}},
			{"store+declined", payment.TxFilter{MerchantID: merch, StoreID: "S2", Decision: payment.DecisionDeclined}},
			{"merchant+response-code", payment.TxFilter{MerchantID: "M2", ResponseCode: "51"}},
			{"response-code+time-range", payment.TxFilter{ResponseCode: "51", Start: boundary.Add(-90 * time.Minute), End: boundary}},
			{"time-range", payment.TxFilter{Start: boundary.Add(-80 * time.Minute), End: boundary.Add(-70 * time.Minute)}},
		}
		for _, q := range queries {
			b.Run(fmt.Sprintf("%s/ledger=%d", q.name, n), func(b *testing.B) {
				b.ReportAllocs()
				reads := v.eng.QueryReads()
				for b.Loop() {
					p, err := v.eng.ListTransactionsPage(b.Context(), q.f, 20, "")
					if err != nil || len(p.Transactions) == 0 {
						b.Fatalf("page: %d transactions, %v", len(p.Transactions), err)
					}
				}
				b.ReportMetric(float64(v.eng.QueryReads()-reads)/float64(b.N), "reads/op")
			})
		}
		v.close()
	}
}
