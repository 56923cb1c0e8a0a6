package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// Operator commands for config layers and their rollouts.

func init() {
	registerAdmin("config", "publish", "publish settings at a scope (global, merchant, store or terminal), optionally in stages", configPublish)
	registerAdmin("config", "show", "show a terminal's effective config", configShow)
	registerAdmin("rollout", "list", "list rollouts, newest first", rolloutList)
	registerAdmin("rollout", "get", "show one rollout with its progress", rolloutGet)
	registerAdmin("rollout", "pause", "stop a rollout from advancing", rolloutChange("pause"))
	registerAdmin("rollout", "resume", "resume a paused or halted rollout (advances a stage waiting for it)", rolloutChange("resume"))
	registerAdmin("rollout", "abort", "abort a rollout: its terminals fall back to the previous settings", rolloutChange("abort"))
}

// moneyFlag parses a limit: "500NZD", "500.00 NZD", or NZD:50000 in minor
// units (see parseMoney).
func moneyFlag(name, value string) (*pb.Money, error) {
	m, err := parseMoney(value, "")
	if err != nil {
		return nil, fmt.Errorf("--%s %w", name, err)
	}
	return m, nil
}

// stagesFlag parses "5,25,100".
func stagesFlag(value string) ([]uint32, error) {
	if value == "" {
		return nil, nil
	}
	var out []uint32
	for _, p := range strings.Split(value, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(p, "%")), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("--stages %q: want comma-separated percentages, e.g. 5,25,100", value)
		}
		out = append(out, uint32(n))
	}
	return out, nil
}

// entryModesFlag parses "chip,contactless".
func entryModesFlag(value string) ([]pb.EntryMode, error) {
	var out []pb.EntryMode
	for _, m := range strings.Split(value, ",") {
		v, err := parseEnum("entry-modes", strings.TrimSpace(m), "ENTRY_MODE_", pb.EntryMode_value)
		if err != nil {
			return nil, err
		}
		out = append(out, pb.EntryMode(v))
	}
	return out, nil
}

func configPublish(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "config", "publish")
	merchant := fs.String("merchant", "", "merchant scope (with --store: store scope)")
	store := fs.String("store", "", "store scope (needs --merchant)")
	terminal := fs.String("terminal", "", "terminal scope (alone)")
	file := fs.String("settings-file", "", "settings as protojson (posfleet.v1.Settings); the flags below override it")
	header := fs.String("receipt-header", "", "receipt header text")
	footer := fs.String("receipt-footer", "", "receipt footer text")
	modes := fs.String("entry-modes", "", "accepted entry modes, e.g. chip,contactless")
	perTx := fs.String("per-transaction-limit", "", "largest authorization, e.g. 500NZD or \"500.00 NZD\" (NZD:50000 means minor units)")
	daily := fs.String("daily-limit", "", "largest daily total per terminal, e.g. 2000NZD")
	floor := fs.String("offline-floor-limit", "", "largest offline approval, e.g. 50NZD")
	heartbeat := fs.Duration("heartbeat-interval", 0, "heartbeat interval (5s-1h)")
	tz := fs.String("time-zone", "", "IANA time zone the terminal displays")
	velocity := fs.Uint("velocity-limit", 0, "most approvals of one card within --velocity-window (0 disables)")
	window := fs.Duration("velocity-window", 0, "window of --velocity-limit")
	extra := paramsFlag{}
	fs.Var(extra, "extra", "free-form setting key=value (repeatable; key= removes an inherited key)")
	stages := fs.String("stages", "", "cumulative stage percentages, e.g. 5,25,100 (default: all at once)")
	ratio := fs.Float64("max-failure-ratio", 0, "halt when rejected/acknowledged in a stage exceeds this (default 0.1)")
	auto := fs.Bool("auto-advance", false, "advance to the next stage when the current one is healthy")
	minStage := fs.Duration("min-stage-duration", 0, "shortest time a stage runs before it advances")
	desc := fs.String("description", "", "operator's note")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	settings := &pb.Settings{}
	if *file != "" {
		b, err := os.ReadFile(*file)
		if err != nil {
			return fmt.Errorf("--settings-file: %w", err)
		}
		if err := protojson.Unmarshal(b, settings); err != nil {
			return fmt.Errorf("--settings-file %s: %w", *file, err)
		}
	}
	set := func(name string) bool { return isFlagSet(fs, name) }
	if set("receipt-header") {
		settings.ReceiptHeader = proto.String(*header)
	}
	if set("receipt-footer") {
		settings.ReceiptFooter = proto.String(*footer)
	}
	if set("entry-modes") {
		m, err := entryModesFlag(*modes)
		if err != nil {
			return err
		}
		settings.AcceptedEntryModes = m
	}
	for _, l := range []struct {
		name, value string
		dst         **pb.Money
	}{{"per-transaction-limit", *perTx, &settings.PerTransactionLimit}, {"daily-limit", *daily, &settings.DailyLimit}, {"offline-floor-limit", *floor, &settings.OfflineFloorLimit}} {
		if set(l.name) {
			m, err := moneyFlag(l.name, l.value)
			if err != nil {
				return err
			}
			*l.dst = m
		}
	}
	if set("heartbeat-interval") {
		settings.HeartbeatInterval = durationpb.New(*heartbeat)
	}
	if set("time-zone") {
		settings.TimeZone = proto.String(*tz)
	}
	if set("velocity-limit") {
		if *velocity > 1<<32-1 {
			return fmt.Errorf("--velocity-limit %d is too large", *velocity)
		}
		settings.CardVelocityLimit = proto.Uint32(uint32(*velocity))
	}
	if set("velocity-window") {
		settings.CardVelocityWindow = durationpb.New(*window)
	}
	if len(extra) > 0 {
		if settings.Extra == nil {
			settings.Extra = map[string]string{}
		}
		for k, v := range extra {
			settings.Extra[k] = v
		}
	}
	pcts, err := stagesFlag(*stages)
	if err != nil {
		return err
	}
	req := &pb.PublishConfigRequest{
		Scope:       &pb.ConfigScope{MerchantId: *merchant, StoreId: *store, TerminalId: *terminal},
		Settings:    settings,
		Description: *desc,
		Rollout:     &pb.RolloutPlan{StagePercents: pcts, MaxFailureRatio: *ratio, AutoAdvance: *auto},
	}
	if *minStage > 0 {
		req.Rollout.MinStageDuration = durationpb.New(*minStage)
	}
	resp, err := env.Client.Admin().PublishConfig(ctx, req)
	if err != nil {
		return err
	}
	return env.print(resp, rolloutHeaders, [][]string{rolloutRow(resp.GetRollout())})
}

