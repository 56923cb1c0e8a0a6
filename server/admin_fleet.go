package server

import (
	"context"
	"slices"
	"sort"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/auth"
	"github.com/posfleet/posfleet/server/fleet"
	"github.com/posfleet/posfleet/server/operator"
	"github.com/posfleet/posfleet/server/payment"
)

// Bounds of operator-chosen durations.
const (
	minEnrollmentTTL = time.Minute
	maxEnrollmentTTL = 30 * 24 * time.Hour
	minCommandTTL    = time.Minute
	maxCommandTTL    = 30 * 24 * time.Hour
	minTokenTTL      = time.Minute
	maxTokenTTL      = 10 * 365 * 24 * time.Hour
)

// validateMerchant checks the fields of a merchant to create.
func validateMerchant(v *violations, m *pb.Merchant) {
	if m == nil {
		v.add("merchant", "is required")
		return
	}
	v.merchantID("merchant.merchant_id", m.GetMerchantId())
	v.text("merchant.legal_name", m.GetLegalName(), maxNameLen)
	v.optional("merchant.display_name", m.GetDisplayName(), maxNameLen)
	if v.required("merchant.mcc", m.GetMcc()) && v.match("merchant.mcc", m.GetMcc(), mccFormat, "exactly 4 digits") {
		v.mccForMID("merchant.mcc", m.GetMerchantId(), m.GetMcc())
	}
	if v.required("merchant.currency", m.GetCurrency()) {
		v.match("merchant.currency", m.GetCurrency(), currencyFormat, "an ISO 4217 code such as \"NZD\"")
	}
	v.address("merchant.address", m.GetAddress())
}

// CreateMerchant creates a merchant.
func (a *adminService) CreateMerchant(ctx context.Context, req *pb.CreateMerchantRequest) (*pb.CreateMerchantResponse, error) {
	var v violations
	validateMerchant(&v, req.GetMerchant())
	if err := v.err(); err != nil {
		return nil, err
	}
	m := req.GetMerchant()
	got, err := a.s.fleet.CreateMerchant(ctx, fleet.Merchant{
		ID: m.GetMerchantId(), LegalName: m.GetLegalName(), DisplayName: m.GetDisplayName(), MCC: m.GetMcc(),
		Currency: m.GetCurrency(), Address: addressFromPB(m.GetAddress()),
		CrossTerminalRefunds: m.GetAllowCrossTerminalRefunds(),
	}, actor(ctx))
	if err != nil {
		return nil, a.s.fleetStatus(ctx, err)
	}
	return &pb.CreateMerchantResponse{Merchant: merchantToPB(got)}, nil
}

// GetMerchant returns one merchant.
func (a *adminService) GetMerchant(ctx context.Context, req *pb.GetMerchantRequest) (*pb.GetMerchantResponse, error) {
	var v violations
	v.merchantID("merchant_id", req.GetMerchantId())
	if err := v.err(); err != nil {
		return nil, err
	}
	m, err := a.s.fleet.Merchant(req.GetMerchantId())
	if err != nil {
		return nil, a.s.fleetStatus(ctx, err)
	}
	return &pb.GetMerchantResponse{Merchant: merchantToPB(m)}, nil
}

