package server

import (
	"context"
	"sort"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/fleet"
)

// Bounds of operator-chosen durations.
const (
	minEnrollmentTTL = time.Minute
	maxEnrollmentTTL = 30 * 24 * time.Hour
	minCommandTTL    = time.Minute
	maxCommandTTL    = 30 * 24 * time.Hour
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
	got, err := a.s.eng.Fleet.CreateMerchant(ctx, fleet.Merchant{
		ID: m.GetMerchantId(), LegalName: m.GetLegalName(), DisplayName: m.GetDisplayName(), MCC: m.GetMcc(),
		Currency: m.GetCurrency(), Address: addressFromPB(m.GetAddress()),
		CrossTerminalRefunds: m.GetAllowCrossTerminalRefunds(),
	}, actor(ctx))
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
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
	m, err := a.s.eng.Fleet.Merchant(req.GetMerchantId())
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
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
	got, err := a.s.eng.Fleet.UpdateMerchant(ctx, m.GetMerchantId(), u, actor(ctx))
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
	}
	return &pb.UpdateMerchantResponse{Merchant: merchantToPB(got)}, nil
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
		return a.s.eng.Fleet.ListMerchants(n, req.GetPageToken(), req.GetIncludeArchived())
	}, merchantToPB)
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
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
	got, err := a.s.eng.Fleet.CreateStore(ctx, fleet.Store{
		MerchantID: st.GetMerchantId(), ID: st.GetStoreId(), Name: st.GetName(),
		Address: addressFromPB(st.GetAddress()), TimeZone: st.GetTimeZone(),
	}, actor(ctx))
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
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
		return a.s.eng.Fleet.ListStores(req.GetMerchantId(), n, req.GetPageToken(), req.GetIncludeArchived())
	}, storeToPB)
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
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
	p, err := a.s.eng.Fleet.Provision(ctx, fleet.ProvisionRequest{
		Serial: req.GetSerialNumber(), MerchantID: req.GetMerchantId(), StoreID: req.GetStoreId(),
		Label: req.GetLabel(), EnrollmentTTL: ttl,
	}, actor(ctx))
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
	}
	active := a.s.eng.Fleet.ActiveSigningKey()
	return &pb.ProvisionTerminalResponse{
		TerminalId:     p.Terminal.ID,
		EnrollmentCode: p.EnrollmentCode,
		ExpiresAt:      timestamppb.New(p.Expires),
		Terminal:       terminalToPB(p.Terminal),
		// The key the terminal's identities are signed with, to be pinned
		// out of band.
		SigningKeyId:          active.KeyID,
		SigningKeyFingerprint: active.Fingerprint(),
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
	t, err := a.s.eng.Fleet.Terminal(req.GetTerminalId())
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
	}
	h, err := a.s.eng.Fleet.StatusHistory(ctx, t.ID)
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
	}
	return &pb.GetTerminalResponse{Terminal: terminalToPB(t), StatusHistory: historyToPB(h)}, nil
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
		return a.s.eng.Fleet.ListTerminals(filter, n, req.GetPageToken())
	}, terminalToPB)
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
	}
	return &pb.ListTerminalsResponse{Terminals: terms, NextPageToken: next}, nil
}

// SuspendTerminal suspends a terminal.
func (a *adminService) SuspendTerminal(ctx context.Context, req *pb.SuspendTerminalRequest) (*pb.SuspendTerminalResponse, error) {
	if err := terminalReq(req.GetTerminalId(), req.GetReason(), false); err != nil {
		return nil, err
	}
	t, err := a.s.eng.Fleet.Suspend(ctx, req.GetTerminalId(), req.GetReason(), actor(ctx))
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
	}
	return &pb.SuspendTerminalResponse{Terminal: terminalToPB(t)}, nil
}

// ReactivateTerminal lifts a suspension.
func (a *adminService) ReactivateTerminal(ctx context.Context, req *pb.ReactivateTerminalRequest) (*pb.ReactivateTerminalResponse, error) {
	if err := terminalReq(req.GetTerminalId(), req.GetReason(), false); err != nil {
		return nil, err
	}
	t, err := a.s.eng.Fleet.Reactivate(ctx, req.GetTerminalId(), req.GetReason(), actor(ctx))
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
	}
	return &pb.ReactivateTerminalResponse{Terminal: terminalToPB(t)}, nil
}

// RetireTerminal retires a terminal for good.
func (a *adminService) RetireTerminal(ctx context.Context, req *pb.RetireTerminalRequest) (*pb.RetireTerminalResponse, error) {
	if err := terminalReq(req.GetTerminalId(), req.GetReason(), false); err != nil {
		return nil, err
	}
	t, err := a.s.eng.Fleet.Retire(ctx, req.GetTerminalId(), req.GetReason(), actor(ctx))
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
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
	code, exp, err := a.s.eng.Fleet.ReissueEnrollment(ctx, req.GetTerminalId(), ttl, actor(ctx))
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
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
	t, err := a.s.eng.Fleet.Rebind(ctx, req.GetTerminalId(), req.GetMerchantId(), req.GetStoreId(), req.GetReason(), actor(ctx))
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
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
	c, err := a.s.eng.Fleet.SendCommand(ctx, req.GetTerminalId(), fleet.CommandType(req.GetType()), req.GetParameters(), ttl, actor(ctx))
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
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
		return a.s.eng.Fleet.ListCommands(ctx, req.GetTerminalId(), n, req.GetPageToken())
	}, commandToPB)
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
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
	rep, err := a.s.eng.Fleet.Report(req.GetMerchantId(), req.GetStoreId())
	if err != nil {
		return nil, a.s.toStatus(ctx, err)
	}
	out := &pb.GetFleetReportResponse{
		GenerateTime:           timestamppb.New(rep.Generated),
		TotalTerminals:         rep.Total,
		ByConnectivity:         countsToPB(rep.ByConnectivity),
		ByState:                countsToPB(rep.ByState),
		FaultsByComponent:      countsToPB(rep.FaultsByComponent),
		FirmwareVersions:       countsToPB(rep.FirmwareVersions),
		AppVersions:            countsToPB(rep.AppVersions),
		ConfigVersions:         countsToPB(rep.ConfigVersions),
		MerchantMismatchAlerts: rep.MismatchAlerts,
		MismatchTerminals:      countsToPB(rep.MismatchTerminals),
	}
	for _, f := range rep.Faults {
		out.Faults = append(out.Faults, &pb.FaultCount{MerchantId: f.MerchantID, StoreId: f.StoreID, Component: f.Component, Count: f.Count})
	}
	out.Authorizations, out.Approvals = a.s.eng.Payments().Stats()
	if out.Authorizations > 0 {
		out.ApprovalRate = float64(out.Approvals) / float64(out.Authorizations)
	}
	return out, nil
}
