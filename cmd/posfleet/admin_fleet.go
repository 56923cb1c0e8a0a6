package main

import (
	"context"
	"flag"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// Operator commands for merchants, stores, terminals, remote commands, the
// audit trail, the fleet report and admin tokens.

func init() {
	registerAdmin("merchants", "create", "create a merchant", merchantsCreate)
	registerAdmin("merchants", "get", "show one merchant", merchantsGet)
	registerAdmin("merchants", "update", "change a merchant (bumps its identity version)", merchantsUpdate)
	registerAdmin("merchants", "list", "list merchants", merchantsList)
	registerAdmin("stores", "create", "create a store of a merchant", storesCreate)
	registerAdmin("stores", "list", "list stores", storesList)
	registerAdmin("merchants", "archive", "archive a merchant whose terminals are all retired: hidden from lists, refuses new stores and terminals, history kept", merchantsArchive)
	registerAdmin("stores", "archive", "archive a store whose terminals are all retired: hidden from lists, refuses new terminals, history kept", storesArchive)
	registerAdmin("terminals", "provision", "provision a terminal and print its enrollment code", terminalsProvision)
	registerAdmin("terminals", "get", "show one terminal with its latest status", terminalsGet)
	registerAdmin("terminals", "list", "list terminals (filters: merchant, store, state, connectivity)", terminalsList)
	registerAdmin("terminals", "suspend", "suspend a terminal", terminalsState("suspend"))
	registerAdmin("terminals", "reactivate", "lift a suspension", terminalsState("reactivate"))
	registerAdmin("terminals", "retire", "retire a terminal for good", terminalsState("retire"))
	registerAdmin("terminals", "reissue", "issue a new enrollment code", terminalsReissue)
	registerAdmin("terminals", "rebind", "move a terminal to another store or merchant", terminalsRebind)
	registerAdmin("commands", "send", "queue a remote command for a terminal", commandsSend)
	registerAdmin("commands", "list", "list a terminal's remote commands", commandsList)
	registerAdmin("audit", "list", "list audit events, newest first", auditList)
	registerAdmin("report", "fleet", "fleet health: connectivity, faults, versions, alerts", reportFleet)
	registerAdmin("tokens", "create", "create an admin token and print its secret (ADMIN)", tokensCreate)
	registerAdmin("tokens", "revoke", "revoke an admin token (ADMIN)", tokensRevoke)
	registerAdmin("tokens", "list", "list admin tokens (ADMIN)", tokensList)
}

// verbFlags returns a flag set for "posfleet admin <noun> <verb>". It
// holds the connection flags too (those given before the noun count as
// given), and dials env.Client once parsed.
func verbFlags(env *adminEnv, noun, verb string) *flag.FlagSet {
	fs := newFlagSet("admin "+noun+" "+verb, env.Err)
	env.register(fs, true)
	for name, v := range env.given {
		fs.Set(name, v) // values that parsed once parse again
	}
	return fs
}

// need reports the first required flag that is empty.
func need(fs *flag.FlagSet, names ...string) error {
	for _, n := range names {
		if f := fs.Lookup(n); f != nil && f.Value.String() == "" {
			return fmt.Errorf("--%s is required", n)
		}
	}
	return nil
}

func tsText(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// enumName strips an enum value's prefix: TERMINAL_STATE_ACTIVE → ACTIVE.
func enumName(full, prefix string) string { return strings.TrimPrefix(full, prefix) }

// parseEnum turns "active" or "ACTIVE" into the value named prefix+ACTIVE.
func parseEnum(flagName, value, prefix string, values map[string]int32) (int32, error) {
	if value == "" {
		return 0, nil
	}
	name := prefix + strings.ToUpper(strings.ReplaceAll(value, "-", "_"))
	v, ok := values[name]
	if !ok || v == 0 {
		var names []string
		for n, x := range values {
			if x != 0 {
				names = append(names, strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(n, prefix), "_", "-")))
			}
		}
		sort.Strings(names)
		return 0, fmt.Errorf("--%s %q: want one of %s", flagName, value, strings.Join(names, ", "))
	}
	return v, nil
}

