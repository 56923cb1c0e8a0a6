package console

import (
	"sort"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// maxDayTransactions bounds the transactions the dashboard reads for
// today's figures; beyond it the page says the figures are partial.
const maxDayTransactions = 20000

// dashboardData is the dashboard's data.
type dashboardData struct {
	Report *pb.GetFleetReportResponse
	// Connectivity lists the connectivity classes in a fixed order with
	// their counts, for the table and the chart.
	Connectivity []keyCount
	MaxConn      uint64
	OpenFaults   uint64
	Alerts       []*pb.AuditEvent
	Rollouts     []*pb.Rollout
	Merchants    []merchantDay
	MaxDay       uint64
	Since        *timestamppb.Timestamp
	Partial      bool
}

type keyCount struct {
	Key   string
	Count uint64
}

// merchantDay is one merchant's payments today.
type merchantDay struct {
	MerchantID string
	Approvals  uint64
	Declines   uint64
	// Approved holds the approved amount per currency (minor units).
	Approved map[string]int64
	// Currencies lists Approved's keys in order.
	Currencies []string
}

func (c *Console) dashboard(q *request) {
	ctx, cancel := q.ctx()
	defer cancel()
	rep, err := c.admin.GetFleetReport(ctx, &pb.GetFleetReportRequest{})
	if err != nil {
		q.mustNot(err)
		return
	}
	d := &dashboardData{Report: rep}
	counts := map[string]uint64{}
	for _, kc := range rep.GetByConnectivity() {
		counts[kc.GetKey()] = kc.GetCount()
	}
	for _, k := range []string{"ONLINE", "STALE", "OFFLINE", "NEVER_SEEN"} {
		d.Connectivity = append(d.Connectivity, keyCount{k, counts[k]})
		d.MaxConn = max(d.MaxConn, counts[k])
	}
	for _, f := range rep.GetFaults() {
		d.OpenFaults += f.GetCount()
	}
	alerts, err := c.admin.ListAuditEvents(ctx, &pb.ListAuditEventsRequest{Type: pb.AuditEventType_AUDIT_EVENT_TYPE_MERCHANT_MISMATCH, PageSize: 5})
	if err != nil {
		q.mustNot(err)
		return
	}
	d.Alerts = alerts.GetEvents()
	for _, st := range []pb.RolloutState{pb.RolloutState_ROLLOUT_STATE_RUNNING, pb.RolloutState_ROLLOUT_STATE_PAUSED, pb.RolloutState_ROLLOUT_STATE_HALTED} {
		ro, err := c.admin.ListRollouts(ctx, &pb.ListRolloutsRequest{State: st, PageSize: 20})
		if err != nil {
			q.mustNot(err)
			return
		}
		d.Rollouts = append(d.Rollouts, ro.GetRollouts()...)
	}
	now := time.Now()
	midnight := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.Local)
	d.Since = timestamppb.New(midnight)
	byMerchant := map[string]*merchantDay{}
	req := &pb.ListTransactionsRequest{StartTime: d.Since, PageSize: 1000}
	for seen := 0; ; {
		page, err := c.admin.ListTransactions(ctx, req)
		if err != nil {
			q.mustNot(err)
			return
		}
		for _, tx := range page.GetTransactions() {
			if tx.GetKind() == pb.TransactionKind_TRANSACTION_KIND_REFUND {
				continue
			}
			m := byMerchant[tx.GetMerchantId()]
			if m == nil {
				m = &merchantDay{MerchantID: tx.GetMerchantId(), Approved: map[string]int64{}}
				byMerchant[tx.GetMerchantId()] = m
			}
			switch tx.GetDecision() {
			case pb.Decision_DECISION_APPROVED:
				m.Approvals++
				if !tx.GetReversed() {
					m.Approved[tx.GetAmount().GetCurrency()] += tx.GetAmount().GetMinorUnits()
				}
			case pb.Decision_DECISION_DECLINED:
				m.Declines++
			}
		}
		seen += len(page.GetTransactions())
		if page.GetNextPageToken() == "" {
			break
		}
		if seen >= maxDayTransactions {
			d.Partial = true
			break
		}
		req.PageToken = page.GetNextPageToken()
	}
	for _, m := range byMerchant {
		for cur := range m.Approved {
			m.Currencies = append(m.Currencies, cur)
		}
		sort.Strings(m.Currencies)
		d.Merchants = append(d.Merchants, *m)
		d.MaxDay = max(d.MaxDay, m.Approvals+m.Declines)
	}
	sort.Slice(d.Merchants, func(i, j int) bool { return d.Merchants[i].MerchantID < d.Merchants[j].MerchantID })
	q.renderPage("dashboard", &view{Title: "Dashboard", Refresh: c.cfg.RefreshSeconds, D: d})
}

// mustNot ends a read-only page on an AdminService error.
func (q *request) mustNot(err error) {
	if ce := q.failed(err); ce != nil {
		q.fail(httpStatus(ce), ce.Message)
	}
}
