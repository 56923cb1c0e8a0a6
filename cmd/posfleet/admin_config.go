package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// Operator commands for config layers and their rollouts.

func init() {
	registerAdmin("config", "publish", "publish settings at a scope (global, merchant, store or terminal), optionally in stages", configPublish)
	registerAdmin("config", "show", "show a terminal's effective config and where each value comes from", configShow)
	registerAdmin("config", "layer", "show one scope's own layer (not merged)", configLayer)
	registerAdmin("config", "history", "list the versions published at one scope, newest first", configHistory)
	registerAdmin("config", "diff", "compare the layers of two published versions", configDiff)
	registerAdmin("config", "rollback", "publish a scope's previous (or a named) layer again as a new version", configRollback)
	registerAdmin("rollout", "advance", "move a rollout to its next stage now", rolloutChange("advance"))
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

// scopeFlags adds --merchant, --store and --terminal; the returned function
// reads them as a scope (none: global).
func scopeFlags(fs *flag.FlagSet) func() *pb.ConfigScope {
	merchant := fs.String("merchant", "", "merchant scope (with --store: store scope)")
	store := fs.String("store", "", "store scope (needs --merchant)")
	terminal := fs.String("terminal", "", "terminal scope (alone)")
	return func() *pb.ConfigScope {
		return &pb.ConfigScope{MerchantId: *merchant, StoreId: *store, TerminalId: *terminal}
	}
}

// clearFlag parses "daily-limit,extra.printer.density" into the protocol's
// field names: dashes become underscores, extra keys stay as written.
func clearFlag(value string) []string {
	if value == "" {
		return nil
	}
	var out []string
	for _, f := range strings.Split(value, ",") {
		f = strings.TrimSpace(f)
		if key, ok := strings.CutPrefix(f, "extra."); ok {
			out = append(out, "extra."+key)
			continue
		}
		out = append(out, strings.ReplaceAll(f, "-", "_"))
	}
	return out
}

// windowFlag parses --window HH:MM-HH:MM with its --window-jitter; nil
// without a window. The server checks the times of day.
func windowFlag(value string, jitter time.Duration) (*pb.MaintenanceWindow, error) {
	if value == "" {
		if jitter != 0 {
			return nil, fmt.Errorf("--window-jitter needs --window")
		}
		return nil, nil
	}
	start, end, ok := strings.Cut(value, "-")
	if !ok {
		return nil, fmt.Errorf("--window %q: want HH:MM-HH:MM, e.g. 02:00-05:00", value)
	}
	w := &pb.MaintenanceWindow{Start: strings.TrimSpace(start), End: strings.TrimSpace(end)}
	if jitter != 0 {
		w.Jitter = durationpb.New(jitter)
	}
	return w, nil
}

// freezeFlag parses one --freeze START/END, both RFC 3339.
func freezeFlag(value string) (*pb.FreezePeriod, error) {
	a, b, ok := strings.Cut(value, "/")
	if !ok {
		return nil, fmt.Errorf("want START/END in RFC 3339, e.g. 2026-12-20T00:00:00Z/2026-12-27T00:00:00Z")
	}
	start, err := time.Parse(time.RFC3339, strings.TrimSpace(a))
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	end, err := time.Parse(time.RFC3339, strings.TrimSpace(b))
	if err != nil {
		return nil, fmt.Errorf("end: %w", err)
	}
	return &pb.FreezePeriod{StartTime: timestamppb.New(start), EndTime: timestamppb.New(end)}, nil
}

// planFlags adds the rollout plan flags; the returned function reads them.
func planFlags(fs *flag.FlagSet) func() (*pb.RolloutPlan, error) {
	stages := fs.String("stages", "", "cumulative stage percentages, e.g. 5,25,100 (default: all at once)")
	ratio := fs.Float64("max-failure-ratio", 0, "halt when rejected/acknowledged in a stage exceeds this (default 0.1)")
	auto := fs.Bool("auto-advance", false, "advance to the next stage when the current one is healthy")
	minStage := fs.Duration("min-stage-duration", 0, "shortest time a stage runs before it advances")
	soak := fs.Duration("gate-soak", 0, "payment gate: watch each stage's payments this long before it advances (any --gate-* flag enables the gate)")
	minPay := fs.Uint64("gate-min-payments", 0, "payment gate: payments of the stage's terminals needed to judge (default 20)")
	drop := fs.Float64("gate-max-approval-drop", 0, "payment gate: breach when the approval ratio falls by more than this vs terminals not yet in the rollout (default 0.05)")
	sysErr := fs.Float64("gate-max-system-error-increase", 0, "payment gate: breach when the 96 ratio rises by more than this (default 0.02)")
	latency := fs.Float64("gate-max-latency-increase", 0, "payment gate: breach when mean Authorize latency rises by more than this fraction (default 1 = twice as slow)")
	rollback := fs.Bool("auto-rollback", false, "payment gate: roll the terminals back on a breach instead of only halting")
	window := fs.String("window", "", "maintenance window in each store's local time, HH:MM-HH:MM (e.g. 02:00-05:00; 22:00-02:00 crosses midnight): terminals take the new version only inside it")
	jitter := fs.Duration("window-jitter", 0, "spread terminals over this long after the window opens (needs --window)")
	var freezes []*pb.FreezePeriod
	fs.Func("freeze", "period START/END (RFC 3339) in which the rollout does not advance on its own, e.g. 2026-12-20T00:00:00Z/2026-12-27T00:00:00Z (repeatable)", func(v string) error {
		f, err := freezeFlag(v)
		if err == nil {
			freezes = append(freezes, f)
		}
		return err
	})
	return func() (*pb.RolloutPlan, error) {
		pcts, err := stagesFlag(*stages)
		if err != nil {
			return nil, err
		}
		p := &pb.RolloutPlan{StagePercents: pcts, MaxFailureRatio: *ratio, AutoAdvance: *auto, Freezes: freezes}
		if p.MaintenanceWindow, err = windowFlag(*window, *jitter); err != nil {
			return nil, err
		}
		if *minStage > 0 {
			p.MinStageDuration = durationpb.New(*minStage)
		}
		for _, name := range []string{"gate-soak", "gate-min-payments", "gate-max-approval-drop", "gate-max-system-error-increase", "gate-max-latency-increase", "auto-rollback"} {
			if isFlagSet(fs, name) {
				p.PaymentGate = &pb.PaymentGate{
					SoakTime: durationpb.New(*soak), MinPayments: *minPay, MaxApprovalDrop: *drop,
					MaxSystemErrorIncrease: *sysErr, MaxLatencyIncrease: *latency, AutoRollback: *rollback,
				}
				break
			}
		}
		return p, nil
	}
}

func configPublish(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "config", "publish")
	scope := scopeFlags(fs)
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
	plan := planFlags(fs)
	desc := fs.String("description", "", "operator's note")
	clear := fs.String("clear", "", "fields to remove from the scope's layer, e.g. daily-limit,extra.printer.density (extra: every key)")
	replace := fs.Bool("replace", false, "publish the given settings as the whole layer instead of changing only the named fields (removals still need --clear)")
	dryRun := fs.Bool("dry-run", false, "show the change and the terminals it would reach; publish nothing")
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
	p, err := plan()
	if err != nil {
		return err
	}
	req := &pb.PublishConfigRequest{
		Scope: scope(), Settings: settings, Description: *desc, Rollout: p,
		ClearFields: clearFlag(*clear), Replace: *replace, DryRun: *dryRun,
	}
	resp, err := env.Client.Admin().PublishConfig(ctx, req)
	if err != nil {
		return err
	}
	if env.JSON {
		return env.print(resp, nil, nil)
	}
	if err := writeTable(env.Out, changeHeaders, changeRows(resp.GetChanges())); err != nil {
		return err
	}
	fmt.Fprintln(env.Out)
	if resp.GetDryRun() {
		var counts []string
		for _, n := range resp.GetStageTerminalCounts() {
			counts = append(counts, strconv.FormatUint(n, 10))
		}
		fmt.Fprintf(env.Out, "dry run: nothing published; reaches %d terminals, per stage %s\n",
			resp.GetTargetedTerminals(), strings.Join(counts, ", "))
		fmt.Fprintf(env.Out, "first stage: %s\n", orDash(strings.Join(resp.GetFirstStageTerminalIds(), " ")))
		return nil
	}
	return writeTable(env.Out, rolloutHeaders, [][]string{rolloutRow(resp.GetRollout())})
}