// addressFlags registers the address flags and returns a function building
// the address (nil when none was given).
func addressFlags(fs *flag.FlagSet) func() *pb.Address {
	line1 := fs.String("line1", "", "address: street and number")
	line2 := fs.String("line2", "", "address: unit, floor")
	city := fs.String("city", "", "address: city")
	region := fs.String("region", "", "address: state or region")
	postal := fs.String("postal-code", "", "address: postal code")
	country := fs.String("country", "", "address: ISO 3166-1 alpha-2 country code")
	return func() *pb.Address {
		a := &pb.Address{Line1: *line1, Line2: *line2, City: *city, Region: *region, PostalCode: *postal, Country: *country}
		if *line1 == "" && *line2 == "" && *city == "" && *region == "" && *postal == "" && *country == "" {
			return nil
		}
		return a
	}
}

func addressText(a *pb.Address) string {
	if a == nil {
		return "-"
	}
	var parts []string
	for _, p := range []string{a.GetLine1(), a.GetLine2(), a.GetCity(), a.GetRegion(), a.GetPostalCode(), a.GetCountry()} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return orDash(strings.Join(parts, ", "))
}

var merchantHeaders = []string{"MERCHANT", "LEGAL NAME", "DISPLAY NAME", "MCC", "CURRENCY", "IDENTITY", "UPDATED"}

func merchantRow(m *pb.Merchant) []string {
	return []string{m.GetMerchantId(), m.GetLegalName(), orDash(m.GetDisplayName()), m.GetMcc(), m.GetCurrency(),
		"v" + strconv.FormatUint(m.GetIdentityVersion(), 10), tsText(m.GetUpdateTime())}
}

func merchantsCreate(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "merchants", "create")
	id := fs.String("id", "", "merchant ID (MID): 1-15 letters and digits (required)")
	legal := fs.String("legal-name", "", "registered legal name (required)")
	display := fs.String("display-name", "", "name on receipts and screens")
	mcc := fs.String("mcc", "", "merchant category code, 4 digits (required)")
	currency := fs.String("currency", "", "ISO 4217 settlement currency, e.g. NZD (required)")
	crossRefunds := fs.Bool("allow-cross-terminal-refunds", false, "let any terminal of the merchant refund another's sales")
	addr := addressFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := need(fs, "id", "legal-name", "mcc", "currency"); err != nil {
		return err
	}
	resp, err := env.Client.Admin().CreateMerchant(ctx, &pb.CreateMerchantRequest{Merchant: &pb.Merchant{
		MerchantId: *id, LegalName: *legal, DisplayName: *display, Mcc: *mcc, Currency: *currency, Address: addr(),
		AllowCrossTerminalRefunds: *crossRefunds,
	}})
	if err != nil {
		return err
	}
	return env.print(resp, merchantHeaders, [][]string{merchantRow(resp.GetMerchant())})
}

func merchantsGet(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "merchants", "get")
	id := fs.String("id", "", "merchant ID (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := need(fs, "id"); err != nil {
		return err
	}
	resp, err := env.Client.Admin().GetMerchant(ctx, &pb.GetMerchantRequest{MerchantId: *id})
	if err != nil {
		return err
	}
	m := resp.GetMerchant()
	return env.print(resp, []string{"FIELD", "VALUE"}, [][]string{
		{"merchant_id", m.GetMerchantId()}, {"legal_name", m.GetLegalName()}, {"display_name", orDash(m.GetDisplayName())},
		{"mcc", m.GetMcc()}, {"currency", m.GetCurrency()}, {"address", addressText(m.GetAddress())},
		{"identity_version", strconv.FormatUint(m.GetIdentityVersion(), 10)},
		{"allow_cross_terminal_refunds", strconv.FormatBool(m.GetAllowCrossTerminalRefunds())},
		{"created", tsText(m.GetCreateTime())}, {"updated", tsText(m.GetUpdateTime())},
		{"archived", tsText(m.GetArchiveTime())},
	})
}

