package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// "posfleet terminal …" acts as one payment terminal, for onboarding and
// demos: it registers with an enrollment code, keeps the credential in a
// local file, and sends heartbeats, watches config, pays, reverses,
// refunds and closes its batch through the Go SDK, as a device would.

// terminalVerb is one "posfleet terminal <verb>" command.
type terminalVerb struct {
	summary string
	run     func(ctx context.Context, s *simulator, fs *flag.FlagSet, args []string) error
}

// terminalVerbs are the simulator's commands (see init: they refer to
// terminalUsage, which lists them).
var terminalVerbs map[string]terminalVerb

func init() {
	terminalVerbs = map[string]terminalVerb{
		"register":    {"register with an enrollment code and save the credential", simRegister},
		"heartbeat":   {"report status (and faults); print pending remote commands", simHeartbeat},
		"watch":       {"watch config pushes, apply and acknowledge them", simWatch},
		"pay":         {"authorize a sale (or a pre-auth) in major units: pay 12.50NZD", simPay},
		"reverse":     {"reverse the last payment (or --request-id)", simReverse},
		"refund":      {"refund the last approved sale (or --authorization-id), all or part", simRefund},
		"close-batch": {"close the open batch with the totals of the local journal (or --from-server)", simCloseBatch},
		"capture":     {"capture the last pre-auth (or --authorization-id), all or part", simCapture},
		"open-batch":  {"show the open batch and the server's running totals", simOpenBatch},
	}
}

// defaultTestCard is the token pay uses: the issuer simulator approves
// every token that does not start with tok_test_.
const defaultTestCard = "tok_sim_approve"

// terminalState is the simulator's file: the terminal's identity and
// credential, where its server is, and a journal of its open batch. It is
// written with mode 0600; the credential is never printed.
type terminalState struct {
	TerminalID   string `json:"terminal_id"`
	SerialNumber string `json:"serial_number"`
	MerchantID   string `json:"merchant_id"`
	StoreID      string `json:"store_id"`
	Credential   string `json:"credential"`
	Target       string `json:"target"`
	TLSCA        string `json:"tls_ca,omitempty"`
	TLS          bool   `json:"tls,omitempty"`
	// ConfigVersion is the latest config version applied.
	ConfigVersion uint64 `json:"config_version"`
	// OpenBatch is the batch the server last named as open (0: unknown).
	OpenBatch uint64 `json:"open_batch,omitempty"`
	// Journal holds the payments of the open batch, oldest first.
	Journal []journalEntry `json:"journal,omitempty"`
}

// journalEntry is one payment the terminal made.
type journalEntry struct {
	// Kind is "sale", "preauth", "refund" or "capture".
	Kind            string `json:"kind"`
	RequestID       string `json:"request_id"`
	AuthorizationID string `json:"authorization_id,omitempty"`
	Currency        string `json:"currency"`
	MinorUnits      int64  `json:"minor_units"`
	Approved        bool   `json:"approved"`
	Batch           uint64 `json:"batch"`
	Reversed        bool   `json:"reversed,omitempty"`
	// Refunded is, for a sale, the sum of its approved refunds.
	Refunded int64 `json:"refunded,omitempty"`
	// Captured is, for a pre-auth, what its approved capture took.
	Captured int64 `json:"captured,omitempty"`
}

// simulator is what a verb works with.
type simulator struct {
	out, errw io.Writer
	file      string
	target    string
	tlsCA     string
	useTLS    bool
	timeout   time.Duration
	given     map[string]string
}

// register adds the flags every verb takes.
func (s *simulator) register(fs *flag.FlagSet) {
	fs.StringVar(&s.file, "terminal-file", s.file, "the terminal's credential and journal (written 0600)")
	fs.StringVar(&s.target, "target", s.target, "server address host:port, or a comma-separated list of cluster nodes (host:port,host:port,…): the terminal keeps to the node its serial number ranks first and moves to another when that node is gone (default: the registered one, else 127.0.0.1:7400)")
	fs.StringVar(&s.tlsCA, "tls-ca", s.tlsCA, "CA certificate (PEM) to verify the server; enables TLS")
	fs.BoolVar(&s.useTLS, "tls", s.useTLS, "connect with TLS using the system roots")
	fs.DurationVar(&s.timeout, "timeout", s.timeout, "deadline of each call")
}