func configShow(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "config", "show")
	terminal := fs.String("terminal", "", "terminal ID (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := need(fs, "terminal"); err != nil {
		return err
	}
	resp, err := env.Client.Admin().GetEffectiveConfig(ctx, &pb.GetEffectiveConfigRequest{TerminalId: *terminal})
	if err != nil {
		return err
	}
	c := resp.GetConfig()
	s := c.GetSettings()
	var modes []string
	for _, m := range s.GetAcceptedEntryModes() {
		modes = append(modes, strings.ToLower(enumName(m.String(), "ENTRY_MODE_")))
	}
	rows := [][]string{
		{"version", strconv.FormatUint(c.GetVersion(), 10)},
		{"rollout", orDash(c.GetRolloutId())},
		{"published", tsText(c.GetPublishTime())},
		{"receipt_header", orDash(s.GetReceiptHeader())},
		{"receipt_footer", orDash(s.GetReceiptFooter())},
		{"accepted_entry_modes", orDash(strings.Join(modes, ","))},
		{"per_transaction_limit", moneyText(s.GetPerTransactionLimit())},
		{"daily_limit", moneyText(s.GetDailyLimit())},
		{"offline_floor_limit", moneyText(s.GetOfflineFloorLimit())},
		{"heartbeat_interval", s.GetHeartbeatInterval().AsDuration().String()},
		{"time_zone", orDash(s.GetTimeZone())},
		{"card_velocity", fmt.Sprintf("%d per %s", s.GetCardVelocityLimit(), s.GetCardVelocityWindow().AsDuration())},
	}
	keys := make([]string, 0, len(s.GetExtra()))
	for k := range s.GetExtra() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		rows = append(rows, []string{"extra." + k, s.GetExtra()[k]})
	}
	return env.print(resp, []string{"FIELD", "VALUE"}, rows)
}

var rolloutHeaders = []string{"ROLLOUT", "VERSION", "SCOPE", "STATE", "STAGE", "INCLUDED", "APPLIED", "REJECTED", "FAILURE", "UPDATED"}

func scopeText(s *pb.ConfigScope) string {
	switch {
	case s.GetTerminalId() != "":
		return "terminal " + s.GetTerminalId()
	case s.GetStoreId() != "":
		return "store " + s.GetMerchantId() + "/" + s.GetStoreId()
	case s.GetMerchantId() != "":
		return "merchant " + s.GetMerchantId()
	}
	return "global"
}

func stageText(r *pb.Rollout) string {
	p := r.GetPlan().GetStagePercents()
	i := int(r.GetCurrentStage())
	if i >= len(p) {
		return strconv.Itoa(i + 1)
	}
	return fmt.Sprintf("%d/%d (%d%%)", i+1, len(p), p[i])
}

func rolloutRow(r *pb.Rollout) []string {
	return []string{
		r.GetRolloutId(), strconv.FormatUint(r.GetVersion(), 10), scopeText(r.GetScope()),
		enumName(r.GetState().String(), "ROLLOUT_STATE_"), stageText(r),
		fmt.Sprintf("%d/%d", r.GetIncludedTerminals(), r.GetTargetedTerminals()),
		strconv.FormatUint(r.GetApplied(), 10), strconv.FormatUint(r.GetRejected(), 10),
		strconv.FormatFloat(r.GetFailureRatio(), 'f', 3, 64), tsText(r.GetUpdateTime()),
	}
}