func merchantsArchive(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "merchants", "archive")
	id := fs.String("id", "", "merchant ID (required)")
	reason := fs.String("reason", "", "why, for the audit trail")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := need(fs, "id"); err != nil {
		return err
	}
	resp, err := env.Client.Admin().ArchiveMerchant(ctx, &pb.ArchiveMerchantRequest{MerchantId: *id, Reason: *reason})
	if err != nil {
		return err
	}
	m := resp.GetMerchant()
	return env.print(resp, []string{"MERCHANT", "ARCHIVED"}, [][]string{{m.GetMerchantId(), tsText(m.GetArchiveTime())}})
}

func storesArchive(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "stores", "archive")
	merchant := fs.String("merchant", "", "merchant ID (required)")
	id := fs.String("id", "", "store ID (required)")
	reason := fs.String("reason", "", "why, for the audit trail")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := need(fs, "merchant", "id"); err != nil {
		return err
	}
	resp, err := env.Client.Admin().ArchiveStore(ctx, &pb.ArchiveStoreRequest{MerchantId: *merchant, StoreId: *id, Reason: *reason})
	if err != nil {
		return err
	}
	st := resp.GetStore()
	return env.print(resp, []string{"MERCHANT", "STORE", "ARCHIVED"}, [][]string{{st.GetMerchantId(), st.GetStoreId(), tsText(st.GetArchiveTime())}})
}

func merchantsUpdate(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "merchants", "update")
	id := fs.String("id", "", "merchant ID (required)")
	legal := fs.String("legal-name", "", "new legal name")
	display := fs.String("display-name", "", "new display name")
	mcc := fs.String("mcc", "", "new merchant category code")
	currency := fs.String("currency", "", "new settlement currency")
	crossRefunds := fs.Bool("allow-cross-terminal-refunds", false, "let any terminal of the merchant refund another's sales (=false turns it off)")
	addr := addressFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := need(fs, "id"); err != nil {
		return err
	}
	m := &pb.Merchant{MerchantId: *id, LegalName: *legal, DisplayName: *display, Mcc: *mcc, Currency: *currency, Address: addr(),
		AllowCrossTerminalRefunds: *crossRefunds}
	var paths []string
	for flagName, path := range map[string]string{"legal-name": "legal_name", "display-name": "display_name", "mcc": "mcc", "currency": "currency",
		"allow-cross-terminal-refunds": "allow_cross_terminal_refunds"} {
		if isFlagSet(fs, flagName) {
			paths = append(paths, path)
		}
	}
	if m.Address != nil {
		paths = append(paths, "address")
	}
	if len(paths) == 0 {
		return fmt.Errorf("nothing to change: give --legal-name, --display-name, --mcc, --currency, --allow-cross-terminal-refunds or address flags")
	}
	sort.Strings(paths)
	got, err := env.Client.UpdateMerchant(ctx, m, paths...)
	if err != nil {
		return err
	}
	return env.print(&pb.UpdateMerchantResponse{Merchant: got}, merchantHeaders, [][]string{merchantRow(got)})
}

func merchantsList(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "merchants", "list")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ms, err := env.Client.AllMerchants(ctx)
	if err != nil {
		return err
	}
	rows := make([][]string, len(ms))
	for i, m := range ms {
		rows[i] = merchantRow(m)
	}
	return env.print(&pb.ListMerchantsResponse{Merchants: ms}, merchantHeaders, rows)
}

var storeHeaders = []string{"MERCHANT", "STORE", "NAME", "TIME ZONE", "ADDRESS"}

func storeRow(s *pb.Store) []string {
	return []string{s.GetMerchantId(), s.GetStoreId(), s.GetName(), orDash(s.GetTimeZone()), addressText(s.GetAddress())}
}

func storesCreate(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "stores", "create")
	merchant := fs.String("merchant", "", "merchant ID (required)")
	id := fs.String("id", "", "store ID: 1-32 letters, digits, '-' or '_' (required)")
	name := fs.String("name", "", "store name (required)")
	tz := fs.String("time-zone", "", "IANA time zone, e.g. Pacific/Auckland (default UTC)")
	addr := addressFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := need(fs, "merchant", "id", "name"); err != nil {
		return err
	}
	resp, err := env.Client.Admin().CreateStore(ctx, &pb.CreateStoreRequest{Store: &pb.Store{
		MerchantId: *merchant, StoreId: *id, Name: *name, TimeZone: *tz, Address: addr(),
	}})
	if err != nil {
		return err
	}
	return env.print(resp, storeHeaders, [][]string{storeRow(resp.GetStore())})
}