func runTerminal(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s := &simulator{out: stdout, errw: stderr, file: "./posfleet-terminal.json", timeout: 15 * time.Second}
	top := newFlagSet("terminal", stderr)
	s.register(top)
	top.Usage = func() { terminalUsage(stderr, top) }
	if err := parseFlagsWithArgs(top, args); err != nil {
		return err
	}
	s.given = map[string]string{}
	top.Visit(func(f *flag.Flag) { s.given[f.Name] = f.Value.String() })
	if top.NArg() == 0 {
		terminalUsage(stderr, top)
		return errUsage
	}
	verb, ok := terminalVerbs[top.Arg(0)]
	if !ok {
		fmt.Fprintf(stderr, "posfleet terminal: unknown command %q\n\n", top.Arg(0))
		terminalUsage(stderr, top)
		return errUsage
	}
	fs := newFlagSet("terminal "+top.Arg(0), stderr)
	s.register(fs)
	for name, v := range s.given {
		fs.Set(name, v)
	}
	return verb.run(ctx, s, fs, top.Args()[1:])
}

func terminalUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintln(w, "usage: posfleet terminal <command> [flags]\n\nAct as one payment terminal (onboarding, demos, support).\n\ncommands:")
	for _, n := range slices.Sorted(maps.Keys(terminalVerbs)) {
		fmt.Fprintf(w, "  %-12s %s\n", n, terminalVerbs[n].summary)
	}
	fmt.Fprintln(w, "\nflags of every command:")
	fs.PrintDefaults()
	fmt.Fprintln(w, "\nRun 'posfleet terminal <command> -h' for a command's own flags.")
}

// load reads the terminal file. It refuses a file others can read: it holds
// a credential.
func (s *simulator) load() (*terminalState, error) {
	fi, err := os.Stat(s.file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no terminal file %s: run 'posfleet terminal register --serial SN --code CODE' first (or give --terminal-file)", s.file)
	}
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("terminal file %s is accessible by others (mode %#o) and holds a credential: chmod 600 it", s.file, fi.Mode().Perm())
	}
	b, err := os.ReadFile(s.file)
	if err != nil {
		return nil, err
	}
	st := &terminalState{}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("terminal file %s: %w", s.file, err)
	}
	if st.TerminalID == "" || st.Credential == "" {
		return nil, fmt.Errorf("terminal file %s holds no registration", s.file)
	}
	return st, nil
}

// save writes st to the terminal file, mode 0600, replacing it atomically.
func (s *simulator) save(st *terminalState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.file), ".posfleet-terminal-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), s.file)
}

// dial connects as st's terminal (or anonymously when st is nil). Flags
// given on the command line win over the registered target and TLS choice.
func (s *simulator) dial(st *terminalState, fs *flag.FlagSet, extra ...client.Option) (*client.Client, error) {
	target, ca, useTLS := s.target, s.tlsCA, s.useTLS
	if st != nil {
		if !isFlagSet(fs, "target") && st.Target != "" {
			target = st.Target
		}
		if !isFlagSet(fs, "tls-ca") && !isFlagSet(fs, "tls") {
			ca, useTLS = st.TLSCA, st.TLS
		}
	}
	if target == "" {
		target = "127.0.0.1:7400"
	}
	tlsOpt, err := tlsOption(ca, useTLS)
	if err != nil {
		return nil, err
	}
	opts := []client.Option{tlsOpt, client.WithDefaultTimeout(s.timeout)}
	if st != nil {
		opts = append(opts, client.WithBearer(st.Credential))
		// With a list of nodes, the same terminal goes back to the same node.
		if st.SerialNumber != "" {
			opts = append(opts, client.WithTargetKey(st.SerialNumber))
		}
	}
	return client.Dial(target, append(opts, extra...)...)
}

// session loads the terminal file and dials as the terminal.
func (s *simulator) session(fs *flag.FlagSet, extra ...client.Option) (*terminalState, *client.Client, error) {
	st, err := s.load()
	if err != nil {
		return nil, nil, err
	}
	c, err := s.dial(st, fs, extra...)
	if err != nil {
		return nil, nil, err
	}
	return st, c, nil
}

// fields prints name/value rows, escaped.
func (s *simulator) fields(rows ...[]string) error {
	return writeTable(s.out, []string{"FIELD", "VALUE"}, rows)
}