func rolloutList(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "rollout", "list")
	state := fs.String("state", "", "only rollouts in this state: running, paused, halted, aborted, completed or superseded")
	limit := fs.Int("limit", 100, "most rollouts to show")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	st, err := parseEnum("state", *state, "ROLLOUT_STATE_", pb.RolloutState_value)
	if err != nil {
		return err
	}
	if *limit < 1 {
		return fmt.Errorf("--limit must be positive")
	}
	var all []*pb.Rollout
	token := ""
	for len(all) < *limit {
		resp, err := env.Client.Admin().ListRollouts(ctx, &pb.ListRolloutsRequest{
			State: pb.RolloutState(st), PageSize: int32(min(*limit-len(all), 1000)), PageToken: token,
		})
		if err != nil {
			return err
		}
		all = append(all, resp.GetRollouts()...)
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	rows := make([][]string, len(all))
	for i, r := range all {
		rows[i] = rolloutRow(r)
	}
	return env.print(&pb.ListRolloutsResponse{Rollouts: all}, rolloutHeaders, rows)
}

func rolloutGet(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "rollout", "get")
	id := fs.String("id", "", "rollout ID, e.g. ro-42 (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := need(fs, "id"); err != nil {
		return err
	}
	resp, err := env.Client.Admin().GetRollout(ctx, &pb.GetRolloutRequest{RolloutId: *id})
	if err != nil {
		return err
	}
	return env.print(resp, []string{"FIELD", "VALUE"}, rolloutDetail(resp.GetRollout()))
}

// rolloutDetail is the field-by-field view of one rollout.
func rolloutDetail(r *pb.Rollout) [][]string {
	p := r.GetPlan()
	var stages []string
	for _, s := range p.GetStagePercents() {
		stages = append(stages, strconv.FormatUint(uint64(s), 10)+"%")
	}
	return [][]string{
		{"rollout_id", r.GetRolloutId()}, {"version", strconv.FormatUint(r.GetVersion(), 10)},
		{"scope", scopeText(r.GetScope())}, {"state", enumName(r.GetState().String(), "ROLLOUT_STATE_")},
		{"state_reason", orDash(r.GetStateReason())}, {"stage", stageText(r)},
		{"stages", strings.Join(stages, ", ")},
		{"max_failure_ratio", strconv.FormatFloat(p.GetMaxFailureRatio(), 'f', 3, 64)},
		{"auto_advance", strconv.FormatBool(p.GetAutoAdvance())},
		{"min_stage_duration", p.GetMinStageDuration().AsDuration().String()},
		{"targeted", strconv.FormatUint(r.GetTargetedTerminals(), 10)},
		{"included", strconv.FormatUint(r.GetIncludedTerminals(), 10)},
		{"applied", strconv.FormatUint(r.GetApplied(), 10)},
		{"rejected", strconv.FormatUint(r.GetRejected(), 10)},
		{"failure_ratio", strconv.FormatFloat(r.GetFailureRatio(), 'f', 3, 64)},
		{"description", orDash(r.GetDescription())},
		{"created", tsText(r.GetCreateTime())}, {"updated", tsText(r.GetUpdateTime())},
	}
}

// rolloutChange returns the pause, resume or abort command.
func rolloutChange(verb string) func(ctx context.Context, env *adminEnv, args []string) error {
	return func(ctx context.Context, env *adminEnv, args []string) error {
		fs := verbFlags(env, "rollout", verb)
		id := fs.String("id", "", "rollout ID, e.g. ro-42 (required)")
		var reason *string
		if verb != "resume" {
			reason = fs.String("reason", "", "why, for the audit trail")
		}
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		if err := need(fs, "id"); err != nil {
			return err
		}
		var r *pb.Rollout
		var msg proto.Message
		switch verb {
		case "pause":
			resp, err := env.Client.Admin().PauseRollout(ctx, &pb.PauseRolloutRequest{RolloutId: *id, Reason: *reason})
			if err != nil {
				return err
			}
			r, msg = resp.GetRollout(), resp
		case "resume":
			resp, err := env.Client.Admin().ResumeRollout(ctx, &pb.ResumeRolloutRequest{RolloutId: *id})
			if err != nil {
				return err
			}
			r, msg = resp.GetRollout(), resp
		default:
			resp, err := env.Client.Admin().AbortRollout(ctx, &pb.AbortRolloutRequest{RolloutId: *id, Reason: *reason})
			if err != nil {
				return err
			}
			r, msg = resp.GetRollout(), resp
		}
		return env.print(msg, rolloutHeaders, [][]string{rolloutRow(r)})
	}
}
