package console

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// terminalsPage is the size of a page of the terminal list.
const terminalsPage = 50

// maxSearchScan bounds the terminals a text search reads.
const maxSearchScan = 20000

type terminalsData struct {
	Terminals []*pb.Terminal
	Next      string
	Query     url.Values
	States    []string
	Conns     []string
}

// terminals lists terminals with the API's filters (merchant, store, state,
// connectivity) and a text search over ID, serial number and label.
func (c *Console) terminals(q *request) {
	ctx, cancel := q.ctx()
	defer cancel()
	f := q.r.URL.Query()
	req := &pb.ListTerminalsRequest{
		MerchantId: f.Get("merchant"), StoreId: f.Get("store"), PageSize: terminalsPage, PageToken: f.Get("page"),
		State:        pb.TerminalState(pb.TerminalState_value["TERMINAL_STATE_"+f.Get("state")]),
		Connectivity: pb.Connectivity(pb.Connectivity_value["CONNECTIVITY_"+f.Get("connectivity")]),
	}
	d := &terminalsData{Query: f, States: []string{"PROVISIONED", "ACTIVE", "SUSPENDED", "RETIRED"}, Conns: []string{"ONLINE", "STALE", "OFFLINE", "NEVER_SEEN"}}
	search := strings.ToLower(strings.TrimSpace(f.Get("q")))
	for scanned := 0; ; {
		if search != "" {
			req.PageSize = 1000
		}
		resp, err := c.admin.ListTerminals(ctx, req)
		if err != nil {
			q.mustNot(err)
			return
		}
		for _, t := range resp.GetTerminals() {
			if search == "" || strings.Contains(strings.ToLower(t.GetTerminalId()+" "+t.GetSerialNumber()+" "+t.GetLabel()), search) {
				d.Terminals = append(d.Terminals, t)
			}
		}
		scanned += len(resp.GetTerminals())
		next := resp.GetNextPageToken()
		if search == "" || next == "" || len(d.Terminals) >= terminalsPage || scanned >= maxSearchScan {
			if next != "" {
				d.Next = queryWith(f, "page", next)
			}
			break
		}
		req.PageToken = next
	}
	q.renderPage("terminals", &view{Title: "Terminals", D: d, Form: f})
}

type terminalData struct {
	T            *pb.Terminal
	Zone         string
	Config       *pb.GetEffectiveConfigResponse
	Commands     []*pb.RemoteCommand
	Transactions []*pb.Transaction
	CommandTypes []string
	// History is the status history, newest first; BatteryLine the
	// points of its battery sparkline ("" with fewer than two levels).
	History     []*pb.TerminalStatusSample
	BatteryLine string
}

// terminal shows one terminal: identity, status, faults, effective config
// with where each value comes from, commands and recent transactions.
func (c *Console) terminal(q *request) {
	c.showTerminal(q, &view{})
}

func (c *Console) showTerminal(q *request, v *view) {
	ctx, cancel := q.ctx()
	defer cancel()
	id := q.r.PathValue("id")
	t, err := c.admin.GetTerminal(ctx, &pb.GetTerminalRequest{TerminalId: id})
	if err != nil {
		q.mustNot(err)
		return
	}
	d := &terminalData{T: t.GetTerminal(), CommandTypes: []string{"REBOOT", "UPLOAD_LOGS", "RESYNC_CONFIG", "LOCK", "ROTATE_CREDENTIAL"},
		History: t.GetStatusHistory(), BatteryLine: batteryLine(t.GetStatusHistory())}
	d.Zone = c.storeZone(q, d.T.GetMerchantId(), d.T.GetStoreId())
	// A terminal never registered has no effective config yet: not an
	// error of the page.
	if cfg, err := c.admin.GetEffectiveConfig(ctx, &pb.GetEffectiveConfigRequest{TerminalId: id}); err == nil {
		d.Config = cfg
	}
	cmds, err := c.admin.ListCommands(ctx, &pb.ListCommandsRequest{TerminalId: id, PageSize: 20})
	if err != nil {
		q.mustNot(err)
		return
	}
	d.Commands = cmds.GetCommands()
	txs, err := c.admin.ListTransactions(ctx, &pb.ListTransactionsRequest{TerminalId: id, PageSize: 20})
	if err != nil {
		q.mustNot(err)
		return
	}
	d.Transactions = txs.GetTransactions()
	v.Title, v.D = "Terminal", d
	q.renderPage("terminal", v)
}