func simRegister(ctx context.Context, s *simulator, fs *flag.FlagSet, args []string) error {
	serial := fs.String("serial", "", "hardware serial number the terminal was provisioned with (required)")
	code := fs.String("code", "", "enrollment code from 'posfleet admin terminals provision' (required)")
	model := fs.String("model", "posfleet-terminal-simulator", "device model")
	firmware := fs.String("firmware", "sim-1.0", "firmware version")
	app := fs.String("app", "sim-1.0", "payment app version")
	force := fs.Bool("force", false, "replace an existing terminal file")
	pin := fs.String("signing-key-fingerprint", "", "fingerprint printed by 'posfleet admin terminals provision': refuse an identity signed with another key")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := need(fs, "serial", "code"); err != nil {
		return err
	}
	if old, err := s.load(); err == nil && !*force {
		return fmt.Errorf("%s already holds terminal %s: give another --terminal-file, or --force to replace it", s.file, old.TerminalID)
	}
	c, err := s.dial(nil, fs, client.WithTargetKey(*serial))
	if err != nil {
		return err
	}
	defer c.Close()
	resp, err := c.Register(ctx, *serial, *code, &pb.DeviceInfo{Manufacturer: "posfleet", Model: *model, FirmwareVersion: *firmware, AppVersion: *app})
	if err != nil {
		return err
	}
	id := resp.GetIdentity()
	verified := "yes (Ed25519 signature checked)"
	if *pin != "" {
		if !strings.EqualFold(client.Fingerprint(id.GetPublicKey()), strings.TrimSpace(*pin)) {
			return fmt.Errorf("the identity is signed with key %s, not the pinned one: not saving the credential of this server", id.GetKeyId())
		}
		verified = "yes (signed by the pinned key, version 2 checked)"
		if err := client.VerifyIdentityV2(id, id.GetPublicKey()); err != nil {
			verified = "NO: " + err.Error()
		}
	} else if err := client.VerifyIdentity(id); err != nil {
		verified = "NO: " + err.Error()
	}
	target := s.target
	if target == "" {
		target = "127.0.0.1:7400"
	}
	ca := s.tlsCA
	if ca != "" {
		// Later commands may run from another directory.
		if ca, err = filepath.Abs(ca); err != nil {
			return err
		}
	}
	st := &terminalState{
		TerminalID: resp.GetTerminalId(), SerialNumber: *serial, MerchantID: id.GetMerchantId(), StoreID: id.GetStoreId(),
		Credential: resp.GetCredential(), Target: target, TLSCA: ca, TLS: s.useTLS,
		ConfigVersion: resp.GetConfig().GetVersion(),
	}
	if err := s.save(st); err != nil {
		return fmt.Errorf("registered as %s, but the credential could not be saved: %w", st.TerminalID, err)
	}
	return s.fields(
		[]string{"terminal_id", st.TerminalID},
		[]string{"merchant", id.GetMerchantId() + " " + id.GetLegalName()},
		[]string{"store", id.GetStoreId() + " " + id.GetStoreName()},
		[]string{"identity_verified", verified},
		[]string{"signing_key", client.Fingerprint(id.GetPublicKey())},
		[]string{"config_version", strconv.FormatUint(st.ConfigVersion, 10)},
		[]string{"heartbeat_every", resp.GetHeartbeatInterval().AsDuration().Round(time.Second).String()},
		[]string{"credential", "saved to " + s.file + " (mode 0600)"},
	)
}

// faultsFlag collects repeated --fault component:code[:message] flags.
type faultsFlag []*pb.Fault

func (f *faultsFlag) String() string { return "" }

func (f *faultsFlag) Set(v string) error {
	parts := strings.SplitN(v, ":", 3)
	if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
		return fmt.Errorf("want component:code[:message], got %q", v)
	}
	ft := &pb.Fault{Component: parts[0], Code: parts[1], Severity: pb.FaultSeverity_FAULT_SEVERITY_WARNING}
	if len(parts) == 3 {
		ft.Message = parts[2]
	}
	*f = append(*f, ft)
	return nil
}

