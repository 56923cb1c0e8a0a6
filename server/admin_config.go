package server

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/configpush"
	"github.com/posfleet/posfleet/server/fleet"
)

func init() {
	errorTable = append(errorTable,
		errorMapping{configpush.ErrUnknownTerminal, codes.NotFound, "TERMINAL_NOT_FOUND"},
		errorMapping{configpush.ErrScopeNotFound, codes.NotFound, "CONFIG_SCOPE_NOT_FOUND"},
		errorMapping{configpush.ErrRolloutNotFound, codes.NotFound, "ROLLOUT_NOT_FOUND"},
		errorMapping{configpush.ErrRolloutState, codes.FailedPrecondition, "ROLLOUT_STATE"},
		errorMapping{configpush.ErrVersionNotIssued, codes.FailedPrecondition, "CONFIG_VERSION_UNKNOWN"},
		errorMapping{configpush.ErrBadPageToken, codes.InvalidArgument, "INVALID_PAGE_TOKEN"},
		errorMapping{configpush.ErrClosed, codes.Unavailable, "SHUTTING_DOWN"},
		errorMapping{configpush.ErrWatchReplaced, codes.Aborted, "WATCH_REPLACED"},
		errorMapping{configpush.ErrVersionNotFound, codes.NotFound, "CONFIG_VERSION_NOT_FOUND"},
	)
}

var reRolloutID = regexp.MustCompile(`^ro-[1-9][0-9]{0,19}$`)

// openConfig starts config push on the fleet's terminal population and
// connects it: heartbeats carry its versions and intervals, terminal
// changes and new commands reach it, and Register returns its config.
func (s *Server) openConfig() error {
	var err error
	s.config, err = configpush.Open(context.Background(), s.db, s.audit,
		s.logger.With("component", "configpush"), fleetDirectory{s.fleet}, configpush.Options{Signals: &s.paySignals})
	if err != nil {
		return fmt.Errorf("server: open config push: %w", err)
	}
	s.closers = append(s.closers, s.config.Close)
	s.fleet.SetConfigSource(s.config)
	s.fleet.OnTerminalChange(func(ref fleet.TerminalRef) { s.config.TerminalChanged(ref.TerminalID) })
	s.fleet.OnCommand(s.config.NotifyCommands)
	s.hooks.effectiveConfig = func(_ context.Context, terminalID string) (*pb.EffectiveConfig, error) {
		cfg, ok := s.config.Effective(terminalID)
		if !ok {
			return nil, configpush.ErrUnknownTerminal
		}
		return effectiveToPB(cfg), nil
	}
	return nil
}

// fleetDirectory is the fleet as config push's terminal directory.
type fleetDirectory struct{ f *fleet.Fleet }

func (d fleetDirectory) Terminals() []configpush.TerminalRef {
	refs := d.f.Terminals()
	out := make([]configpush.TerminalRef, len(refs))
	zones := map[[2]string]string{}
	for i, r := range refs {
		k := [2]string{r.MerchantID, r.StoreID}
		tz, ok := zones[k]
		if !ok {
			tz = d.storeZone(r.MerchantID, r.StoreID)
			zones[k] = tz
		}
		out[i] = configpush.TerminalRef{TerminalID: r.TerminalID, MerchantID: r.MerchantID, StoreID: r.StoreID,
			Retired: r.State == fleet.StateRetired, TimeZone: tz}
	}
	return out
}

// storeZone returns the store's time zone, "" when it has none.
func (d fleetDirectory) storeZone(merchantID, storeID string) string {
	st, err := d.f.Store(merchantID, storeID)
	if err != nil {
		return ""
	}
	return st.TimeZone
}

func (d fleetDirectory) Terminal(id string) (configpush.TerminalRef, bool) {
	b, ok := d.f.Binding(id)
	if !ok {
		return configpush.TerminalRef{}, false
	}
	return configpush.TerminalRef{TerminalID: b.TerminalID, MerchantID: b.MerchantID, StoreID: b.StoreID,
		Retired: b.State == fleet.StateRetired, TimeZone: b.TimeZone}, true
}

func (d fleetDirectory) MerchantCurrency(id string) (string, bool) {
	m, err := d.f.Merchant(id)
	if err != nil {
		return "", false
	}
	return m.Currency, true
}

