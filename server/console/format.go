package console

import pb "github.com/posfleet/posfleet/proto/posfleet/v1"

// txTable is the data of the shared "txtable" template.
type txTable struct {
	V    *view
	Rows []txRow
}

// txRow is a transaction with the time zone of its store.
type txRow struct {
	Tx   *pb.Transaction
	Zone string
}

// zones maps "merchant/store" to the store's time zone.
type zones map[string]string

func (z zones) of(merchantID, storeID string) string { return z[merchantID+"/"+storeID] }

// txRows pairs transactions with their stores' time zones: z is a zones
// map, or one zone name for all.
func txRows(v *view, txs []*pb.Transaction, z any) txTable {
	t := txTable{V: v}
	for _, tx := range txs {
		r := txRow{Tx: tx}
		switch z := z.(type) {
		case string:
			r.Zone = z
		case zones:
			r.Zone = z.of(tx.GetMerchantId(), tx.GetStoreId())
		}
		t.Rows = append(t.Rows, r)
	}
	return t
}

// storeZones reads the time zones of all stores (up to a few thousand).
func (c *Console) storeZones(q *request) zones {
	ctx, cancel := q.ctx()
	defer cancel()
	z := zones{}
	req := &pb.ListStoresRequest{PageSize: 1000, IncludeArchived: true}
	for range 5 {
		resp, err := c.admin.ListStores(ctx, req)
		if err != nil {
			return z
		}
		for _, s := range resp.GetStores() {
			z[s.GetMerchantId()+"/"+s.GetStoreId()] = s.GetTimeZone()
		}
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
			break
		}
	}
	return z
}