func simHeartbeat(ctx context.Context, s *simulator, fs *flag.FlagSet, args []string) error {
	firmware := fs.String("firmware", "sim-1.0", "firmware version to report")
	app := fs.String("app", "sim-1.0", "payment app version to report")
	battery := fs.Int("battery", -1, "battery percent to report (-1: no battery)")
	var faults faultsFlag
	fs.Var(&faults, "fault", "report a fault component:code[:message] (repeatable)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *battery > 100 {
		return fmt.Errorf("--battery %d: want 0-100, or -1 for none", *battery)
	}
	st, c, err := s.session(fs)
	if err != nil {
		return err
	}
	defer c.Close()
	status := &pb.TerminalStatus{FirmwareVersion: *firmware, AppVersion: *app, ConfigVersion: st.ConfigVersion}
	if *battery >= 0 {
		b := uint32(*battery)
		status.BatteryPercent = &b
	}
	resp, err := c.Heartbeat(ctx, status, faults...)
	if err != nil {
		return err
	}
	rows := [][]string{
		{"terminal_id", st.TerminalID},
		{"server_time", tsText(resp.GetServerTime())},
		{"config_version", fmt.Sprintf("%d (running %d)", resp.GetConfigVersion(), st.ConfigVersion)},
		{"next_heartbeat", resp.GetNextHeartbeat().AsDuration().Round(time.Second).String()},
	}
	for _, cmd := range resp.GetCommands() {
		rows = append(rows, []string{"command", cmd.GetCommandId() + " " + enumName(cmd.GetType().String(), "COMMAND_TYPE_") + " " + paramsFlag(cmd.GetParameters()).String()})
	}
	return s.fields(rows...)
}

func simWatch(ctx context.Context, s *simulator, fs *flag.FlagSet, args []string) error {
	count := fs.Int("count", 0, "stop after this many config versions (0: until interrupted or --for)")
	dur := fs.Duration("for", 0, "stop after this long (0: until interrupted or --count)")
	reject := fs.Bool("reject", false, "acknowledge configs as REJECTED (to exercise rollout health)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *dur)
		defer cancel()
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	// --count stops the watch once the count-th acknowledgement has been
	// answered: the SDK acknowledges after Apply returns, on the stream's
	// context, so stopping from Apply would lose the acknowledgement.
	acks := 0
	countAcks := grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if method == pb.TerminalService_AckConfig_FullMethodName && err == nil {
			if acks++; *count > 0 && acks >= *count {
				stop()
			}
		}
		return err
	})
	st, c, err := s.session(fs, client.WithDialOptions(countAcks))
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(s.out, "watching config of %s from version %d (Ctrl-C stops)\n", safeText(st.TerminalID), st.ConfigVersion)
	last, err := c.WatchConfig(ctx, client.ConfigWatch{
		KnownVersion: st.ConfigVersion,
		Apply: func(_ context.Context, cfg *pb.WatchConfigResponse) error {
			set := cfg.GetSettings()
			fmt.Fprintf(s.out, "config v%d rollout %s: header \"%s\", per-transaction limit %s, daily limit %s, heartbeat %s\n",
				cfg.GetVersion(), safeText(orDash(cfg.GetRolloutId())), safeText(set.GetReceiptHeader()),
				safeText(moneyText(set.GetPerTransactionLimit())), safeText(moneyText(set.GetDailyLimit())), set.GetHeartbeatInterval().AsDuration())
			if *reject {
				return errors.New("rejected by the simulator (--reject)")
			}
			st.ConfigVersion = cfg.GetVersion()
			return nil
		},
		Commands: func(_ context.Context, cmds []*pb.RemoteCommand) {
			for _, cmd := range cmds {
				fmt.Fprintf(s.out, "command %s %s\n", safeText(cmd.GetCommandId()), enumName(cmd.GetType().String(), "COMMAND_TYPE_"))
			}
		},
		OnError: func(err error, retryIn time.Duration) {
			fmt.Fprintf(s.errw, "watch: %s (retrying in %s)\n", humanError(err), retryIn.Round(time.Millisecond))
		},
	})
	if serr := s.save(st); serr != nil {
		return serr
	}
	if ctx.Err() != nil { // stopped by --count, --for or Ctrl-C
		fmt.Fprintf(s.out, "stopped at config version %d\n", last)
		return nil
	}
	return err
}

