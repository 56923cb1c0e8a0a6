package server

import (
	"context"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/auth"
	"github.com/posfleet/posfleet/server/configpush"
	"github.com/posfleet/posfleet/server/fleet"
	"github.com/posfleet/posfleet/server/operator"
	"github.com/posfleet/posfleet/server/payment"
)

// Conversions between the domains' types and protocol messages: fleet,
// config push, payments, audit and admin tokens. The config conversions
// also check what the wire format alone can get wrong (malformed
// durations and times of day), into the request's violations.

// actor returns who is calling, for the domain's audit events.
func actor(ctx context.Context) audit.Actor {
	a := audit.Actor{Name: "anonymous", Peer: peerAddr(ctx)}
	if p, ok := auth.FromContext(ctx); ok {
		a.Name = p.Actor()
	}
	return a
}

// timestampOrNil converts t, leaving the zero time unset.
func timestampOrNil(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func addressFromPB(a *pb.Address) fleet.Address {
	return fleet.Address{
		Line1: a.GetLine1(), Line2: a.GetLine2(), City: a.GetCity(), Region: a.GetRegion(),
		PostalCode: a.GetPostalCode(), Country: a.GetCountry(),
	}
}

func addressToPB(a fleet.Address) *pb.Address {
	if a == (fleet.Address{}) {
		return nil
	}
	return &pb.Address{Line1: a.Line1, Line2: a.Line2, City: a.City, Region: a.Region, PostalCode: a.PostalCode, Country: a.Country}
}

func merchantToPB(m fleet.Merchant) *pb.Merchant {
	return &pb.Merchant{
		MerchantId: m.ID, LegalName: m.LegalName, DisplayName: m.DisplayName, Mcc: m.MCC, Currency: m.Currency,
		Address: addressToPB(m.Address), IdentityVersion: m.IdentityVersion,
		CreateTime: timestampOrNil(m.Created), UpdateTime: timestampOrNil(m.Updated), ArchiveTime: timestampOrNil(m.Archived),
		AllowCrossTerminalRefunds: m.CrossTerminalRefunds,
	}
}

func storeToPB(s fleet.Store) *pb.Store {
	return &pb.Store{
		MerchantId: s.MerchantID, StoreId: s.ID, Name: s.Name, Address: addressToPB(s.Address),
		TimeZone: s.TimeZone, CreateTime: timestampOrNil(s.Created), ArchiveTime: timestampOrNil(s.Archived),
	}
}

func deviceToPB(d fleet.Device) *pb.DeviceInfo {
	if d == (fleet.Device{}) {
		return nil
	}
	return &pb.DeviceInfo{Model: d.Model, Manufacturer: d.Manufacturer, FirmwareVersion: d.Firmware, AppVersion: d.App}
}

func statusFromPB(s *pb.TerminalStatus) fleet.Status {
	if s == nil {
		return fleet.Status{}
	}
	st := fleet.Status{
		FirmwareVersion: s.GetFirmwareVersion(), AppVersion: s.GetAppVersion(), ConfigVersion: s.GetConfigVersion(),
		Charging: s.GetCharging(), Paper: fleet.PaperStatus(s.GetPaper()), Network: fleet.NetworkType(s.GetNetwork()),
		Uptime: s.GetUptime().AsDuration(), QueuedOffline: s.GetQueuedOfflineTransactions(),
	}
	if s.BatteryPercent != nil {
		st.HasBattery, st.BatteryPercent = true, s.GetBatteryPercent()
	}
	if s.SignalDbm != nil {
		st.HasSignal, st.SignalDBm = true, s.GetSignalDbm()
	}
	return st
}

func statusToPB(s fleet.Status) *pb.TerminalStatus {
	out := &pb.TerminalStatus{
		FirmwareVersion: s.FirmwareVersion, AppVersion: s.AppVersion, ConfigVersion: s.ConfigVersion,
		Charging: s.Charging, Paper: pb.PaperStatus(s.Paper), Network: pb.NetworkType(s.Network),
		QueuedOfflineTransactions: s.QueuedOffline,
	}
	if s.Uptime > 0 {
		out.Uptime = durationpb.New(s.Uptime)
	}
	if s.HasBattery {
		out.BatteryPercent = &s.BatteryPercent
	}
	if s.HasSignal {
		out.SignalDbm = &s.SignalDBm
	}
	return out
}

// historyToPB converts a status history, keeping its order.
func historyToPB(h []fleet.StatusSample) []*pb.TerminalStatusSample {
	out := make([]*pb.TerminalStatusSample, len(h))
	for i, s := range h {
		out[i] = &pb.TerminalStatusSample{SampleTime: timestampOrNil(s.Time), Status: statusToPB(s.Status)}
	}
	return out
}

func faultToPB(f fleet.Fault) *pb.Fault {
	return &pb.Fault{Component: f.Component, Code: f.Code, Message: f.Message, OccurTime: timestampOrNil(f.Time), Severity: pb.FaultSeverity(f.Severity)}
}

func terminalToPB(t fleet.Terminal) *pb.Terminal {
	out := &pb.Terminal{
		TerminalId: t.ID, SerialNumber: t.Serial, MerchantId: t.MerchantID, StoreId: t.StoreID, Label: t.Label,
		State: pb.TerminalState(t.State), Connectivity: pb.Connectivity(t.Connectivity), Device: deviceToPB(t.Device),
		LastHeartbeatTime: timestampOrNil(t.LastHeartbeat), DesiredConfigVersion: t.DesiredConfigVersion,
		IdentityVersion: t.IdentityVersion, CreateTime: timestampOrNil(t.Created), RegisterTime: timestampOrNil(t.Registered),
		StateReason: t.StateReason, LastSeenTime: timestampOrNil(t.LastSeen),
	}
	if !t.LastHeartbeat.IsZero() {
		out.LastStatus = statusToPB(t.LastStatus)
	}
	for _, f := range t.RecentFaults {
		out.RecentFaults = append(out.RecentFaults, faultToPB(f))
	}
	return out
}

func identityToPB(id fleet.Identity) *pb.MerchantIdentity {
	return &pb.MerchantIdentity{
		MerchantId: id.MerchantID, LegalName: id.LegalName, DisplayName: id.DisplayName, Mcc: id.MCC,
		StoreId: id.StoreID, StoreName: id.StoreName, Address: addressToPB(id.StoreAddress),
		TerminalId: id.TerminalID, IdentityVersion: id.IdentityVersion, IssueTime: timestampOrNil(id.IssueTime),
		KeyId: id.KeyID, Signature: id.Signature, SignedPayload: id.SignedPayload, PublicKey: id.PublicKey,
		Currency: id.Currency, SignedPayloadV2: id.SignedPayloadV2, SignatureV2: id.SignatureV2,
	}
}

func commandToPB(c fleet.Command) *pb.RemoteCommand {
	return &pb.RemoteCommand{
		CommandId: c.ID, Type: pb.CommandType(c.Type), Parameters: c.Parameters, CreateTime: timestampOrNil(c.Created),
		ExpireTime: timestampOrNil(c.Expires), State: pb.CommandState(c.State), ResultDetail: c.Detail, TerminalId: c.TerminalID,
	}
}

func commandsToPB(cs []fleet.Command) []*pb.RemoteCommand {
	out := make([]*pb.RemoteCommand, len(cs))
	for i, c := range cs {
		out[i] = commandToPB(c)
	}
	return out
}

func countsToPB(cs []fleet.Count) []*pb.KeyCount {
	out := make([]*pb.KeyCount, len(cs))
	for i, c := range cs {
		out[i] = &pb.KeyCount{Key: c.Key, Count: c.Count}
	}
	return out
}

func paymentMoneyToPB(minor int64, currency string) *pb.Money {
	return &pb.Money{MinorUnits: minor, Currency: currency}
}

func totalsToPB(t payment.BatchTotals) *pb.BatchTotals {
	return &pb.BatchTotals{
		SaleCount:      t.SaleCount,
		SaleAmount:     paymentMoneyToPB(t.SaleAmount, t.Currency),
		RefundCount:    t.RefundCount,
		RefundAmount:   paymentMoneyToPB(t.RefundAmount, t.Currency),
		ReversalCount:  t.ReversalCount,
		ReversalAmount: paymentMoneyToPB(t.ReversalAmount, t.Currency),
		PreauthCount:   t.PreauthCount,
		PreauthAmount:  paymentMoneyToPB(t.PreauthAmount, t.Currency),
	}
}

func batchSummaryToPB(b payment.BatchSummary) *pb.BatchSummary {
	out := &pb.BatchSummary{
		TerminalId:   b.TerminalID,
		StoreId:      b.StoreID,
		BatchNumber:  b.Number,
		State:        pb.BatchState(b.State),
		ServerTotals: totalsToPB(b.ServerTotals),
		OpenTime:     timestampOrNil(b.OpenTime),
		CloseTime:    timestampOrNil(b.CloseTime),
	}
	if b.State != payment.BatchStateOpen {
		tt := b.TerminalTotals
		if tt.Currency == "" {
			tt.Currency = b.ServerTotals.Currency
		}
		out.TerminalTotals = totalsToPB(tt)
	}
	return out
}

func transactionToPB(t payment.Transaction) *pb.Transaction {
	out := &pb.Transaction{
		TransactionId:         t.ID,
		RequestId:             t.RequestID,
		Kind:                  pb.TransactionKind(t.Kind),
		TerminalId:            t.TerminalID,
		MerchantId:            t.MerchantID,
		StoreId:               t.StoreID,
		Amount:                paymentMoneyToPB(t.Amount.MinorUnits, t.Amount.Currency),
		Decision:              pb.Decision(t.Decision),
		ResponseCode:          t.Code,
		AuthCode:              t.AuthCode,
		MaskedPan:             t.MaskedPAN,
		EntryMode:             pb.EntryMode(t.EntryMode),
		BatchNumber:           t.Batch,
		DecisionTime:          timestamppb.New(t.DecisionTime),
		Reversed:              t.Reversed,
		ReversalReason:        pb.ReversalReason(t.ReversalReason),
		OriginalTransactionId: t.OriginalID,
		ClaimedMerchantId:     t.ClaimedMerchantID,
		LedgerSequence:        t.Sequence,
	}
	if t.Kind == payment.TxKindSale || t.CapturedAmount > 0 {
		out.RefundedAmount = paymentMoneyToPB(t.RefundedAmount, t.Amount.Currency)
	}
	if t.CapturedAmount > 0 {
		out.CapturedAmount = paymentMoneyToPB(t.CapturedAmount, t.Amount.Currency)
	}
	return out
}

// scopeFromPB checks a config scope's identifiers and converts it.
func scopeFromPB(v *violations, field string, sc *pb.ConfigScope) configpush.Scope {
	if id := sc.GetMerchantId(); id != "" {
		v.merchantID(field+".merchant_id", id)
	}
	if id := sc.GetStoreId(); id != "" {
		v.storeID(field+".store_id", id)
	}
	if id := sc.GetTerminalId(); id != "" {
		v.terminalID(field+".terminal_id", id)
	}
	return configpush.Scope{MerchantID: sc.GetMerchantId(), StoreID: sc.GetStoreId(), TerminalID: sc.GetTerminalId()}
}

// Conversions between config push types and protocol messages. Ranges and
// cross-field rules are checked by configpush; these check only what the
// wire format can get wrong (malformed durations).

func settingsFromPB(v *violations, prefix string, s *pb.Settings) *configpush.Settings {
	if s == nil {
		return nil
	}
	out := &configpush.Settings{
		ReceiptHeader:       s.ReceiptHeader,
		ReceiptFooter:       s.ReceiptFooter,
		PerTransactionLimit: moneyFromPB(s.GetPerTransactionLimit()),
		DailyLimit:          moneyFromPB(s.GetDailyLimit()),
		OfflineFloorLimit:   moneyFromPB(s.GetOfflineFloorLimit()),
		TimeZone:            s.TimeZone,
		CardVelocityLimit:   s.CardVelocityLimit,
		HeartbeatInterval:   durationFromPB(v, prefix+"heartbeat_interval", s.GetHeartbeatInterval()),
		CardVelocityWindow:  durationFromPB(v, prefix+"card_velocity_window", s.GetCardVelocityWindow()),
	}
	for _, m := range s.GetAcceptedEntryModes() {
		out.EntryModes = append(out.EntryModes, configpush.EntryMode(m))
	}
	if len(s.GetExtra()) > 0 {
		out.Extra = s.GetExtra()
	}
	return out
}

func moneyFromPB(m *pb.Money) *configpush.Money {
	if m == nil {
		return nil
	}
	return &configpush.Money{MinorUnits: m.GetMinorUnits(), Currency: m.GetCurrency()}
}

func durationFromPB(v *violations, field string, d *durationpb.Duration) *time.Duration {
	if d == nil {
		return nil
	}
	if err := d.CheckValid(); err != nil {
		v.add(field, "must be a valid duration")
		return nil
	}
	x := d.AsDuration()
	return &x
}

// windowFromPB converts a maintenance window; the engine checks the rest
// (an empty window, a jitter as long as the window).
func windowFromPB(v *violations, w *pb.MaintenanceWindow) *configpush.Window {
	start, ok1 := configpush.ParseTimeOfDay(w.GetStart())
	if !ok1 {
		v.add("rollout.maintenance_window.start", "must be a time of day HH:MM (24-hour)")
	}
	end, ok2 := configpush.ParseTimeOfDay(w.GetEnd())
	if !ok2 {
		v.add("rollout.maintenance_window.end", "must be a time of day HH:MM (24-hour)")
	}
	out := &configpush.Window{Start: start, End: end}
	if d := durationFromPB(v, "rollout.maintenance_window.jitter", w.GetJitter()); d != nil {
		out.Jitter = *d
	}
	if !ok1 || !ok2 {
		return nil
	}
	return out
}

func planFromPB(v *violations, p *pb.RolloutPlan) configpush.Plan {
	if p == nil {
		return configpush.Plan{}
	}
	var msd time.Duration
	if d := durationFromPB(v, "rollout.min_stage_duration", p.GetMinStageDuration()); d != nil {
		msd = *d
	}
	plan := configpush.Plan{
		StagePercents:    p.GetStagePercents(),
		MaxFailureRatio:  p.GetMaxFailureRatio(),
		AutoAdvance:      p.GetAutoAdvance(),
		MinStageDuration: msd,
	}
	for i, f := range p.GetFreezes() {
		field := fieldAt("rollout.freezes", i)
		if f.GetStartTime().CheckValid() != nil || f.GetEndTime().CheckValid() != nil {
			v.add(field, "must have a valid start_time and end_time")
			continue
		}
		plan.Freezes = append(plan.Freezes, configpush.Freeze{Start: f.GetStartTime().AsTime(), End: f.GetEndTime().AsTime()})
	}
	if w := p.GetMaintenanceWindow(); w != nil {
		plan.Window = windowFromPB(v, w)
	}
	if g := p.GetPaymentGate(); g != nil {
		plan.Gate = &configpush.PaymentGate{
			MinPayments: g.GetMinPayments(), MaxApprovalDrop: g.GetMaxApprovalDrop(),
			MaxSystemErrorIncrease: g.GetMaxSystemErrorIncrease(), MaxLatencyIncrease: g.GetMaxLatencyIncrease(),
			AutoRollback: g.GetAutoRollback(),
		}
		if d := durationFromPB(v, "rollout.payment_gate.soak_time", g.GetSoakTime()); d != nil {
			plan.Gate.SoakTime = *d
		}
	}
	return plan
}

func gateToPB(g *configpush.PaymentGate) *pb.PaymentGate {
	if g == nil {
		return nil
	}
	return &pb.PaymentGate{
		SoakTime: durationpb.New(g.SoakTime), MinPayments: g.MinPayments, MaxApprovalDrop: g.MaxApprovalDrop,
		MaxSystemErrorIncrease: g.MaxSystemErrorIncrease, MaxLatencyIncrease: g.MaxLatencyIncrease, AutoRollback: g.AutoRollback,
	}
}

func gateStatusToPB(st *configpush.GateStatus) *pb.PaymentGateStatus {
	if st == nil {
		return nil
	}
	t, r := st.Treatment, st.Reference
	return &pb.PaymentGateStatus{
		Verdict: st.Verdict, Reason: st.Reason, Since: timestampOrNil(st.Since),
		TreatmentTerminals: st.TreatmentTerminals, TreatmentPayments: t.Payments,
		TreatmentApprovalRatio: t.ApprovalRatio(), TreatmentSystemErrorRatio: t.SystemErrorRatio(),
		TreatmentMeanLatency: durationpb.New(t.MeanLatency()),
		Reference:            st.ReferenceKind, ReferencePayments: r.Payments,
		ReferenceApprovalRatio: r.ApprovalRatio(), ReferenceSystemErrorRatio: r.SystemErrorRatio(),
		ReferenceMeanLatency: durationpb.New(r.MeanLatency()),
	}
}

func settingsToPB(s *configpush.Settings) *pb.Settings {
	if s == nil {
		return &pb.Settings{}
	}
	out := &pb.Settings{
		ReceiptHeader:       s.ReceiptHeader,
		ReceiptFooter:       s.ReceiptFooter,
		PerTransactionLimit: moneyToPB(s.PerTransactionLimit),
		DailyLimit:          moneyToPB(s.DailyLimit),
		OfflineFloorLimit:   moneyToPB(s.OfflineFloorLimit),
		TimeZone:            s.TimeZone,
		CardVelocityLimit:   s.CardVelocityLimit,
		Extra:               s.Extra,
	}
	if s.HeartbeatInterval != nil {
		out.HeartbeatInterval = durationpb.New(*s.HeartbeatInterval)
	}
	if s.CardVelocityWindow != nil {
		out.CardVelocityWindow = durationpb.New(*s.CardVelocityWindow)
	}
	for _, m := range s.EntryModes {
		out.AcceptedEntryModes = append(out.AcceptedEntryModes, pb.EntryMode(m))
	}
	return out
}

func moneyToPB(m *configpush.Money) *pb.Money {
	if m == nil {
		return nil
	}
	return &pb.Money{MinorUnits: m.MinorUnits, Currency: m.Currency}
}

func effectiveToPB(cfg *configpush.Effective) *pb.EffectiveConfig {
	return &pb.EffectiveConfig{
		Version:     cfg.Version,
		Settings:    settingsToPB(cfg.Settings),
		RolloutId:   cfg.RolloutID,
		PublishTime: timestampOrNil(cfg.Published),
	}
}

func changesToPB(cs []configpush.Change) []*pb.ConfigFieldChange {
	out := make([]*pb.ConfigFieldChange, len(cs))
	for i, c := range cs {
		out[i] = &pb.ConfigFieldChange{Field: c.Field, Before: c.Before, After: c.After, BeforeSet: c.BeforeSet, AfterSet: c.AfterSet}
	}
	return out
}

func scopeToPB(s configpush.Scope) *pb.ConfigScope {
	return &pb.ConfigScope{MerchantId: s.MerchantID, StoreId: s.StoreID, TerminalId: s.TerminalID}
}

func sourcesToPB(ss []configpush.Source) []*pb.ConfigValueSource {
	out := make([]*pb.ConfigValueSource, len(ss))
	for i, s := range ss {
		out[i] = &pb.ConfigValueSource{Field: s.Field, Value: s.Value, Origin: pb.ConfigValueOrigin(s.Origin)}
		if s.Origin == configpush.OriginLayer {
			out[i].Scope, out[i].Version, out[i].RolloutId = scopeToPB(s.Scope), s.Version, s.RolloutID
		}
	}
	return out
}

func configVersionToPB(r configpush.Rollout) *pb.ConfigVersion {
	return &pb.ConfigVersion{Rollout: rolloutToPB(r), Layer: settingsToPB(r.Settings)}
}

func rolloutToPB(r configpush.Rollout) *pb.Rollout {
	plan := &pb.RolloutPlan{
		StagePercents:   r.Plan.StagePercents,
		MaxFailureRatio: r.Plan.MaxFailureRatio,
		AutoAdvance:     r.Plan.AutoAdvance,
		PaymentGate:     gateToPB(r.Plan.Gate),
	}
	for _, f := range r.Plan.Freezes {
		plan.Freezes = append(plan.Freezes, &pb.FreezePeriod{StartTime: timestampOrNil(f.Start), EndTime: timestampOrNil(f.End)})
	}
	if w := r.Plan.Window; w != nil {
		plan.MaintenanceWindow = &pb.MaintenanceWindow{
			Start: configpush.FormatTimeOfDay(w.Start), End: configpush.FormatTimeOfDay(w.End),
		}
		if w.Jitter > 0 {
			plan.MaintenanceWindow.Jitter = durationpb.New(w.Jitter)
		}
	}
	if r.Plan.MinStageDuration > 0 {
		plan.MinStageDuration = durationpb.New(r.Plan.MinStageDuration)
	}
	return &pb.Rollout{
		RolloutId: r.ID,
		Version:   r.Version,
		Scope:     scopeToPB(r.Scope),
		Plan:      plan,
		State:     pb.RolloutState(r.State),
		// Stage indexes are small (at most configpush.MaxStages).
		CurrentStage:      uint32(r.Stage),
		TargetedTerminals: r.Targeted,
		IncludedTerminals: r.Included,
		Applied:           r.Applied,
		Rejected:          r.Rejected,
		FailureRatio:      r.FailureRatio,
		StateReason:       r.Reason,
		Description:       r.Description,
		CreateTime:        timestampOrNil(r.Created),
		UpdateTime:        timestampOrNil(r.Updated),
		CurrentVersion:    r.CurrentVersion(),
		StageVersions:     r.StageVersions,
		FallbackVersion:   r.Fallback,
		RollbackOfVersion: r.RollbackOf,
		Actor:             r.Actor,
		PaymentGateStatus: gateStatusToPB(r.Gate),
	}
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
