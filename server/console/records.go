package console

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// listPage is the size of a page of the audit and transaction lists.
const listPage = 50

// alertTypes are the audit event types shown as alerts.
var alertTypes = []string{"MERCHANT_MISMATCH", "BATCH_OUT_OF_BALANCE", "IDENTITY_COLLISION", "AUTH_FAILURE", "PERMISSION_DENIED", "REGISTRATION_REFUSED"}

type auditData struct {
	Events   []*pb.AuditEvent
	Zones    zones
	Types    []string
	Next     string
	Searched searched
	Alerts   bool
}

// searched says how far back a page cut short by the server's read budget
// searched (the response's searched_from); At is nil on other pages.
type searched struct {
	V  *view
	At *timestamppb.Timestamp
}

// dayRange reads the "from" and "to" dates (YYYY-MM-DD, server time) of a
// filter form as a time range; "to" is inclusive.
func dayRange(f url.Values) (start, end *timestamppb.Timestamp) {
	if t, err := time.ParseInLocation(time.DateOnly, f.Get("from"), time.Local); err == nil {
		start = timestamppb.New(t)
	}
	if t, err := time.ParseInLocation(time.DateOnly, f.Get("to"), time.Local); err == nil {
		end = timestamppb.New(t.AddDate(0, 0, 1))
	}
	return start, end
}

// alerts lists the audit events that call for attention, merchant
// mismatches first, with their evidence.
func (c *Console) alerts(q *request) {
	f := q.r.URL.Query()
	if f.Get("type") == "" {
		f.Set("type", "MERCHANT_MISMATCH")
	}
	c.auditList(q, f, true)
}

// audit lists the audit trail with filters by type, time, merchant and
// terminal.
func (c *Console) audit(q *request) { c.auditList(q, q.r.URL.Query(), false) }

func (c *Console) auditList(q *request, f url.Values, alerts bool) {
	ctx, cancel := q.ctx()
	defer cancel()
	start, end := dayRange(f)
	resp, err := c.admin.ListAuditEvents(ctx, &pb.ListAuditEventsRequest{
		Type:       pb.AuditEventType(pb.AuditEventType_value["AUDIT_EVENT_TYPE_"+f.Get("type")]),
		MerchantId: strings.TrimSpace(f.Get("merchant")), TerminalId: strings.TrimSpace(f.Get("terminal")),
		StartTime: start, EndTime: end, PageSize: listPage, PageToken: f.Get("page"),
	})
	if err != nil {
		q.mustNot(err)
		return
	}
	d := &auditData{Events: resp.GetEvents(), Alerts: alerts, Types: alertTypes, Zones: c.storeZones(q)}
	if !alerts {
		d.Types = nil
		for i := int32(1); i < int32(len(pb.AuditEventType_name)); i++ {
			d.Types = append(d.Types, enumName(pb.AuditEventType(i)))
		}
	}
	if next := resp.GetNextPageToken(); next != "" {
		d.Next = queryWith(f, "page", next)
	}
	title := "Audit"
	if alerts {
		title = "Alerts"
	}
	v := &view{Title: title, D: d, Form: f}
	d.Searched = searched{V: v, At: resp.GetSearchedFrom()}
	q.renderPage("audit", v)
}

type transactionsData struct {
	Table    txTable
	Next     string
	Searched searched
}

// transactions searches payment transactions.
func (c *Console) transactions(q *request) {
	ctx, cancel := q.ctx()
	defer cancel()
	f := q.r.URL.Query()
	start, end := dayRange(f)
	batch, _ := strconv.ParseUint(f.Get("batch"), 10, 64)
	resp, err := c.admin.ListTransactions(ctx, &pb.ListTransactionsRequest{
		TerminalId: strings.TrimSpace(f.Get("terminal")), MerchantId: strings.TrimSpace(f.Get("merchant")), BatchNumber: batch,
		StoreId: strings.TrimSpace(f.Get("store")), ResponseCode: strings.TrimSpace(f.Get("code")),
		Decision:  pb.Decision(pb.Decision_value["DECISION_"+f.Get("decision")]),
		StartTime: start, EndTime: end, PageSize: listPage, PageToken: f.Get("page"),
	})
	if err != nil {
		if ce := q.failed(err); ce != nil {
			v := &view{Title: "Transactions", Err: ce.Message, Fields: ce.Fields, Form: f}
			v.D = &transactionsData{Table: txRows(v, nil, nil)}
			q.renderPage("transactions", v)
		}
		return
	}
	v := &view{Title: "Transactions", Form: f}
	d := &transactionsData{Table: txRows(v, resp.GetTransactions(), c.storeZones(q)), Searched: searched{V: v, At: resp.GetSearchedFrom()}}
	if next := resp.GetNextPageToken(); next != "" {
		d.Next = queryWith(f, "page", next)
	}
	v.D = d
	q.renderPage("transactions", v)
}

// Zone returns the time zone of an event's store, "" when it has none.
func (d *auditData) Zone(ev *pb.AuditEvent) string {
	return d.Zones.of(ev.GetMerchantId(), ev.GetStoreId())
}