// UpdateMerchant changes a merchant and bumps its identity version.
func (a *adminService) UpdateMerchant(ctx context.Context, req *pb.UpdateMerchantRequest) (*pb.UpdateMerchantResponse, error) {
	var v violations
	m := req.GetMerchant()
	if m == nil {
		v.add("merchant", "is required")
		return nil, v.err()
	}
	v.merchantID("merchant.merchant_id", m.GetMerchantId())
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		for _, f := range []struct{ name, value string }{
			{"legal_name", m.GetLegalName()}, {"display_name", m.GetDisplayName()}, {"mcc", m.GetMcc()}, {"currency", m.GetCurrency()},
		} {
			if f.value != "" {
				paths = append(paths, f.name)
			}
		}
		if m.GetAddress() != nil {
			paths = append(paths, "address")
		}
		if m.GetAllowCrossTerminalRefunds() {
			paths = append(paths, "allow_cross_terminal_refunds")
		}
		if len(paths) == 0 {
			v.add("merchant", "must set at least one of legal_name, display_name, mcc, currency, address, allow_cross_terminal_refunds")
		}
	}
	var u fleet.MerchantUpdate
	for i, p := range paths {
		switch p {
		case "legal_name":
			v.text("merchant.legal_name", m.GetLegalName(), maxNameLen)
			u.LegalName = &m.LegalName
		case "display_name":
			v.optional("merchant.display_name", m.GetDisplayName(), maxNameLen)
			u.DisplayName = &m.DisplayName
		case "mcc":
			if v.required("merchant.mcc", m.GetMcc()) && v.match("merchant.mcc", m.GetMcc(), mccFormat, "exactly 4 digits") {
				v.mccForMID("merchant.mcc", m.GetMerchantId(), m.GetMcc())
			}
			u.MCC = &m.Mcc
		case "currency":
			if v.required("merchant.currency", m.GetCurrency()) {
				v.match("merchant.currency", m.GetCurrency(), currencyFormat, "an ISO 4217 code such as \"NZD\"")
			}
			u.Currency = &m.Currency
		case "address":
			v.address("merchant.address", m.GetAddress())
			addr := addressFromPB(m.GetAddress())
			u.Address = &addr
		case "allow_cross_terminal_refunds":
			u.CrossTerminalRefunds = &m.AllowCrossTerminalRefunds
		default:
			v.add(fieldAt("update_mask.paths", i), "must be one of legal_name, display_name, mcc, currency, address, allow_cross_terminal_refunds")
		}
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	if u.Currency != nil {
		if err := a.currencyMayChange(ctx, m.GetMerchantId(), *u.Currency); err != nil {
			return nil, err
		}
	}
	got, err := a.s.fleet.UpdateMerchant(ctx, m.GetMerchantId(), u, actor(ctx))
	if err != nil {
		return nil, a.s.fleetStatus(ctx, err)
	}
	return &pb.UpdateMerchantResponse{Merchant: merchantToPB(got)}, nil
}

// currencyMayChange refuses to change the currency of a merchant that has
// payments: its ledger, batches and settlement reports are in the old
// currency, and totals cannot add two currencies.
func (a *adminService) currencyMayChange(ctx context.Context, merchantID, currency string) error {
	cur, err := a.s.fleet.Merchant(merchantID)
	if err != nil {
		return a.s.fleetStatus(ctx, err)
	}
	if cur.Currency == currency || a.s.payments == nil {
		return nil
	}
	txs, _, err := a.s.payments.ListTransactions(ctx, payment.TxFilter{MerchantID: merchantID}, 1, "")
	if err != nil {
		return a.s.paymentStatus(ctx, err)
	}
	if len(txs) > 0 {
		return statusWithReason(codes.FailedPrecondition, "MERCHANT_HAS_PAYMENTS",
			"merchant "+merchantID+" has payments in "+cur.Currency+"; its currency cannot change")
	}
	return nil
}

// ListMerchants lists merchants by ID.
func (a *adminService) ListMerchants(ctx context.Context, req *pb.ListMerchantsRequest) (*pb.ListMerchantsResponse, error) {
	var v violations
	n := v.pageSize("page_size", req.GetPageSize())
	v.optional("page_token", req.GetPageToken(), 512)
	if err := v.err(); err != nil {
		return nil, err
	}
	ms, next, err := boundedPage(a.s.cfg.MaxPageBytes, n, func(n int) ([]fleet.Merchant, string, error) {
		return a.s.fleet.ListMerchants(n, req.GetPageToken(), req.GetIncludeArchived())
	}, merchantToPB)
	if err != nil {
		return nil, a.s.fleetStatus(ctx, err)
	}
	return &pb.ListMerchantsResponse{Merchants: ms, NextPageToken: next}, nil
}