// storeZone returns a store's time zone, "" when unknown.
func (c *Console) storeZone(q *request, merchantID, storeID string) string {
	ctx, cancel := q.ctx()
	defer cancel()
	resp, err := c.admin.ListStores(ctx, &pb.ListStoresRequest{MerchantId: merchantID, PageSize: 1000, IncludeArchived: true})
	if err != nil {
		return ""
	}
	for _, s := range resp.GetStores() {
		if s.GetStoreId() == storeID {
			return s.GetTimeZone()
		}
	}
	return ""
}

// confirmData is the confirmation step of a terminal action.
type confirmData struct {
	Action, TerminalID string
	Rebind             bool
}

// terminalAction suspends, reactivates, retires or rebinds a terminal, or
// sends it a command. The state changes ask for confirmation first: the
// form is shown again with a reason field until posted with confirm=yes.
func (c *Console) terminalAction(q *request) {
	id, action := q.r.PathValue("id"), q.r.PathValue("action")
	f := q.r.PostForm
	if action == "command" {
		c.sendCommand(q, id)
		return
	}
	if action != "suspend" && action != "reactivate" && action != "retire" && action != "rebind" {
		http.NotFound(q.w, q.r)
		return
	}
	if f.Get("confirm") != "yes" {
		q.renderPage("confirm", &view{Title: "Confirm", Form: f, D: confirmData{Action: action, TerminalID: id, Rebind: action == "rebind"}})
		return
	}
	ctx, cancel := q.ctx()
	defer cancel()
	reason := f.Get("reason")
	var err error
	switch action {
	case "suspend":
		_, err = c.admin.SuspendTerminal(ctx, &pb.SuspendTerminalRequest{TerminalId: id, Reason: reason})
	case "reactivate":
		_, err = c.admin.ReactivateTerminal(ctx, &pb.ReactivateTerminalRequest{TerminalId: id, Reason: reason})
	case "retire":
		_, err = c.admin.RetireTerminal(ctx, &pb.RetireTerminalRequest{TerminalId: id, Reason: reason})
	case "rebind":
		_, err = c.admin.RebindTerminal(ctx, &pb.RebindTerminalRequest{TerminalId: id, MerchantId: f.Get("merchant_id"), StoreId: f.Get("store_id"), Reason: reason})
	}
	if err != nil {
		if ce := q.failed(err); ce != nil {
			q.w.WriteHeader(httpStatus(ce))
			q.renderPage("confirm", &view{Title: "Confirm", Form: f, Err: ce.Message, Fields: ce.Fields, D: confirmData{Action: action, TerminalID: id, Rebind: action == "rebind"}})
		}
		return
	}
	http.Redirect(q.w, q.r, "/terminals/"+url.PathEscape(id)+"?done="+url.QueryEscape(action), http.StatusSeeOther)
}

// sendCommand queues a remote command for a terminal.
func (c *Console) sendCommand(q *request, id string) {
	ctx, cancel := q.ctx()
	defer cancel()
	f := q.r.PostForm
	ttl := time.Hour
	if d, err := time.ParseDuration(f.Get("ttl")); err == nil {
		ttl = d
	}
	_, err := c.admin.SendCommand(ctx, &pb.SendCommandRequest{TerminalId: id, Type: pb.CommandType(pb.CommandType_value["COMMAND_TYPE_"+f.Get("type")]), Ttl: durationpb.New(ttl)})
	if err != nil {
		if ce := q.failed(err); ce != nil {
			q.w.WriteHeader(httpStatus(ce))
			c.showTerminal(q, &view{Err: ce.Message, Fields: ce.Fields, Form: f})
		}
		return
	}
	http.Redirect(q.w, q.r, "/terminals/"+url.PathEscape(id)+"?done=command", http.StatusSeeOther)
}