// collectPages fetches pages of at most 1000 items until limit items or the
// last page.
func collectPages[T any](limit int, page func(size int32, token string) ([]T, string, error)) ([]T, error) {
	var all []T
	token := ""
	for len(all) < limit {
		items, next, err := page(int32(min(limit-len(all), 1000)), token)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if token = next; token == "" {
			break
		}
	}
	return all, nil
}

var changeHeaders = []string{"FIELD", "BEFORE", "AFTER"}

// changeRows shows field changes; an unset side is "(unset)".
func changeRows(cs []*pb.ConfigFieldChange) [][]string {
	side := func(v string, set bool) string {
		if !set {
			return "(unset)"
		}
		return v
	}
	rows := make([][]string, len(cs))
	for i, c := range cs {
		rows[i] = []string{c.GetField(), side(c.GetBefore(), c.GetBeforeSet()), side(c.GetAfter(), c.GetAfterSet())}
	}
	return rows
}

func configLayer(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "config", "layer")
	scope := scopeFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	resp, err := env.Client.Admin().GetConfigLayer(ctx, &pb.GetConfigLayerRequest{Scope: scope()})
	if err != nil {
		return err
	}
	l := resp.GetLayer()
	rows := [][]string{{"scope", scopeText(scope())}}
	if l == nil {
		rows = append(rows, []string{"version", "none (nothing published at this scope)"})
		return env.print(resp, []string{"FIELD", "VALUE"}, rows)
	}
	r := l.GetRollout()
	rows = append(rows, []string{"version", strconv.FormatUint(r.GetVersion(), 10)},
		[]string{"rollout", r.GetRolloutId() + " " + enumName(r.GetState().String(), "ROLLOUT_STATE_")},
		[]string{"published", tsText(r.GetCreateTime()) + " by " + orDash(r.GetActor())})
	for _, c := range changeRows(layerChanges(l.GetLayer())) {
		rows = append(rows, []string{c[0], c[2]})
	}
	return env.print(resp, []string{"FIELD", "VALUE"}, rows)
}