// amountArg is the amount of pay or refund: a positional argument or
// --amount, with --currency for a bare number.
func amountArg(fs *flag.FlagSet, pos []string, amount, cur string) (*pb.Money, error) {
	switch {
	case len(pos) > 1, len(pos) == 1 && amount != "":
		return nil, fmt.Errorf("give one amount, e.g. 12.50NZD or --amount 12.50 --currency NZD")
	case len(pos) == 1:
		amount = pos[0]
	case amount == "":
		return nil, nil
	}
	m, err := parseMoney(amount, cur)
	if err != nil {
		return nil, fmt.Errorf("amount %w", err)
	}
	if isFlagSet(fs, "currency") && !strings.EqualFold(m.GetCurrency(), cur) {
		return nil, fmt.Errorf("amount %s is not in --currency %s", moneyText(m), cur)
	}
	return m, nil
}

func simPay(ctx context.Context, s *simulator, fs *flag.FlagSet, args []string) error {
	amount := fs.String("amount", "", "amount in major units, e.g. 12.50 (with --currency) or 12.50NZD")
	cur := fs.String("currency", "", "ISO 4217 currency of a bare --amount, e.g. NZD")
	card := fs.String("card", defaultTestCard, "card token; tok_test_decline, tok_test_nsf, tok_test_expired… select declines")
	masked := fs.String("masked-pan", "411111******1111", "masked card number (first 6, last 4)")
	mode := fs.String("entry-mode", "chip", "chip, contactless, swipe, manual or qr")
	merchant := fs.String("merchant", "", "merchant ID to claim (default: the bound merchant)")
	preauth := fs.Bool("preauth", false, "authorize without capture (a pre-auth hold)")
	requestID := fs.String("request-id", "", "idempotency key (default: a new UUID); the same key replays the answer")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	m, err := amountArg(fs, pos, *amount, *cur)
	if err != nil {
		return err
	}
	if m == nil {
		return errors.New("give an amount, e.g. 'posfleet terminal pay 12.50NZD' or --amount 12.50 --currency NZD")
	}
	em, err := parseEnum("entry-mode", *mode, "ENTRY_MODE_", pb.EntryMode_value)
	if err != nil {
		return err
	}
	st, c, err := s.session(fs)
	if err != nil {
		return err
	}
	defer c.Close()
	if *merchant == "" {
		*merchant = st.MerchantID
	}
	req := &pb.AuthorizeRequest{
		RequestId: *requestID, MerchantId: *merchant, Amount: m, Capture: !*preauth,
		Card: &pb.Card{Token: *card, MaskedPan: *masked, EntryMode: pb.EntryMode(em)},
	}
	resp, err := c.Authorize(ctx, req)
	if err != nil {
		return err
	}
	kind := "sale"
	if *preauth {
		kind = "preauth"
	}
	entry := journalEntry{Kind: kind, RequestID: req.GetRequestId(), AuthorizationID: resp.GetAuthorizationId()}
	if err := s.record(st, entry, m, resp.GetDecision(), resp.GetBatchNumber(), resp.GetReplayed()); err != nil {
		return err
	}
	return s.fields(
		decisionRow(resp.GetDecision()),
		[]string{"response_code", resp.GetResponseCode() + " " + resp.GetMessage()},
		[]string{"amount", moneyText(m)},
		[]string{"auth_code", orDash(resp.GetAuthCode())},
		[]string{"authorization_id", orDash(resp.GetAuthorizationId())},
		[]string{"request_id", req.GetRequestId()},
		[]string{"batch", strconv.FormatUint(resp.GetBatchNumber(), 10)},
		[]string{"replayed", strconv.FormatBool(resp.GetReplayed())},
	)
}

// record adds a payment's outcome to the journal (a replay is already
// there), notes the open batch the server named and saves the file.
func (s *simulator) record(st *terminalState, e journalEntry, m *pb.Money, d pb.Decision, batch uint64, replayed bool) error {
	if !replayed {
		e.Currency, e.MinorUnits = m.GetCurrency(), m.GetMinorUnits()
		e.Approved, e.Batch = d == pb.Decision_DECISION_APPROVED, batch
		st.Journal = append(st.Journal, e)
	}
	if batch != 0 {
		st.OpenBatch = batch
	}
	return s.save(st)
}

func decisionRow(d pb.Decision) []string {
	return []string{"decision", enumName(d.String(), "DECISION_")}
}