// CreateStore creates a store of a merchant.
func (a *adminService) CreateStore(ctx context.Context, req *pb.CreateStoreRequest) (*pb.CreateStoreResponse, error) {
	var v violations
	st := req.GetStore()
	if st == nil {
		v.add("store", "is required")
		return nil, v.err()
	}
	v.merchantID("store.merchant_id", st.GetMerchantId())
	v.storeID("store.store_id", st.GetStoreId())
	v.text("store.name", st.GetName(), maxNameLen)
	v.address("store.address", st.GetAddress())
	v.timeZone("store.time_zone", st.GetTimeZone())
	if err := v.err(); err != nil {
		return nil, err
	}
	got, err := a.s.fleet.CreateStore(ctx, fleet.Store{
		MerchantID: st.GetMerchantId(), ID: st.GetStoreId(), Name: st.GetName(),
		Address: addressFromPB(st.GetAddress()), TimeZone: st.GetTimeZone(),
	}, actor(ctx))
	if err != nil {
		return nil, a.s.fleetStatus(ctx, err)
	}
	return &pb.CreateStoreResponse{Store: storeToPB(got)}, nil
}

// ListStores lists the stores of a merchant or of all merchants.
func (a *adminService) ListStores(ctx context.Context, req *pb.ListStoresRequest) (*pb.ListStoresResponse, error) {
	var v violations
	if req.GetMerchantId() != "" {
		v.merchantID("merchant_id", req.GetMerchantId())
	}
	n := v.pageSize("page_size", req.GetPageSize())
	v.optional("page_token", req.GetPageToken(), 512)
	if err := v.err(); err != nil {
		return nil, err
	}
	ss, next, err := boundedPage(a.s.cfg.MaxPageBytes, n, func(n int) ([]fleet.Store, string, error) {
		return a.s.fleet.ListStores(req.GetMerchantId(), n, req.GetPageToken(), req.GetIncludeArchived())
	}, storeToPB)
	if err != nil {
		return nil, a.s.fleetStatus(ctx, err)
	}
	return &pb.ListStoresResponse{Stores: ss, NextPageToken: next}, nil
}

// ProvisionTerminal creates a terminal and its enrollment code.
func (a *adminService) ProvisionTerminal(ctx context.Context, req *pb.ProvisionTerminalRequest) (*pb.ProvisionTerminalResponse, error) {
	var v violations
	v.serial("serial_number", req.GetSerialNumber())
	v.merchantID("merchant_id", req.GetMerchantId())
	v.storeID("store_id", req.GetStoreId())
	v.optional("label", req.GetLabel(), maxLabelLen)
	ttl := v.duration("enrollment_ttl", req.GetEnrollmentTtl(), minEnrollmentTTL, maxEnrollmentTTL)
	if err := v.err(); err != nil {
		return nil, err
	}
	p, err := a.s.fleet.Provision(ctx, fleet.ProvisionRequest{
		Serial: req.GetSerialNumber(), MerchantID: req.GetMerchantId(), StoreID: req.GetStoreId(),
		Label: req.GetLabel(), EnrollmentTTL: ttl,
	}, actor(ctx))
	if err != nil {
		return nil, a.s.fleetStatus(ctx, err)
	}
	return &pb.ProvisionTerminalResponse{
		TerminalId:     p.Terminal.ID,
		EnrollmentCode: p.EnrollmentCode,
		ExpiresAt:      timestamppb.New(p.Expires),
		Terminal:       terminalToPB(p.Terminal),
	}, nil
}

// terminalReq validates a request naming one terminal and an optional reason.
func terminalReq(id, reason string, reasonRequired bool) error {
	var v violations
	v.terminalID("terminal_id", id)
	if reasonRequired {
		v.text("reason", reason, maxReasonLen)
	} else {
		v.optional("reason", reason, maxReasonLen)
	}
	return v.err()
}