// layerChanges lists what a layer sets, as changes from nothing, so that a
// layer prints with the same value formats as a diff.
func layerChanges(s *pb.Settings) []*pb.ConfigFieldChange {
	var out []*pb.ConfigFieldChange
	add := func(field, v string) {
		out = append(out, &pb.ConfigFieldChange{Field: field, After: v, AfterSet: true})
	}
	if s.ReceiptHeader != nil {
		add("receipt_header", strconv.Quote(s.GetReceiptHeader()))
	}
	if s.ReceiptFooter != nil {
		add("receipt_footer", strconv.Quote(s.GetReceiptFooter()))
	}
	if len(s.GetAcceptedEntryModes()) > 0 {
		var modes []string
		for _, m := range s.GetAcceptedEntryModes() {
			modes = append(modes, strings.ToLower(enumName(m.String(), "ENTRY_MODE_")))
		}
		add("accepted_entry_modes", strings.Join(modes, ","))
	}
	for _, m := range []struct {
		name string
		v    *pb.Money
	}{{"per_transaction_limit", s.GetPerTransactionLimit()}, {"daily_limit", s.GetDailyLimit()}, {"offline_floor_limit", s.GetOfflineFloorLimit()}} {
		if m.v != nil {
			add(m.name, moneyText(m.v))
		}
	}
	if s.HeartbeatInterval != nil {
		add("heartbeat_interval", s.GetHeartbeatInterval().AsDuration().String())
	}
	if s.TimeZone != nil {
		add("time_zone", strconv.Quote(s.GetTimeZone()))
	}
	if s.CardVelocityLimit != nil {
		add("card_velocity_limit", strconv.FormatUint(uint64(s.GetCardVelocityLimit()), 10))
	}
	if s.CardVelocityWindow != nil {
		add("card_velocity_window", s.GetCardVelocityWindow().AsDuration().String())
	}
	keys := make([]string, 0, len(s.GetExtra()))
	for k := range s.GetExtra() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		add("extra."+k, strconv.Quote(s.GetExtra()[k]))
	}
	return out
}