// pick finds the journal entry a command acts on: the newest whose key is
// given, else the newest that def accepts. It returns the entry (nil when
// the journal has none) and its key (given even without an entry).
func (st *terminalState) pick(given string, key func(*journalEntry) string, def func(*journalEntry) bool) (*journalEntry, string) {
	e := st.lastEntry(func(e *journalEntry) bool {
		if given != "" {
			return key(e) == given
		}
		return def(e)
	})
	if e != nil {
		return e, key(e)
	}
	return nil, given
}

// lastEntry returns the newest journal entry that match accepts.
func (st *terminalState) lastEntry(match func(*journalEntry) bool) *journalEntry {
	for i := len(st.Journal) - 1; i >= 0; i-- {
		if match(&st.Journal[i]) {
			return &st.Journal[i]
		}
	}
	return nil
}

func simReverse(ctx context.Context, s *simulator, fs *flag.FlagSet, args []string) error {
	requestID := fs.String("request-id", "", "request_id of the payment to reverse (default: the last approved payment still standing)")
	reason := fs.String("reason", "customer-cancel", "customer-cancel, timeout or device-fault")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	r, err := parseEnum("reason", *reason, "REVERSAL_REASON_", pb.ReversalReason_value)
	if err != nil {
		return err
	}
	st, c, err := s.session(fs)
	if err != nil {
		return err
	}
	defer c.Close()
	e, orig := st.pick(*requestID, func(e *journalEntry) string { return e.RequestID },
		func(e *journalEntry) bool { return e.Kind != "refund" && e.Approved && !e.Reversed })
	if orig == "" {
		return fmt.Errorf("no payment to reverse in %s: give --request-id", s.file)
	}
	resp, err := c.Reverse(ctx, &pb.ReverseRequest{OriginalRequestId: orig, Reason: pb.ReversalReason(r)})
	if err != nil {
		return err
	}
	switch resp.GetStatus() {
	case pb.ReverseStatus_REVERSE_STATUS_REVERSED, pb.ReverseStatus_REVERSE_STATUS_ALREADY_REVERSED:
		if e != nil {
			e.Reversed = true
		}
	}
	if err := s.save(st); err != nil {
		return err
	}
	return s.fields(
		[]string{"status", enumName(resp.GetStatus().String(), "REVERSE_STATUS_")},
		[]string{"original_request_id", orig},
		[]string{"authorization_id", orDash(resp.GetAuthorizationId())},
		[]string{"reversed_amount", moneyText(resp.GetReversedAmount())},
	)
}

func simRefund(ctx context.Context, s *simulator, fs *flag.FlagSet, args []string) error {
	f, err := s.followUp(fs, args, followUpSpec{
		verb: "refund", original: "sale",
		idHelp:     "approved sale to refund (default: the last approved sale)",
		amountHelp: "amount to refund in major units (default: what is left of the sale)",
		eligible:   func(e *journalEntry) bool { return e.Kind == "sale" && e.Approved && !e.Reversed },
		rest:       func(e *journalEntry) int64 { return e.MinorUnits - e.Refunded },
	})
	if err != nil {
		return err
	}
	defer f.c.Close()
	st, c, sale, id, m := f.st, f.c, f.orig, f.id, f.amount
	req := &pb.RefundRequest{AuthorizationId: id, Amount: m}
	resp, err := c.Refund(ctx, req)
	if err != nil {
		return err
	}
	if !resp.GetReplayed() && resp.GetDecision() == pb.Decision_DECISION_APPROVED && sale != nil {
		sale.Refunded += m.GetMinorUnits()
	}
	entry := journalEntry{Kind: "refund", RequestID: req.GetRequestId(), AuthorizationID: resp.GetRefundId()}
	if err := s.record(st, entry, m, resp.GetDecision(), resp.GetBatchNumber(), resp.GetReplayed()); err != nil {
		return err
	}
	return s.fields(
		decisionRow(resp.GetDecision()),
		[]string{"response_code", resp.GetResponseCode() + " " + resp.GetMessage()},
		[]string{"amount", moneyText(m)},
		[]string{"refund_id", orDash(resp.GetRefundId())},
		[]string{"remaining_refundable", moneyText(resp.GetRemainingRefundable())},
		[]string{"batch", strconv.FormatUint(resp.GetBatchNumber(), 10)},
	)
}

// batchItem is one payment as batch totals count it.
type batchItem struct {
	kind               string // "sale", "preauth", "refund" or "capture"
	approved, reversed bool
	// captured: a pre-auth that was captured, no longer a hold.
	captured   bool
	minorUnits int64
}