func storesList(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "stores", "list")
	merchant := fs.String("merchant", "", "only stores of this merchant")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ss, err := env.Client.AllStores(ctx, *merchant)
	if err != nil {
		return err
	}
	rows := make([][]string, len(ss))
	for i, s := range ss {
		rows[i] = storeRow(s)
	}
	return env.print(&pb.ListStoresResponse{Stores: ss}, storeHeaders, rows)
}

var terminalHeaders = []string{"TERMINAL", "SERIAL", "MERCHANT", "STORE", "STATE", "CONNECTIVITY", "LAST SEEN", "LAST HEARTBEAT", "FIRMWARE", "APP", "LABEL"}

func terminalRow(t *pb.Terminal) []string {
	return []string{
		t.GetTerminalId(), t.GetSerialNumber(), t.GetMerchantId(), t.GetStoreId(),
		enumName(t.GetState().String(), "TERMINAL_STATE_"), enumName(t.GetConnectivity().String(), "CONNECTIVITY_"),
		tsText(t.GetLastSeenTime()), tsText(t.GetLastHeartbeatTime()), orDash(t.GetLastStatus().GetFirmwareVersion()), orDash(t.GetLastStatus().GetAppVersion()),
		orDash(t.GetLabel()),
	}
}

func terminalsProvision(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "terminals", "provision")
	serial := fs.String("serial", "", "hardware serial number (required)")
	merchant := fs.String("merchant", "", "merchant ID (required)")
	store := fs.String("store", "", "store ID (required)")
	label := fs.String("label", "", "operator label, e.g. \"Lane 3\"")
	ttl := fs.Duration("enrollment-ttl", 0, "validity of the enrollment code (default 72h)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := need(fs, "serial", "merchant", "store"); err != nil {
		return err
	}
	resp, err := env.Client.ProvisionTerminal(ctx, *serial, *merchant, *store, *label, *ttl)
	if err != nil {
		return err
	}
	// The fingerprint goes to the terminal with the code, out of band, so
	// that it can pin the server's identity signing key.
	return env.print(resp, []string{"TERMINAL", "SERIAL", "ENROLLMENT CODE", "EXPIRES", "SIGNING KEY FINGERPRINT"}, [][]string{
		{resp.GetTerminalId(), *serial, resp.GetEnrollmentCode(), tsText(resp.GetExpiresAt()), resp.GetSigningKeyFingerprint()},
	})
}

func terminalsGet(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "terminals", "get")
	id := fs.String("id", "", "terminal ID (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := need(fs, "id"); err != nil {
		return err
	}
	resp, err := env.Client.Admin().GetTerminal(ctx, &pb.GetTerminalRequest{TerminalId: *id})
	if err != nil {
		return err
	}
	t := resp.GetTerminal()
	st := t.GetLastStatus()
	rows := [][]string{
		{"terminal_id", t.GetTerminalId()}, {"serial_number", t.GetSerialNumber()},
		{"merchant_id", t.GetMerchantId()}, {"store_id", t.GetStoreId()}, {"label", orDash(t.GetLabel())},
		{"state", enumName(t.GetState().String(), "TERMINAL_STATE_")}, {"state_reason", orDash(t.GetStateReason())},
		{"connectivity", enumName(t.GetConnectivity().String(), "CONNECTIVITY_")},
		{"last_seen", tsText(t.GetLastSeenTime())}, {"last_heartbeat", tsText(t.GetLastHeartbeatTime())},
		{"device", orDash(strings.TrimSpace(t.GetDevice().GetManufacturer() + " " + t.GetDevice().GetModel()))},
		{"firmware", orDash(st.GetFirmwareVersion())}, {"app", orDash(st.GetAppVersion())},
		{"config_version", fmt.Sprintf("%d (desired %d)", st.GetConfigVersion(), t.GetDesiredConfigVersion())},
		{"identity_version", strconv.FormatUint(t.GetIdentityVersion(), 10)},
		{"created", tsText(t.GetCreateTime())}, {"registered", tsText(t.GetRegisterTime())},
	}
	if st != nil && st.BatteryPercent != nil {
		rows = append(rows, []string{"battery", fmt.Sprintf("%d%%", st.GetBatteryPercent())})
	}
	for _, f := range t.GetRecentFaults() {
		rows = append(rows, []string{"fault", fmt.Sprintf("%s %s %s %s", tsText(f.GetOccurTime()), f.GetComponent(), f.GetCode(), f.GetMessage())})
	}
	return env.print(resp, []string{"FIELD", "VALUE"}, rows)
}