func configHistory(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "config", "history")
	scope := scopeFlags(fs)
	limit := fs.Int("limit", 50, "most versions to show")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *limit < 1 {
		return fmt.Errorf("--limit must be positive")
	}
	all, err := collectPages(*limit, func(size int32, token string) ([]*pb.ConfigVersion, string, error) {
		resp, err := env.Client.Admin().ListConfigVersions(ctx, &pb.ListConfigVersionsRequest{Scope: scope(), PageSize: size, PageToken: token})
		return resp.GetVersions(), resp.GetNextPageToken(), err
	})
	if err != nil {
		return err
	}
	rows := make([][]string, len(all))
	for i, v := range all {
		r := v.GetRollout()
		var fields []string
		for _, c := range layerChanges(v.GetLayer()) {
			fields = append(fields, c.GetField())
		}
		note := r.GetDescription()
		if rb := r.GetRollbackOfVersion(); rb != 0 && note == "" {
			note = fmt.Sprintf("rollback of %d", rb)
		}
		rows[i] = []string{strconv.FormatUint(r.GetVersion(), 10), r.GetRolloutId(), enumName(r.GetState().String(), "ROLLOUT_STATE_"),
			tsText(r.GetCreateTime()), orDash(r.GetActor()), orDash(strings.Join(fields, ",")), orDash(note)}
	}
	return env.print(&pb.ListConfigVersionsResponse{Versions: all},
		[]string{"VERSION", "ROLLOUT", "STATE", "PUBLISHED", "BY", "FIELDS SET", "DESCRIPTION"}, rows)
}

func configDiff(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "config", "diff")
	from := fs.Uint64("from", 0, "published version to compare from (0: no layer)")
	to := fs.Uint64("to", 0, "published version to compare to (0: no layer)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if !isFlagSet(fs, "from") || !isFlagSet(fs, "to") {
		return fmt.Errorf("--from and --to are required")
	}
	resp, err := env.Client.Admin().DiffConfigVersions(ctx, &pb.DiffConfigVersionsRequest{FromVersion: *from, ToVersion: *to})
	if err != nil {
		return err
	}
	return env.print(resp, changeHeaders, changeRows(resp.GetChanges()))
}

func configRollback(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "config", "rollback")
	scope := scopeFlags(fs)
	to := fs.Uint64("to-version", 0, "version to restore (default: the one before the current layer)")
	plan := planFlags(fs)
	desc := fs.String("description", "", "operator's note")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	p, err := plan()
	if err != nil {
		return err
	}
	resp, err := env.Client.Admin().RollbackConfig(ctx, &pb.RollbackConfigRequest{Scope: scope(), ToVersion: *to, Rollout: p, Description: *desc})
	if err != nil {
		return err
	}
	if env.JSON {
		return env.print(resp, nil, nil)
	}
	if err := writeTable(env.Out, changeHeaders, changeRows(resp.GetChanges())); err != nil {
		return err
	}
	fmt.Fprintln(env.Out)
	return writeTable(env.Out, rolloutHeaders, [][]string{rolloutRow(resp.GetRollout())})
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
	src := map[string]string{}
	for _, x := range resp.GetSources() {
		src[x.GetField()] = sourceText(x)
	}
	rows := [][]string{
		{"version", strconv.FormatUint(c.GetVersion(), 10), ""},
		{"rollout", orDash(c.GetRolloutId()), ""},
		{"published", tsText(c.GetPublishTime()), ""},
		{"receipt_header", orDash(s.GetReceiptHeader()), src["receipt_header"]},
		{"receipt_footer", orDash(s.GetReceiptFooter()), src["receipt_footer"]},
		{"accepted_entry_modes", orDash(strings.Join(modes, ",")), src["accepted_entry_modes"]},
		{"per_transaction_limit", moneyText(s.GetPerTransactionLimit()), src["per_transaction_limit"]},
		{"daily_limit", moneyText(s.GetDailyLimit()), src["daily_limit"]},
		{"offline_floor_limit", moneyText(s.GetOfflineFloorLimit()), src["offline_floor_limit"]},
		{"heartbeat_interval", s.GetHeartbeatInterval().AsDuration().String(), src["heartbeat_interval"]},
		{"time_zone", orDash(s.GetTimeZone()), src["time_zone"]},
		{"card_velocity", fmt.Sprintf("%d per %s", s.GetCardVelocityLimit(), s.GetCardVelocityWindow().AsDuration()), src["card_velocity_limit"]},
	}
	keys := make([]string, 0, len(s.GetExtra()))
	for k := range s.GetExtra() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		rows = append(rows, []string{"extra." + k, s.GetExtra()[k], src["extra."+k]})
	}
	return env.print(resp, []string{"FIELD", "VALUE", "SOURCE"}, rows)
}