// batchTotals are the totals of items as the server counts them: approved
// sales and captures not reversed, approved refunds, reversed approvals,
// and live pre-auth holds (not captured).
func batchTotals(items []batchItem, currency string) *pb.BatchTotals {
	money := func(n int64) *pb.Money { return &pb.Money{Currency: currency, MinorUnits: n} }
	var sales, refunds, reversals, preauths struct {
		n   uint64
		sum int64
	}
	for _, e := range items {
		if !e.approved {
			continue
		}
		switch {
		case e.reversed:
			reversals.n++
			reversals.sum += e.minorUnits
		case e.kind == "sale" || e.kind == "capture":
			sales.n++
			sales.sum += e.minorUnits
		case e.kind == "refund":
			refunds.n++
			refunds.sum += e.minorUnits
		case e.kind == "preauth" && !e.captured:
			preauths.n++
			preauths.sum += e.minorUnits
		}
	}
	return &pb.BatchTotals{
		SaleCount: sales.n, SaleAmount: money(sales.sum), RefundCount: refunds.n, RefundAmount: money(refunds.sum),
		ReversalCount: reversals.n, ReversalAmount: money(reversals.sum), PreauthCount: preauths.n, PreauthAmount: money(preauths.sum),
	}
}

// journalItems are the journal's payments of batch.
func (st *terminalState) journalItems(batch uint64) []batchItem {
	var out []batchItem
	for _, e := range st.Journal {
		if e.Batch == batch {
			out = append(out, batchItem{kind: e.Kind, approved: e.Approved, reversed: e.Reversed, captured: e.Captured > 0, minorUnits: e.MinorUnits})
		}
	}
	return out
}

// serverItems reads the terminal's transactions of batch from the server's
// ledger with an admin token (for a terminal whose journal was lost). With
// batch 0 it takes the batch of the newest transaction. It returns the
// batch, its items and their currency.
func (s *simulator) serverItems(ctx context.Context, fs *flag.FlagSet, st *terminalState, tokenFile string, batch uint64) (uint64, []batchItem, string, error) {
	env := &adminEnv{conn: adminConnFlags{target: st.Target, tokenFile: tokenFile, tlsCA: st.TLSCA, useTLS: st.TLS, timeout: s.timeout}}
	if isFlagSet(fs, "target") {
		env.conn.target = s.target
	}
	if isFlagSet(fs, "tls-ca") || isFlagSet(fs, "tls") {
		env.conn.tlsCA, env.conn.useTLS = s.tlsCA, s.useTLS
	}
	if err := env.dial(isFlagSet(fs, "admin-token-file")); err != nil {
		return 0, nil, "", err
	}
	defer env.Client.Close()
	var items []batchItem
	currency, token := "", ""
	for {
		resp, err := env.Client.Admin().ListTransactions(ctx, &pb.ListTransactionsRequest{
			TerminalId: st.TerminalID, BatchNumber: batch, PageSize: 1000, PageToken: token,
		})
		if err != nil {
			return 0, nil, "", err
		}
		for _, t := range resp.GetTransactions() {
			if batch == 0 {
				batch = t.GetBatchNumber() // newest first
			}
			if t.GetBatchNumber() != batch {
				continue
			}
			currency = t.GetAmount().GetCurrency()
			items = append(items, batchItem{
				kind:     strings.ToLower(enumName(t.GetKind().String(), "TRANSACTION_KIND_")),
				approved: t.GetDecision() == pb.Decision_DECISION_APPROVED, reversed: t.GetReversed(),
				captured: t.GetCapturedAmount().GetMinorUnits() > 0, minorUnits: t.GetAmount().GetMinorUnits(),
			})
		}
		if token = resp.GetNextPageToken(); token == "" {
			return batch, items, currency, nil
		}
	}
}