func terminalsList(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "terminals", "list")
	merchant := fs.String("merchant", "", "only terminals of this merchant")
	store := fs.String("store", "", "only terminals of this store (with --merchant)")
	state := fs.String("state", "", "only terminals in this state: provisioned, active, suspended, retired")
	conn := fs.String("connectivity", "", "only terminals that are: online, stale, offline, never-seen")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	st, err := parseEnum("state", *state, "TERMINAL_STATE_", pb.TerminalState_value)
	if err != nil {
		return err
	}
	cn, err := parseEnum("connectivity", *conn, "CONNECTIVITY_", pb.Connectivity_value)
	if err != nil {
		return err
	}
	ts, err := env.Client.AllTerminals(ctx, &pb.ListTerminalsRequest{
		MerchantId: *merchant, StoreId: *store, State: pb.TerminalState(st), Connectivity: pb.Connectivity(cn),
	})
	if err != nil {
		return err
	}
	rows := make([][]string, len(ts))
	for i, t := range ts {
		rows[i] = terminalRow(t)
	}
	return env.print(&pb.ListTerminalsResponse{Terminals: ts}, terminalHeaders, rows)
}

// terminalsState returns the command for suspend, reactivate or retire.
func terminalsState(verb string) func(ctx context.Context, env *adminEnv, args []string) error {
	return func(ctx context.Context, env *adminEnv, args []string) error {
		fs := verbFlags(env, "terminals", verb)
		id := fs.String("id", "", "terminal ID (required)")
		reason := fs.String("reason", "", "why, for the audit trail")
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		if err := need(fs, "id"); err != nil {
			return err
		}
		var t *pb.Terminal
		var err error
		switch verb {
		case "suspend":
			t, err = env.Client.SuspendTerminal(ctx, *id, *reason)
		case "reactivate":
			t, err = env.Client.ReactivateTerminal(ctx, *id, *reason)
		default:
			t, err = env.Client.RetireTerminal(ctx, *id, *reason)
		}
		if err != nil {
			return err
		}
		return env.print(&pb.GetTerminalResponse{Terminal: t}, terminalHeaders, [][]string{terminalRow(t)})
	}
}

func terminalsReissue(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "terminals", "reissue")
	id := fs.String("id", "", "terminal ID (required)")
	ttl := fs.Duration("enrollment-ttl", 0, "validity of the new code (default 72h)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := need(fs, "id"); err != nil {
		return err
	}
	resp, err := env.Client.ReissueEnrollment(ctx, *id, *ttl)
	if err != nil {
		return err
	}
	return env.print(resp, []string{"TERMINAL", "ENROLLMENT CODE", "EXPIRES"}, [][]string{{*id, resp.GetEnrollmentCode(), tsText(resp.GetExpiresAt())}})
}

func terminalsRebind(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "terminals", "rebind")
	id := fs.String("id", "", "terminal ID (required)")
	merchant := fs.String("merchant", "", "new merchant ID (required)")
	store := fs.String("store", "", "new store ID (required)")
	reason := fs.String("reason", "", "why, for the audit trail (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := need(fs, "id", "merchant", "store", "reason"); err != nil {
		return err
	}
	t, err := env.Client.RebindTerminal(ctx, *id, *merchant, *store, *reason)
	if err != nil {
		return err
	}
	return env.print(&pb.RebindTerminalResponse{Terminal: t}, terminalHeaders, [][]string{terminalRow(t)})
}