// GetTerminal returns one terminal.
func (a *adminService) GetTerminal(ctx context.Context, req *pb.GetTerminalRequest) (*pb.GetTerminalResponse, error) {
	if err := terminalReq(req.GetTerminalId(), "", false); err != nil {
		return nil, err
	}
	t, err := a.s.fleet.Terminal(req.GetTerminalId())
	if err != nil {
		return nil, a.s.fleetStatus(ctx, err)
	}
	return &pb.GetTerminalResponse{Terminal: terminalToPB(t)}, nil
}

// ListTerminals lists terminals with filters.
func (a *adminService) ListTerminals(ctx context.Context, req *pb.ListTerminalsRequest) (*pb.ListTerminalsResponse, error) {
	var v violations
	if req.GetMerchantId() != "" {
		v.merchantID("merchant_id", req.GetMerchantId())
	}
	if req.GetStoreId() != "" {
		v.storeID("store_id", req.GetStoreId())
		if req.GetMerchantId() == "" {
			v.add("merchant_id", "is required with store_id")
		}
	}
	v.enum("state", int32(req.GetState()), pb.TerminalState_name, true)
	v.enum("connectivity", int32(req.GetConnectivity()), pb.Connectivity_name, true)
	n := v.pageSize("page_size", req.GetPageSize())
	v.optional("page_token", req.GetPageToken(), 512)
	if err := v.err(); err != nil {
		return nil, err
	}
	filter := fleet.TerminalFilter{
		MerchantID: req.GetMerchantId(), StoreID: req.GetStoreId(),
		State: fleet.State(req.GetState()), Connectivity: fleet.Connectivity(req.GetConnectivity()),
	}
	terms, next, err := boundedPage(a.s.cfg.MaxPageBytes, n, func(n int) ([]fleet.Terminal, string, error) {
		return a.s.fleet.ListTerminals(filter, n, req.GetPageToken())
	}, terminalToPB)
	if err != nil {
		return nil, a.s.fleetStatus(ctx, err)
	}
	return &pb.ListTerminalsResponse{Terminals: terms, NextPageToken: next}, nil
}

// SuspendTerminal suspends a terminal.
func (a *adminService) SuspendTerminal(ctx context.Context, req *pb.SuspendTerminalRequest) (*pb.SuspendTerminalResponse, error) {
	if err := terminalReq(req.GetTerminalId(), req.GetReason(), false); err != nil {
		return nil, err
	}
	t, err := a.s.fleet.Suspend(ctx, req.GetTerminalId(), req.GetReason(), actor(ctx))
	if err != nil {
		return nil, a.s.fleetStatus(ctx, err)
	}
	return &pb.SuspendTerminalResponse{Terminal: terminalToPB(t)}, nil
}

// ReactivateTerminal lifts a suspension.
func (a *adminService) ReactivateTerminal(ctx context.Context, req *pb.ReactivateTerminalRequest) (*pb.ReactivateTerminalResponse, error) {
	if err := terminalReq(req.GetTerminalId(), req.GetReason(), false); err != nil {
		return nil, err
	}
	t, err := a.s.fleet.Reactivate(ctx, req.GetTerminalId(), req.GetReason(), actor(ctx))
	if err != nil {
		return nil, a.s.fleetStatus(ctx, err)
	}
	return &pb.ReactivateTerminalResponse{Terminal: terminalToPB(t)}, nil
}

// RetireTerminal retires a terminal for good.
func (a *adminService) RetireTerminal(ctx context.Context, req *pb.RetireTerminalRequest) (*pb.RetireTerminalResponse, error) {
	if err := terminalReq(req.GetTerminalId(), req.GetReason(), false); err != nil {
		return nil, err
	}
	t, err := a.s.fleet.Retire(ctx, req.GetTerminalId(), req.GetReason(), actor(ctx))
	if err != nil {
		return nil, a.s.fleetStatus(ctx, err)
	}
	return &pb.RetireTerminalResponse{Terminal: terminalToPB(t)}, nil
}