func simCloseBatch(ctx context.Context, s *simulator, fs *flag.FlagSet, args []string) error {
	batch := fs.Uint64("batch", 0, "batch to close (default: the open batch the server last named)")
	cur := fs.String("currency", "", "currency of the totals (default: that of the batch's payments)")
	fromServer := fs.Bool("from-server", false, "take the totals from the server's ledger instead of the local journal (needs an admin token)")
	tokenFile := fs.String("admin-token-file", "./posfleet-data/admin.token", "admin token for --from-server (or set POSFLEET_ADMIN_TOKEN)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	st, c, err := s.session(fs)
	if err != nil {
		return err
	}
	defer c.Close()
	b := st.OpenBatch
	if isFlagSet(fs, "batch") {
		b = *batch
	}
	var items []batchItem
	currency := ""
	if *fromServer {
		if b, items, currency, err = s.serverItems(ctx, fs, st, *tokenFile, b); err != nil {
			return err
		}
	} else {
		items = st.journalItems(b)
		if e := st.lastEntry(func(e *journalEntry) bool { return e.Batch == b }); e != nil {
			currency = e.Currency
		}
	}
	if b == 0 {
		return fmt.Errorf("the open batch is not known (no payment in %s): give --batch N, or --from-server", s.file)
	}
	if *cur != "" {
		currency = strings.ToUpper(*cur)
	}
	if currency == "" {
		return errors.New("no payment of this batch to take the currency from: give --currency")
	}
	mine := batchTotals(items, currency)
	resp, err := c.CloseBatch(ctx, &pb.CloseBatchRequest{BatchNumber: b, TerminalTotals: mine})
	if err != nil {
		return err
	}
	keep := st.Journal[:0]
	for _, e := range st.Journal {
		if e.Batch > resp.GetBatchNumber() {
			keep = append(keep, e)
		}
	}
	st.Journal, st.OpenBatch = keep, resp.GetNextBatchNumber()
	if err := s.save(st); err != nil {
		return err
	}
	if err := writeTable(s.out, []string{"TOTALS", "SALES", "REFUNDS", "REVERSALS", "PRE-AUTHS"}, [][]string{
		totalsRow("terminal", mine), totalsRow("server", resp.GetServerTotals()),
	}); err != nil {
		return err
	}
	balance := "IN BALANCE"
	if !resp.GetInBalance() {
		balance = "OUT OF BALANCE: the server's totals differ from the terminal's"
	}
	_, err = fmt.Fprintf(s.out, "batch %d closed %s: %s; batch %d is open\n", resp.GetBatchNumber(), tsText(resp.GetCloseTime()), balance, resp.GetNextBatchNumber())
	return err
}

// followUpSpec describes a payment that follows an earlier approved one
// (a refund of a sale, a capture of a pre-auth).
type followUpSpec struct {
	// verb and original name the payment and what it follows, in messages.
	verb, original string
	// idHelp and amountHelp are the help texts of --authorization-id and
	// --amount.
	idHelp, amountHelp string
	// eligible picks the default original from the journal.
	eligible func(*journalEntry) bool
	// rest is the default amount: what is left of the original.
	rest func(*journalEntry) int64
}

// followUp is a follow-up payment ready to send: the session, the original
// (nil when it is not in the local journal), its authorization ID and the
// amount.
type followUp struct {
	st     *terminalState
	c      *client.Client
	orig   *journalEntry
	id     string
	amount *pb.Money
}

// followUp parses a follow-up payment's flags, opens the session and picks
// the original and the amount. The caller closes f.c.
func (s *simulator) followUp(fs *flag.FlagSet, args []string, spec followUpSpec) (_ followUp, err error) {
	authID := fs.String("authorization-id", "", spec.idHelp)
	amount := fs.String("amount", "", spec.amountHelp)
	cur := fs.String("currency", "", "ISO 4217 currency of a bare --amount")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return followUp{}, err
	}
	m, err := amountArg(fs, pos, *amount, *cur)
	if err != nil {
		return followUp{}, err
	}
	st, c, err := s.session(fs)
	if err != nil {
		return followUp{}, err
	}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	orig, id := st.pick(*authID, func(e *journalEntry) string { return e.AuthorizationID }, spec.eligible)
	if id == "" {
		return followUp{}, fmt.Errorf("no approved %s to %s in %s: give --authorization-id", spec.original, spec.verb, s.file)
	}
	if m == nil {
		if orig == nil {
			return followUp{}, fmt.Errorf("give the amount to %s: the %s is not in the local journal", spec.verb, spec.original)
		}
		m = &pb.Money{Currency: orig.Currency, MinorUnits: spec.rest(orig)}
	}
	return followUp{st: st, c: c, orig: orig, id: id, amount: m}, nil
}