// paramsFlag collects repeated --param key=value flags.
type paramsFlag map[string]string

func (p paramsFlag) String() string {
	keys := make([]string, 0, len(p))
	for k, v := range p {
		keys = append(keys, k+"="+v)
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

func (p paramsFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	p[k] = v
	return nil
}

var commandHeaders = []string{"COMMAND", "TERMINAL", "TYPE", "STATE", "CREATED", "EXPIRES", "PARAMETERS", "RESULT"}

func commandRow(c *pb.RemoteCommand) []string {
	return []string{c.GetCommandId(), c.GetTerminalId(), enumName(c.GetType().String(), "COMMAND_TYPE_"),
		enumName(c.GetState().String(), "COMMAND_STATE_"), tsText(c.GetCreateTime()), tsText(c.GetExpireTime()),
		orDash(paramsFlag(c.GetParameters()).String()), orDash(c.GetResultDetail())}
}

func commandsSend(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "commands", "send")
	terminal := fs.String("terminal", "", "terminal ID (required)")
	typ := fs.String("type", "", "reboot, upload-logs, resync-config, lock or rotate-credential (required)")
	ttl := fs.Duration("ttl", 0, "how long the command stays deliverable (default 24h)")
	params := paramsFlag{}
	fs.Var(params, "param", "command parameter key=value (repeatable)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := need(fs, "terminal", "type"); err != nil {
		return err
	}
	t, err := parseEnum("type", *typ, "COMMAND_TYPE_", pb.CommandType_value)
	if err != nil {
		return err
	}
	c, err := env.Client.SendCommand(ctx, *terminal, pb.CommandType(t), params, *ttl)
	if err != nil {
		return err
	}
	return env.print(&pb.SendCommandResponse{Command: c}, commandHeaders, [][]string{commandRow(c)})
}

func commandsList(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "commands", "list")
	terminal := fs.String("terminal", "", "terminal ID (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := need(fs, "terminal"); err != nil {
		return err
	}
	cs, err := env.Client.AllCommands(ctx, *terminal)
	if err != nil {
		return err
	}
	rows := make([][]string, len(cs))
	for i, c := range cs {
		rows[i] = commandRow(c)
	}
	return env.print(&pb.ListCommandsResponse{Commands: cs}, commandHeaders, rows)
}

func auditList(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "audit", "list")
	typ := fs.String("type", "", "only events of this type, e.g. merchant-mismatch, auth-failure, terminal-rebound")
	terminal := fs.String("terminal", "", "only events of this terminal")
	merchant := fs.String("merchant", "", "only events of this merchant")
	since := fs.Duration("since", 0, "only events of the last duration, e.g. 24h")
	limit := fs.Int("limit", 100, "most events to print")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	t, err := parseEnum("type", *typ, "AUDIT_EVENT_TYPE_", pb.AuditEventType_value)
	if err != nil {
		return err
	}
	if *limit < 1 {
		return fmt.Errorf("--limit must be positive")
	}
	req := &pb.ListAuditEventsRequest{Type: pb.AuditEventType(t), TerminalId: *terminal, MerchantId: *merchant}
	if *since > 0 {
		req.StartTime = timestamppb.New(time.Now().Add(-*since))
	}
	evs, err := env.Client.AuditEvents(ctx, req, *limit)
	if err != nil {
		return err
	}
	rows := make([][]string, len(evs))
	for i, e := range evs {
		keys := make([]string, 0, len(e.GetAttributes()))
		for k, v := range e.GetAttributes() {
			keys = append(keys, k+"="+v)
		}
		sort.Strings(keys)
		rows[i] = []string{tsText(e.GetTime()), enumName(e.GetType().String(), "AUDIT_EVENT_TYPE_"), e.GetActor(),
			orDash(e.GetTerminalId()), orDash(e.GetMerchantId()), e.GetMessage(), orDash(strings.Join(keys, " "))}
	}
	return env.print(&pb.ListAuditEventsResponse{Events: evs}, []string{"TIME", "TYPE", "ACTOR", "TERMINAL", "MERCHANT", "MESSAGE", "DETAILS"}, rows)
}