// ReissueEnrollment issues a new enrollment code.
func (a *adminService) ReissueEnrollment(ctx context.Context, req *pb.ReissueEnrollmentRequest) (*pb.ReissueEnrollmentResponse, error) {
	var v violations
	v.terminalID("terminal_id", req.GetTerminalId())
	ttl := v.duration("enrollment_ttl", req.GetEnrollmentTtl(), minEnrollmentTTL, maxEnrollmentTTL)
	if err := v.err(); err != nil {
		return nil, err
	}
	code, exp, err := a.s.fleet.ReissueEnrollment(ctx, req.GetTerminalId(), ttl, actor(ctx))
	if err != nil {
		return nil, a.s.fleetStatus(ctx, err)
	}
	return &pb.ReissueEnrollmentResponse{EnrollmentCode: code, ExpiresAt: timestamppb.New(exp)}, nil
}

// RebindTerminal moves a terminal to another store or merchant.
func (a *adminService) RebindTerminal(ctx context.Context, req *pb.RebindTerminalRequest) (*pb.RebindTerminalResponse, error) {
	var v violations
	v.terminalID("terminal_id", req.GetTerminalId())
	v.merchantID("merchant_id", req.GetMerchantId())
	v.storeID("store_id", req.GetStoreId())
	v.text("reason", req.GetReason(), maxReasonLen)
	if err := v.err(); err != nil {
		return nil, err
	}
	t, err := a.s.fleet.Rebind(ctx, req.GetTerminalId(), req.GetMerchantId(), req.GetStoreId(), req.GetReason(), actor(ctx))
	if err != nil {
		return nil, a.s.fleetStatus(ctx, err)
	}
	return &pb.RebindTerminalResponse{Terminal: terminalToPB(t)}, nil
}

// SendCommand queues a remote command.
func (a *adminService) SendCommand(ctx context.Context, req *pb.SendCommandRequest) (*pb.SendCommandResponse, error) {
	var v violations
	v.terminalID("terminal_id", req.GetTerminalId())
	v.enum("type", int32(req.GetType()), pb.CommandType_name, false)
	if n := len(req.GetParameters()); n > maxParams {
		v.add("parameters", "must hold at most %d entries (got %d)", maxParams, n)
	} else {
		keys := make([]string, 0, n)
		for k := range req.GetParameters() {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if !paramKeyFormat.MatchString(k) {
				v.add("parameters", "keys must be 1-64 letters, digits, '.', '_' or '-'")
				continue
			}
			v.optional("parameters["+k+"]", req.GetParameters()[k], maxParamValue)
		}
	}
	ttl := v.duration("ttl", req.GetTtl(), minCommandTTL, maxCommandTTL)
	if err := v.err(); err != nil {
		return nil, err
	}
	c, err := a.s.fleet.SendCommand(ctx, req.GetTerminalId(), fleet.CommandType(req.GetType()), req.GetParameters(), ttl, actor(ctx))
	if err != nil {
		return nil, a.s.fleetStatus(ctx, err)
	}
	return &pb.SendCommandResponse{Command: commandToPB(c)}, nil
}

// ListCommands lists a terminal's commands, newest first.
func (a *adminService) ListCommands(ctx context.Context, req *pb.ListCommandsRequest) (*pb.ListCommandsResponse, error) {
	var v violations
	v.terminalID("terminal_id", req.GetTerminalId())
	n := v.pageSize("page_size", req.GetPageSize())
	v.optional("page_token", req.GetPageToken(), 512)
	if err := v.err(); err != nil {
		return nil, err
	}
	cs, next, err := boundedPage(a.s.cfg.MaxPageBytes, n, func(n int) ([]fleet.Command, string, error) {
		return a.s.fleet.ListCommands(ctx, req.GetTerminalId(), n, req.GetPageToken())
	}, commandToPB)
	if err != nil {
		return nil, a.s.fleetStatus(ctx, err)
	}
	return &pb.ListCommandsResponse{Commands: cs, NextPageToken: next}, nil
}