// sourceText names where an effective value comes from, e.g. "merchant M1
// v3 (ro-3)", "store record" or "default".
func sourceText(s *pb.ConfigValueSource) string {
	switch s.GetOrigin() {
	case pb.ConfigValueOrigin_CONFIG_VALUE_ORIGIN_LAYER:
		return fmt.Sprintf("%s v%d (%s)", scopeText(s.GetScope()), s.GetVersion(), s.GetRolloutId())
	case pb.ConfigValueOrigin_CONFIG_VALUE_ORIGIN_STORE:
		return "store record"
	case pb.ConfigValueOrigin_CONFIG_VALUE_ORIGIN_DEFAULT:
		return "default"
	}
	return "-"
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

// versionText is the version a rollout's terminals run: the newest it
// issued (each stage and an abort take their own), with the published
// version when they differ, e.g. "3 (published 1)".
func versionText(r *pb.Rollout) string {
	cur := r.GetCurrentVersion()
	if cur == 0 || cur == r.GetVersion() {
		return strconv.FormatUint(r.GetVersion(), 10)
	}
	return fmt.Sprintf("%d (published %d)", cur, r.GetVersion())
}

func rolloutRow(r *pb.Rollout) []string {
	return []string{
		r.GetRolloutId(), versionText(r), scopeText(r.GetScope()),
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
	all, err := collectPages(*limit, func(size int32, token string) ([]*pb.Rollout, string, error) {
		resp, err := env.Client.Admin().ListRollouts(ctx, &pb.ListRolloutsRequest{State: pb.RolloutState(st), PageSize: size, PageToken: token})
		return resp.GetRollouts(), resp.GetNextPageToken(), err
	})
	if err != nil {
		return err
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
		{"rollout_id", r.GetRolloutId()}, {"version", versionText(r)},
		{"stage_versions", uintsText(r.GetStageVersions())},
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
		{"payment_gate", gateText(p.GetPaymentGate())},
		{"maintenance_window", windowText(p.GetMaintenanceWindow())},
		{"freezes", freezesText(p.GetFreezes())},
		{"gate_status", orDash(strings.TrimSpace(r.GetPaymentGateStatus().GetVerdict() + " " + r.GetPaymentGateStatus().GetReason()))},
		{"description", orDash(r.GetDescription())},
		{"created", tsText(r.GetCreateTime())}, {"updated", tsText(r.GetUpdateTime())},
	}
}

// windowText shows a maintenance window, "-" when the plan has none.
func windowText(w *pb.MaintenanceWindow) string {
	if w == nil {
		return "-"
	}
	return fmt.Sprintf("%s-%s store local time, jitter %s", w.GetStart(), w.GetEnd(), w.GetJitter().AsDuration())
}

// freezesText lists freeze periods, "-" when the plan has none.
func freezesText(fs []*pb.FreezePeriod) string {
	if len(fs) == 0 {
		return "-"
	}
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = tsText(f.GetStartTime()) + "/" + tsText(f.GetEndTime())
	}
	return strings.Join(out, ", ")
}

// gateText summarizes a payment gate, "-" when the plan has none.
func gateText(g *pb.PaymentGate) string {
	if g == nil {
		return "-"
	}
	return fmt.Sprintf("soak %s, min %d payments, approval drop %g, 96 increase %g, latency increase %g, auto-rollback %v",
		g.GetSoakTime().AsDuration(), g.GetMinPayments(), g.GetMaxApprovalDrop(), g.GetMaxSystemErrorIncrease(),
		g.GetMaxLatencyIncrease(), g.GetAutoRollback())
}

func uintsText(vs []uint64) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = strconv.FormatUint(v, 10)
	}
	return orDash(strings.Join(parts, ", "))
}

// rolloutChange returns the pause, resume, advance or abort command.
func rolloutChange(verb string) func(ctx context.Context, env *adminEnv, args []string) error {
	return func(ctx context.Context, env *adminEnv, args []string) error {
		fs := verbFlags(env, "rollout", verb)
		id := fs.String("id", "", "rollout ID, e.g. ro-42 (required)")
		var reason *string
		if verb == "pause" || verb == "abort" {
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
		case "advance":
			resp, err := env.Client.Admin().AdvanceRollout(ctx, &pb.AdvanceRolloutRequest{RolloutId: *id})
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