func (d fleetDirectory) Merchants() []string {
	var out []string
	token := ""
	for {
		page, next, err := d.f.ListMerchants(1000, token, false) // archived merchants take no payments
		if err != nil {
			return out
		}
		for _, m := range page {
			out = append(out, m.ID)
		}
		if next == "" {
			return out
		}
		token = next
	}
}

func (d fleetDirectory) MerchantExists(id string) bool {
	_, err := d.f.Merchant(id)
	return err == nil
}

func (d fleetDirectory) StoreExists(merchantID, storeID string) bool {
	_, err := d.f.Store(merchantID, storeID)
	return err == nil
}

// configStatus converts a config push error into a status: validation
// errors become InvalidArgument with a BadRequest, the rest go through the
// error table.
func (s *Server) configStatus(ctx context.Context, err error) error {
	var ve *configpush.ValidationError
	if errors.As(err, &ve) {
		var v violations
		for _, x := range ve.Violations {
			v.add(x.Field, "%s", x.Reason)
		}
		return v.err()
	}
	return toStatus(ctx, s.logger, err)
}

// auditFlushed waits until the audit events recorded so far are on disk.
// Config changes are committed by the config engine's own group commit, so
// their events are not in the same transaction; flushing before the answer
// still gives every acknowledged publish or rollout action its event after
// a crash.
func (s *Server) auditFlushed(ctx context.Context) error {
	if err := s.audit.Flush(ctx); err != nil {
		return toStatus(ctx, s.logger, err)
	}
	return nil
}

// Bounds of PublishConfigRequest.clear_fields.
const (
	maxClearFields   = 64
	maxClearFieldLen = 80
)

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