// GetFleetReport reports fleet health.
func (a *adminService) GetFleetReport(ctx context.Context, req *pb.GetFleetReportRequest) (*pb.GetFleetReportResponse, error) {
	var v violations
	if req.GetMerchantId() != "" {
		v.merchantID("merchant_id", req.GetMerchantId())
	}
	if req.GetStoreId() != "" {
		v.storeID("store_id", req.GetStoreId())
		if req.GetMerchantId() == "" {
			v.add("merchant_id", "is required with store_id")
		}
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	rep, err := a.s.fleet.Report(req.GetMerchantId(), req.GetStoreId())
	if err != nil {
		return nil, a.s.fleetStatus(ctx, err)
	}
	out := &pb.GetFleetReportResponse{
		GenerateTime:      timestamppb.New(rep.Generated),
		TotalTerminals:    rep.Total,
		ByConnectivity:    countsToPB(rep.ByConnectivity),
		ByState:           countsToPB(rep.ByState),
		FaultsByComponent: countsToPB(rep.FaultsByComponent),
		FirmwareVersions:  countsToPB(rep.FirmwareVersions),
		AppVersions:       countsToPB(rep.AppVersions),
		ConfigVersions:    countsToPB(rep.ConfigVersions),
	}
	for _, f := range rep.Faults {
		out.Faults = append(out.Faults, &pb.FaultCount{MerchantId: f.MerchantID, StoreId: f.StoreID, Component: f.Component, Count: f.Count})
	}
	if h := a.s.hooks.paymentStats; h != nil {
		out.Authorizations, out.Approvals = h()
		if out.Authorizations > 0 {
			out.ApprovalRate = float64(out.Approvals) / float64(out.Authorizations)
		}
	}
	byTerminal := a.s.audit.MismatchesByTerminal()
	mismatch := map[string]uint64{}
	if req.GetMerchantId() == "" {
		out.MerchantMismatchAlerts = a.s.audit.Count(audit.MerchantMismatch)
		mismatch = byTerminal
	} else {
		for _, id := range rep.Members {
			if n := byTerminal[id]; n > 0 {
				mismatch[id] = n
				out.MerchantMismatchAlerts += n
			}
		}
	}
	out.MismatchTerminals = countsToPB(fleet.TopCounts(sortedCounts(mismatch), fleet.ReportTop))
	return out, nil
}

// sortedCounts returns m as counts, most first, ties by key.
func sortedCounts(m map[string]uint64) []fleet.Count {
	out := make([]fleet.Count, 0, len(m))
	for k, n := range m {
		out = append(out, fleet.Count{Key: k, Count: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Key < out[j].Key
	})
	return out
}

// ListAuditEvents lists audit events, newest first.
func (a *adminService) ListAuditEvents(ctx context.Context, req *pb.ListAuditEventsRequest) (*pb.ListAuditEventsResponse, error) {
	var v violations
	v.enum("type", int32(req.GetType()), pb.AuditEventType_name, true)
	if req.GetTerminalId() != "" {
		v.terminalID("terminal_id", req.GetTerminalId())
	}
	if req.GetMerchantId() != "" {
		v.merchantID("merchant_id", req.GetMerchantId())
	}
	start := v.timestamp("start_time", req.GetStartTime())
	end := v.timestamp("end_time", req.GetEndTime())
	if !start.IsZero() && !end.IsZero() && !start.Before(end) {
		v.add("end_time", "must be after start_time")
	}
	n := v.pageSize("page_size", req.GetPageSize())
	v.optional("page_token", req.GetPageToken(), 512)
	if err := v.err(); err != nil {
		return nil, err
	}
	// Read our own writes: events recorded before this call are listed.
	if err := a.s.audit.Flush(ctx); err != nil {
		return nil, toStatus(ctx, a.s.logger, err)
	}
	filter := audit.Filter{
		Type: audit.Type(req.GetType()), TerminalID: req.GetTerminalId(), MerchantID: req.GetMerchantId(),
		Start: start, End: end,
	}
	evs, next, err := boundedPage(a.s.cfg.MaxPageBytes, n, func(n int) ([]audit.Event, string, error) {
		return a.s.audit.List(ctx, filter, n, req.GetPageToken())
	}, auditEventToPB)
	if err != nil {
		return nil, toStatus(ctx, a.s.logger, err)
	}
	return &pb.ListAuditEventsResponse{Events: evs, NextPageToken: next}, nil
}

func auditEventToPB(e audit.Event) *pb.AuditEvent {
	return &pb.AuditEvent{
		EventId: strconv.FormatUint(e.ID, 10), Type: pb.AuditEventType(e.Type), Time: timestamppb.New(e.Time),
		Actor: e.Actor, TerminalId: e.TerminalID, MerchantId: e.MerchantID, StoreId: e.StoreID,
		Message: e.Message, Attributes: e.Attributes, Peer: e.Peer,
	}
}

func tokenToPB(t operator.Token) *pb.AdminToken {
	return &pb.AdminToken{
		TokenId: t.ID, Name: t.Name, Role: pb.Role(t.Role), CreateTime: timestampOrNil(t.Created),
		ExpireTime: timestampOrNil(t.Expires), Revoked: t.Revoked,
	}
}

// CreateAdminToken creates an admin token; the secret is returned once.
func (a *adminService) CreateAdminToken(ctx context.Context, req *pb.CreateAdminTokenRequest) (*pb.CreateAdminTokenResponse, error) {
	var v violations
	v.text("name", req.GetName(), 64)
	v.enum("role", int32(req.GetRole()), pb.Role_name, false)
	ttl := v.duration("ttl", req.GetTtl(), minTokenTTL, maxTokenTTL)
	if err := v.err(); err != nil {
		return nil, err
	}
	who := actor(ctx)
	secret, tok, err := a.s.tokens.Create(ctx, req.GetName(), auth.Role(req.GetRole()), ttl, audit.Event{Actor: who.Name, Peer: who.Peer})
	if err != nil {
		return nil, a.s.fleetStatus(ctx, err)
	}
	return &pb.CreateAdminTokenResponse{Token: secret, AdminToken: tokenToPB(tok)}, nil
}

// RevokeAdminToken revokes an admin token.
func (a *adminService) RevokeAdminToken(ctx context.Context, req *pb.RevokeAdminTokenRequest) (*pb.RevokeAdminTokenResponse, error) {
	var v violations
	if v.required("token_id", req.GetTokenId()) {
		v.match("token_id", req.GetTokenId(), tokenIDFormat, "a token ID such as \"tok_0123456789ab\"")
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	who := actor(ctx)
	tok, err := a.s.tokens.Revoke(ctx, req.GetTokenId(), audit.Event{Actor: who.Name, Peer: who.Peer})
	if err != nil {
		return nil, a.s.fleetStatus(ctx, err)
	}
	return &pb.RevokeAdminTokenResponse{AdminToken: tokenToPB(tok)}, nil
}

// ListAdminTokens lists admin tokens without their secrets, oldest first.
// The page token is the ID of the last token of the previous page.
func (a *adminService) ListAdminTokens(ctx context.Context, req *pb.ListAdminTokensRequest) (*pb.ListAdminTokensResponse, error) {
	var v violations
	n := v.pageSize("page_size", req.GetPageSize())
	v.optional("page_token", req.GetPageToken(), 64)
	if err := v.err(); err != nil {
		return nil, err
	}
	all := a.s.tokens.List()
	start := 0
	if tok := req.GetPageToken(); tok != "" {
		i := slices.IndexFunc(all, func(t operator.Token) bool { return t.ID == tok })
		if i < 0 {
			v.add("page_token", "is not a token this list returned")
			return nil, v.err()
		}
		start = i + 1
	}
	toks, next, err := boundedPage(a.s.cfg.MaxPageBytes, n, func(n int) ([]operator.Token, string, error) {
		page := all[start:min(start+n, len(all))]
		if start+n < len(all) {
			return page, page[len(page)-1].ID, nil
		}
		return page, "", nil
	}, tokenToPB)
	if err != nil {
		return nil, a.s.fleetStatus(ctx, err)
	}
	return &pb.ListAdminTokensResponse{AdminTokens: toks, NextPageToken: next}, nil
}
