package console

import (
	"encoding/csv"
	"sort"
	"strconv"
	"strings"
	"time"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// maxSettlementPages bounds the pages of batches one report reads.
const maxSettlementPages = 50

type settlementData struct {
	Merchants []*pb.Merchant
	Merchant  string
	Date      string
	Store     string
	Report    *pb.GetSettlementReportResponse
	Batches   []*pb.BatchSummary
	Stores    []storeTotals
	OutOfBal  int
	Zones     zones
	Partial   bool
	CSVQuery  string
}

// storeTotals are the server totals of one store's batches.
type storeTotals struct {
	StoreID string
	Batches int
	Totals  *pb.BatchTotals
}

// settlement is 日结: a merchant's totals for a business day, per store,
// and its batches in or out of balance.
func (c *Console) settlement(q *request) {
	d, ok := c.loadSettlement(q)
	if !ok {
		return
	}
	q.renderPage("settlement", &view{Title: "Settlement", D: d, Form: q.r.URL.Query()})
}

func (c *Console) loadSettlement(q *request) (*settlementData, bool) {
	ctx, cancel := q.ctx()
	defer cancel()
	f := q.r.URL.Query()
	d := &settlementData{Merchant: f.Get("merchant"), Date: f.Get("date"), Store: f.Get("store")}
	if d.Date == "" {
		d.Date = time.Now().Format(time.DateOnly)
	}
	ms, err := c.admin.ListMerchants(ctx, &pb.ListMerchantsRequest{PageSize: 1000, IncludeArchived: true})
	if err != nil {
		q.mustNot(err)
		return nil, false
	}
	d.Merchants = ms.GetMerchants()
	if d.Merchant == "" && len(d.Merchants) > 0 {
		d.Merchant = d.Merchants[0].GetMerchantId()
	}
	if d.Merchant == "" {
		return d, true
	}
	req := &pb.GetSettlementReportRequest{MerchantId: d.Merchant, BusinessDate: d.Date, PageSize: 1000}
	for page := 0; ; page++ {
		resp, err := c.admin.GetSettlementReport(ctx, req)
		if err != nil {
			if ce := q.failed(err); ce != nil {
				q.renderPage("settlement", &view{Title: "Settlement", D: d, Err: ce.Message, Fields: ce.Fields, Form: f})
			}
			return nil, false
		}
		if d.Report == nil {
			d.Report = resp
		}
		d.Batches = append(d.Batches, resp.GetBatches()...)
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
			break
		}
		if page+1 >= maxSettlementPages {
			d.Partial = true
			break
		}
	}
	byStore := map[string]*storeTotals{}
	kept := d.Batches[:0]
	for _, b := range d.Batches {
		st := byStore[b.GetStoreId()]
		if st == nil {
			st = &storeTotals{StoreID: b.GetStoreId(), Totals: &pb.BatchTotals{}}
			byStore[b.GetStoreId()] = st
		}
		st.Batches++
		addTotals(st.Totals, b.GetServerTotals())
		if d.Store != "" && b.GetStoreId() != d.Store {
			continue
		}
		if b.GetState() == pb.BatchState_BATCH_STATE_OUT_OF_BALANCE {
			d.OutOfBal++
		}
		kept = append(kept, b)
	}
	d.Batches = kept
	for _, st := range byStore {
		d.Stores = append(d.Stores, *st)
	}
	sort.Slice(d.Stores, func(i, j int) bool { return d.Stores[i].StoreID < d.Stores[j].StoreID })
	d.Zones = c.storeZones(q)
	d.CSVQuery = f.Encode()
	return d, true
}

// addTotals adds b's counts and amounts to a.
func addTotals(a, b *pb.BatchTotals) {
	sum := func(x **pb.Money, y *pb.Money) {
		if y == nil {
			return
		}
		if *x == nil {
			*x = &pb.Money{Currency: y.GetCurrency()}
		}
		(*x).MinorUnits += y.GetMinorUnits()
	}
	a.SaleCount += b.GetSaleCount()
	sum(&a.SaleAmount, b.GetSaleAmount())
	a.RefundCount += b.GetRefundCount()
	sum(&a.RefundAmount, b.GetRefundAmount())
	a.ReversalCount += b.GetReversalCount()
	sum(&a.ReversalAmount, b.GetReversalAmount())
	a.PreauthCount += b.GetPreauthCount()
	sum(&a.PreauthAmount, b.GetPreauthAmount())
}

// settlementCSV exports the report as CSV: one line per batch and a total
// line, amounts in major units.
func (c *Console) settlementCSV(q *request) {
	d, ok := c.loadSettlement(q)
	if !ok {
		return
	}
	w := q.w
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="settlement-`+safeName(d.Merchant)+"-"+safeName(d.Date)+`.csv"`)
	cw := csv.NewWriter(w)
	cw.Write([]string{"merchant_id", "business_date", "store_id", "terminal_id", "batch_number", "state",
		"sale_count", "sale_amount", "refund_count", "refund_amount", "reversal_count", "reversal_amount",
		"preauth_count", "preauth_amount", "currency", "terminal_sale_count", "terminal_sale_amount"})
	line := func(store, term, batch, state string, t, tt *pb.BatchTotals) {
		cur := t.GetSaleAmount().GetCurrency()
		for _, m := range []*pb.Money{t.GetRefundAmount(), t.GetReversalAmount(), t.GetPreauthAmount()} {
			if cur == "" {
				cur = m.GetCurrency()
			}
		}
		amt := func(m *pb.Money) string {
			return strings.TrimSpace(strings.TrimSuffix(formatMinor(m.GetMinorUnits(), cur), cur))
		}
		row := []string{d.Merchant, d.Date, store, term, batch, state,
			u(t.GetSaleCount()), amt(t.GetSaleAmount()), u(t.GetRefundCount()), amt(t.GetRefundAmount()),
			u(t.GetReversalCount()), amt(t.GetReversalAmount()), u(t.GetPreauthCount()), amt(t.GetPreauthAmount()), cur, "", ""}
		if tt != nil {
			row[15], row[16] = u(tt.GetSaleCount()), amt(tt.GetSaleAmount())
		}
		for i, v := range row {
			row[i] = csvSafe(v)
		}
		cw.Write(row)
	}
	for _, b := range d.Batches {
		line(b.GetStoreId(), b.GetTerminalId(), u(b.GetBatchNumber()), enumName(b.GetState()), b.GetServerTotals(), b.GetTerminalTotals())
	}
	if d.Report != nil && d.Store == "" {
		line("", "", "", "TOTAL", d.Report.GetTotals(), nil)
	}
	cw.Flush()
}

func u(n uint64) string { return strconv.FormatUint(n, 10) }

// csvSafe keeps a spreadsheet from taking a cell for a formula.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) && !isNumber(s) {
		return "'" + s
	}
	return s
}

func isNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// safeName keeps letters, digits and dashes for a file name.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' {
			return r
		}
		return -1
	}, s)
}

// Zone returns the time zone of one of the merchant's stores.
func (d *settlementData) Zone(storeID string) string { return d.Zones.of(d.Merchant, storeID) }