// PublishConfig changes a scope's settings layer and starts its rollout,
// or with dry_run shows what it would do.
func (a *adminService) PublishConfig(ctx context.Context, req *pb.PublishConfigRequest) (*pb.PublishConfigResponse, error) {
	var v violations
	scope := scopeFromPB(&v, "scope", req.GetScope())
	settings := settingsFromPB(&v, "settings.", req.GetSettings())
	plan := planFromPB(&v, req.GetRollout())
	v.optional("description", req.GetDescription(), configpush.MaxDescription)
	if len(req.GetClearFields()) > maxClearFields {
		v.add("clear_fields", "must name at most %d fields", maxClearFields)
	}
	for i, f := range req.GetClearFields() {
		v.text(fieldAt("clear_fields", i), f, maxClearFieldLen)
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	preq := configpush.PublishRequest{
		Scope: scope, Settings: settings, Clear: req.GetClearFields(), Replace: req.GetReplace(),
		Plan: plan, Description: req.GetDescription(),
	}
	if req.GetDryRun() {
		p, err := a.s.config.Preview(ctx, preq)
		if err != nil {
			return nil, a.s.configStatus(ctx, err)
		}
		resp := &pb.PublishConfigResponse{
			DryRun: true, Layer: settingsToPB(p.Layer), Changes: changesToPB(p.Changes),
			TargetedTerminals: p.Targeted, StageTerminalCounts: p.StageCounts, FirstStageTerminalIds: p.FirstStage,
		}
		return resp, nil
	}
	ro, err := a.s.config.Publish(ctx, preq, actor(ctx))
	if err != nil {
		return nil, a.s.configStatus(ctx, err)
	}
	if err := a.s.auditFlushed(ctx); err != nil {
		return nil, err
	}
	return &pb.PublishConfigResponse{
		Version: ro.Version, RolloutId: ro.ID, Rollout: rolloutToPB(ro),
		Layer: settingsToPB(ro.Settings), Changes: changesToPB(ro.Changes), TargetedTerminals: ro.Targeted,
	}, nil
}

// GetConfigLayer returns a scope's own current layer.
func (a *adminService) GetConfigLayer(ctx context.Context, req *pb.GetConfigLayerRequest) (*pb.GetConfigLayerResponse, error) {
	var v violations
	scope := scopeFromPB(&v, "scope", req.GetScope())
	if err := v.err(); err != nil {
		return nil, err
	}
	ro, ok, err := a.s.config.Layer(scope)
	if err != nil {
		return nil, a.s.configStatus(ctx, err)
	}
	if !ok {
		return &pb.GetConfigLayerResponse{}, nil
	}
	return &pb.GetConfigLayerResponse{Layer: configVersionToPB(ro)}, nil
}

// ListConfigVersions lists the versions published at a scope, newest first.
func (a *adminService) ListConfigVersions(ctx context.Context, req *pb.ListConfigVersionsRequest) (*pb.ListConfigVersionsResponse, error) {
	var v violations
	scope := scopeFromPB(&v, "scope", req.GetScope())
	n := v.pageSize("page_size", req.GetPageSize())
	v.optional("page_token", req.GetPageToken(), 64)
	if err := v.err(); err != nil {
		return nil, err
	}
	list, next, err := a.s.config.History(ctx, scope, n, req.GetPageToken())
	if err != nil {
		return nil, a.s.configStatus(ctx, err)
	}
	out := make([]*pb.ConfigVersion, len(list))
	for i, r := range list {
		out[i] = configVersionToPB(r)
	}
	return &pb.ListConfigVersionsResponse{Versions: out, NextPageToken: next}, nil
}

// DiffConfigVersions compares the layers of two published versions.
func (a *adminService) DiffConfigVersions(ctx context.Context, req *pb.DiffConfigVersionsRequest) (*pb.DiffConfigVersionsResponse, error) {
	if req.GetFromVersion() == 0 && req.GetToVersion() == 0 {
		var v violations
		v.add("to_version", "at least one of from_version and to_version is required")
		return nil, v.err()
	}
	from, to, changes, err := a.s.config.DiffVersions(ctx, req.GetFromVersion(), req.GetToVersion())
	if err != nil {
		return nil, a.s.configStatus(ctx, err)
	}
	resp := &pb.DiffConfigVersionsResponse{Changes: changesToPB(changes)}
	if req.GetFromVersion() != 0 {
		resp.From = configVersionToPB(from)
	}
	if req.GetToVersion() != 0 {
		resp.To = configVersionToPB(to)
	}
	return resp, nil
}

// RollbackConfig publishes an earlier layer of a scope again.
func (a *adminService) RollbackConfig(ctx context.Context, req *pb.RollbackConfigRequest) (*pb.RollbackConfigResponse, error) {
	var v violations
	scope := scopeFromPB(&v, "scope", req.GetScope())
	plan := planFromPB(&v, req.GetRollout())
	v.optional("description", req.GetDescription(), configpush.MaxDescription)
	if err := v.err(); err != nil {
		return nil, err
	}
	ro, err := a.s.config.Rollback(ctx, configpush.RollbackRequest{
		Scope: scope, ToVersion: req.GetToVersion(), Plan: plan, Description: req.GetDescription(),
	}, actor(ctx))
	if err != nil {
		return nil, a.s.configStatus(ctx, err)
	}
	if err := a.s.auditFlushed(ctx); err != nil {
		return nil, err
	}
	return &pb.RollbackConfigResponse{Version: ro.Version, Rollout: rolloutToPB(ro), Changes: changesToPB(ro.Changes)}, nil
}

// AdvanceRollout moves a rollout to its next stage now.
func (a *adminService) AdvanceRollout(ctx context.Context, req *pb.AdvanceRolloutRequest) (*pb.AdvanceRolloutResponse, error) {
	var v violations
	v.rolloutID("rollout_id", req.GetRolloutId())
	if err := v.err(); err != nil {
		return nil, err
	}
	ro, err := a.s.config.Advance(ctx, req.GetRolloutId(), actor(ctx))
	if err != nil {
		return nil, a.s.configStatus(ctx, err)
	}
	if err := a.s.auditFlushed(ctx); err != nil {
		return nil, err
	}
	return &pb.AdvanceRolloutResponse{Rollout: rolloutToPB(ro)}, nil
}

// GetEffectiveConfig returns the config a terminal should run.
func (a *adminService) GetEffectiveConfig(ctx context.Context, req *pb.GetEffectiveConfigRequest) (*pb.GetEffectiveConfigResponse, error) {
	var v violations
	v.terminalID("terminal_id", req.GetTerminalId())
	if err := v.err(); err != nil {
		return nil, err
	}
	cfg, ok := a.s.config.Effective(req.GetTerminalId())
	if !ok {
		return nil, a.s.configStatus(ctx, fmt.Errorf("%w: %s", configpush.ErrUnknownTerminal, req.GetTerminalId()))
	}
	sources, err := a.s.config.Sources(req.GetTerminalId())
	if err != nil {
		return nil, a.s.configStatus(ctx, err)
	}
	return &pb.GetEffectiveConfigResponse{Config: effectiveToPB(cfg), Sources: sourcesToPB(sources)}, nil
}

// rolloutID checks a required rollout ID.
func (v *violations) rolloutID(field, id string) {
	if v.required(field, id) {
		v.match(field, id, reRolloutID, "a rollout ID such as \"ro-42\"")
	}
}

// GetRollout returns one rollout with its progress.
func (a *adminService) GetRollout(ctx context.Context, req *pb.GetRolloutRequest) (*pb.GetRolloutResponse, error) {
	var v violations
	v.rolloutID("rollout_id", req.GetRolloutId())
	if err := v.err(); err != nil {
		return nil, err
	}
	ro, err := a.s.config.Rollout(req.GetRolloutId())
	if err != nil {
		return nil, a.s.configStatus(ctx, err)
	}
	return &pb.GetRolloutResponse{Rollout: rolloutToPB(ro)}, nil
}

// ListRollouts lists rollouts, newest first.
func (a *adminService) ListRollouts(ctx context.Context, req *pb.ListRolloutsRequest) (*pb.ListRolloutsResponse, error) {
	var v violations
	v.enum("state", int32(req.GetState()), pb.RolloutState_name, true)
	n := v.pageSize("page_size", req.GetPageSize())
	v.optional("page_token", req.GetPageToken(), 64)
	if err := v.err(); err != nil {
		return nil, err
	}
	out, next, err := boundedPage(a.s.cfg.MaxPageBytes, n, func(n int) ([]configpush.Rollout, string, error) {
		return a.s.config.ListRollouts(ctx, configpush.State(req.GetState()), n, req.GetPageToken())
	}, rolloutToPB)
	if err != nil {
		return nil, a.s.configStatus(ctx, err)
	}
	return &pb.ListRolloutsResponse{Rollouts: out, NextPageToken: next}, nil
}

// PauseRollout stops a rollout from advancing.
func (a *adminService) PauseRollout(ctx context.Context, req *pb.PauseRolloutRequest) (*pb.PauseRolloutResponse, error) {
	var v violations
	v.rolloutID("rollout_id", req.GetRolloutId())
	v.optional("reason", req.GetReason(), configpush.MaxReason)
	if err := v.err(); err != nil {
		return nil, err
	}
	ro, err := a.s.config.Pause(ctx, req.GetRolloutId(), req.GetReason(), actor(ctx))
	if err != nil {
		return nil, a.s.configStatus(ctx, err)
	}
	if err := a.s.auditFlushed(ctx); err != nil {
		return nil, err
	}
	return &pb.PauseRolloutResponse{Rollout: rolloutToPB(ro)}, nil
}

// ResumeRollout resumes a paused or halted rollout.
func (a *adminService) ResumeRollout(ctx context.Context, req *pb.ResumeRolloutRequest) (*pb.ResumeRolloutResponse, error) {
	var v violations
	v.rolloutID("rollout_id", req.GetRolloutId())
	if err := v.err(); err != nil {
		return nil, err
	}
	ro, err := a.s.config.Resume(ctx, req.GetRolloutId(), actor(ctx))
	if err != nil {
		return nil, a.s.configStatus(ctx, err)
	}
	if err := a.s.auditFlushed(ctx); err != nil {
		return nil, err
	}
	return &pb.ResumeRolloutResponse{Rollout: rolloutToPB(ro)}, nil
}

// AbortRollout aborts a rollout; its terminals fall back to the previous
// layer under a new version.
func (a *adminService) AbortRollout(ctx context.Context, req *pb.AbortRolloutRequest) (*pb.AbortRolloutResponse, error) {
	var v violations
	v.rolloutID("rollout_id", req.GetRolloutId())
	v.optional("reason", req.GetReason(), configpush.MaxReason)
	if err := v.err(); err != nil {
		return nil, err
	}
	ro, err := a.s.config.Abort(ctx, req.GetRolloutId(), req.GetReason(), actor(ctx))
	if err != nil {
		return nil, a.s.configStatus(ctx, err)
	}
	if err := a.s.auditFlushed(ctx); err != nil {
		return nil, err
	}
	return &pb.AbortRolloutResponse{Rollout: rolloutToPB(ro)}, nil
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