func reportFleet(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "report", "fleet")
	merchant := fs.String("merchant", "", "only terminals of this merchant")
	store := fs.String("store", "", "only terminals of this store (with --merchant)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	rep, err := env.Client.FleetReport(ctx, *merchant, *store)
	if err != nil {
		return err
	}
	rows := [][]string{{"terminals", "total", strconv.FormatUint(rep.GetTotalTerminals(), 10)}}
	add := func(section string, kcs []*pb.KeyCount) {
		for _, kc := range kcs {
			rows = append(rows, []string{section, kc.GetKey(), strconv.FormatUint(kc.GetCount(), 10)})
		}
	}
	add("connectivity", rep.GetByConnectivity())
	add("state", rep.GetByState())
	add("faults by component", rep.GetFaultsByComponent())
	for _, f := range rep.GetFaults() {
		rows = append(rows, []string{"faults by store", f.GetMerchantId() + "/" + f.GetStoreId() + " " + f.GetComponent(), strconv.FormatUint(f.GetCount(), 10)})
	}
	add("firmware", rep.GetFirmwareVersions())
	add("app", rep.GetAppVersions())
	add("config version", rep.GetConfigVersions())
	rows = append(rows,
		[]string{"payments", "authorizations", strconv.FormatUint(rep.GetAuthorizations(), 10)},
		[]string{"payments", "approvals", strconv.FormatUint(rep.GetApprovals(), 10)},
		[]string{"payments", "approval rate", fmt.Sprintf("%.1f%%", 100*rep.GetApprovalRate())},
		[]string{"alerts", "merchant mismatches", strconv.FormatUint(rep.GetMerchantMismatchAlerts(), 10)},
	)
	add("mismatches by terminal", rep.GetMismatchTerminals())
	return env.print(rep, []string{"SECTION", "KEY", "COUNT"}, rows)
}

var tokenHeaders = []string{"TOKEN", "NAME", "ROLE", "CREATED", "EXPIRES", "REVOKED"}

func tokenRow(t *pb.AdminToken) []string {
	return []string{t.GetTokenId(), t.GetName(), enumName(t.GetRole().String(), "ROLE_"), tsText(t.GetCreateTime()),
		tsText(t.GetExpireTime()), strconv.FormatBool(t.GetRevoked())}
}

func tokensCreate(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "tokens", "create")
	name := fs.String("name", "", "token name, e.g. night-shift-ops (required)")
	role := fs.String("role", "", "admin, operator or auditor (required)")
	ttl := fs.Duration("ttl", 0, "lifetime (default: no expiry)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := need(fs, "name", "role"); err != nil {
		return err
	}
	r, err := parseEnum("role", *role, "ROLE_", pb.Role_value)
	if err != nil {
		return err
	}
	secret, tok, err := env.Client.CreateAdminToken(ctx, *name, pb.Role(r), *ttl)
	if err != nil {
		return err
	}
	if env.JSON {
		return env.print(&pb.CreateAdminTokenResponse{Token: secret, AdminToken: tok}, nil, nil)
	}
	if err := env.print(nil, tokenHeaders, [][]string{tokenRow(tok)}); err != nil {
		return err
	}
	_, err = fmt.Fprintf(env.Out, "\nsecret (shown only once): %s\n", safeText(secret))
	return err
}

func tokensRevoke(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "tokens", "revoke")
	id := fs.String("id", "", "token ID (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := need(fs, "id"); err != nil {
		return err
	}
	tok, err := env.Client.RevokeAdminToken(ctx, *id)
	if err != nil {
		return err
	}
	return env.print(&pb.RevokeAdminTokenResponse{AdminToken: tok}, tokenHeaders, [][]string{tokenRow(tok)})
}

func tokensList(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "tokens", "list")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	toks, err := env.Client.ListAdminTokens(ctx)
	if err != nil {
		return err
	}
	rows := make([][]string, len(toks))
	for i, t := range toks {
		rows[i] = tokenRow(t)
	}
	return env.print(&pb.ListAdminTokensResponse{AdminTokens: toks}, tokenHeaders, rows)
}
