package conformance

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server"
)

// Merchant, store and serial number the kit provisions for the terminal
// under test.
const (
	MerchantID = "CONFORMANCE01"
	StoreID    = "lab"
	// SecondStoreID is the store the batch-mismatch scenario rebinds the
	// terminal to.
	SecondStoreID = "lab-2"
	SerialNumber  = "SN-CONFORMANCE-1"
	Currency      = "NZD"
)

// Options configure a run.
type Options struct {
	// Listen is the loopback address the terminal under test connects to.
	// Default "127.0.0.1:7401".
	Listen string
	// Timeout bounds the whole run; the report grades what happened by
	// then. Default 3 minutes.
	Timeout time.Duration
	// Terminal runs the terminal under test against target; the run is
	// graded when it returns, and an error fails the report. When nil,
	// Ready should tell a person how to start their terminal, and the run
	// lasts until ctx ends or Timeout.
	Terminal func(ctx context.Context, target Target) error
	// Ready, when set, is called with the target once it is listening.
	Ready func(target Target)
	// Scenarios are the IDs of the scenarios to play and grade (see
	// ScenarioIDs and ParseScenarios). Empty: every scenario.
	Scenarios []string
}

// DefaultOptions returns the defaults described on Options.
func DefaultOptions() Options {
	return Options{Listen: "127.0.0.1:7401", Timeout: 3 * time.Minute, Scenarios: ScenarioIDs()}
}

// Validate reports the first unusable option.
func (o Options) Validate() error {
	host, _, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return fmt.Errorf("conformance: listen address %q: %w", o.Listen, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("conformance: listen address %q is not loopback", o.Listen)
	}
	if o.Timeout <= 0 {
		return errors.New("conformance: timeout must be positive")
	}
	for _, id := range o.Scenarios {
		if !slices.Contains(scenarioIDs, id) {
			return fmt.Errorf("conformance: unknown scenario %q", id)
		}
	}
	return nil
}

// Target is what a terminal under test needs to know: where to connect
// and what an operator would have told it out of band.
type Target struct {
	// Addr is the kit's address (plaintext gRPC).
	Addr string
	// SerialNumber and EnrollmentCode register the terminal.
	SerialNumber, EnrollmentCode string
	// MerchantID is the merchant the terminal is bound to; Currency the
	// merchant's currency.
	MerchantID, Currency string
	// PinnedKey is the server's identity signing key.
	PinnedKey ed25519.PublicKey
	// RotateCredential says that the rotation scenario is played. The kit
	// asks for the rotation with a COMMAND_TYPE_ROTATE_CREDENTIAL command
	// pushed on the terminal's WatchConfig stream; this flag (the
	// environment's POSFLEET_ROTATE_CREDENTIAL) is how it asked before
	// that command existed.
	//
	// Deprecated: carry out the command instead. A terminal that rotates
	// on this flag alone passes with a DEPRECATED note for one release.
	RotateCredential bool
}

// Env returns the target as the POSFLEET_* environment variables the
// example terminals read.
func (t Target) Env() []string {
	return []string{
		"POSFLEET_TARGET=" + t.Addr,
		"POSFLEET_SERIAL=" + t.SerialNumber,
		"POSFLEET_ENROLLMENT_CODE=" + t.EnrollmentCode,
		"POSFLEET_MERCHANT_ID=" + t.MerchantID,
		"POSFLEET_CURRENCY=" + t.Currency,
		"POSFLEET_PINNED_KEY=" + hex.EncodeToString(t.PinnedKey),
		"POSFLEET_ROTATE_CREDENTIAL=" + strconv.FormatBool(t.RotateCredential),
	}
}

// Run starts a real posfleet server in memory, puts the fault-playing
// proxy in front of it on opts.Listen, provisions a terminal, runs the
// terminal under test (or waits for one), plays the operator (a remote
// command and a config for the terminal once it has registered) and
// grades what the terminal did.
func Run(ctx context.Context, opts Options, logger *slog.Logger) (*Report, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()

	dir, err := os.MkdirTemp("", "posfleet-conformance")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	token := server.NewSecret("pfa_")
	cfg := server.DefaultConfig(dir)
	cfg.InMemory = true
	cfg.AdminToken = token
	srv, err := server.New(cfg, logger.With("component", "server"))
	if err != nil {
		return nil, err
	}
	backendLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		return nil, err
	}
	srvCtx, stopSrv := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(srvCtx, backendLis) }()
	defer func() {
		stopSrv()
		if err := <-served; err != nil {
			logger.Warn("server shutdown", "err", err)
		}
	}()

	admin, err := client.Dial(backendLis.Addr().String(), client.WithInsecure(), client.WithBearer(token), client.WithDefaultTimeout(10*time.Second))
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	target, err := provision(ctx, admin, srv)
	if err != nil {
		return nil, err
	}

	backend, err := grpc.NewClient(backendLis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer backend.Close()
	if len(opts.Scenarios) == 0 {
		opts.Scenarios = ScenarioIDs()
	}
	sc := newScript(time.Now, opts.Scenarios)
	target.RotateCredential = sc.plays[IDRotation]
	px := &proxy{backend: backend, script: sc}
	lis, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, err
	}
	fr := newFront(lis, func() *grpc.Server {
		return grpc.NewServer(grpc.UnknownServiceHandler(px.handle), grpc.ForceServerCodec(rawCodec{}))
	})
	go fr.serve()
	defer fr.stop()
	sc.recycle = fr.recycle
	sc.rebind = func(bearer string) error {
		sc.mu.Lock()
		id := sc.terminalID
		sc.mu.Unlock()
		asTerminal := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+bearer)
		pay := pb.NewPaymentServiceClient(backend)
		// The server's totals of the batch it is about to close, for the
		// batch scenario to compare the terminal's with.
		open, err := pay.GetOpenBatch(asTerminal, &pb.GetOpenBatchRequest{})
		if err != nil {
			return err
		}
		sc.mu.Lock()
		sc.closedUnder = open
		sc.mu.Unlock()
		// The server closes the batch of the old binding before it decides
		// the terminal's CloseBatch, and refuses that close.
		_, err = admin.RebindTerminal(ctx, id, MerchantID, SecondStoreID, "conformance: batch-mismatch scenario")
		return err
	}
	target.Addr = lis.Addr().String()
	if opts.Ready != nil {
		opts.Ready(target)
	}

	op := make(chan operated, 1)
	go func() { op <- operate(ctx, admin, sc) }()

	rep := &Report{}
	if opts.Terminal != nil {
		rep.TerminalRan = true
		rep.TerminalErr = opts.Terminal(ctx, target)
	} else {
		<-ctx.Done()
	}
	cancel()
	done := <-op
	if done.err != nil && !cutShort(done.err) {
		return nil, done.err
	}
	rep.Results = grade(ctx, sc.journal(), sc, done, backend)
	rep.Calls = len(sc.journal())
	return rep, nil
}

// provision creates the merchant, store and terminal the kit offers and
// reads the server's signing key, as an operator would hand them over.
func provision(ctx context.Context, admin *client.Client, srv *server.Server) (Target, error) {
	if _, err := admin.CreateMerchant(ctx, &pb.Merchant{MerchantId: MerchantID, LegalName: "Conformance Lab Ltd", DisplayName: "Conformance Lab", Mcc: "5999", Currency: Currency}); err != nil {
		return Target{}, err
	}
	for _, st := range []*pb.Store{{MerchantId: MerchantID, StoreId: StoreID, Name: "Lab"}, {MerchantId: MerchantID, StoreId: SecondStoreID, Name: "Lab 2"}} {
		if _, err := admin.CreateStore(ctx, st); err != nil {
			return Target{}, err
		}
	}
	prov, err := admin.ProvisionTerminal(ctx, SerialNumber, MerchantID, StoreID, "under test", time.Hour)
	if err != nil {
		return Target{}, err
	}
	t := Target{SerialNumber: SerialNumber, EnrollmentCode: prov.GetEnrollmentCode(), MerchantID: MerchantID, Currency: Currency}
	for _, k := range srv.Engines().Fleet.PublicKeys() {
		if k.Active {
			t.PinnedKey = k.Key
		}
	}
	if t.PinnedKey == nil {
		return Target{}, errors.New("conformance: server has no active signing key")
	}
	return t, nil
}

// operated is what the kit did as operator.
type operated struct {
	commandID string
	// rotation is the ROTATE_CREDENTIAL command of the rotation scenario.
	rotation      rotationAsk
	configVersion uint64
	// rejectVersion is the version published to be pushed with bad
	// settings (the push may carry a later one if it was superseded).
	rejectVersion uint64
	err           error
}

// operate waits for the terminal to register and make its first call, then queues a remote command
// and publishes a config for it. With rejected-config, a config pushed
// with bad settings comes first, and the good one once the terminal has
// acknowledged it; with rotation, a ROTATE_CREDENTIAL command is queued
// once a WatchConfig stream is open, and the good config waits (at most
// rotationWait) until the terminal has rotated its credential, so that it
// arrives on the stream reopened with the new credential.
func operate(ctx context.Context, admin *client.Client, sc *script) operated {
	select {
	case <-sc.running:
	case <-ctx.Done():
		return operated{err: ctx.Err()}
	}
	sc.mu.Lock()
	id := sc.terminalID
	sc.mu.Unlock()
	var op operated
	if sc.plays[IDCommand] {
		cmd, err := admin.SendCommand(ctx, id, pb.CommandType_COMMAND_TYPE_UPLOAD_LOGS, nil, time.Hour)
		if err != nil {
			return operated{err: err}
		}
		op.commandID = cmd.GetCommandId()
	}
	publish := func(header string) (uint64, error) {
		pub, err := admin.Admin().PublishConfig(ctx, &pb.PublishConfigRequest{
			Scope:    &pb.ConfigScope{TerminalId: id},
			Settings: &pb.Settings{ReceiptHeader: &header, Extra: map[string]string{"conformance.run": "1"}},
		})
		return pub.GetVersion(), err
	}
	if sc.plays[IDRejected] {
		v, err := publish(rejectedHeader)
		if op.rejectVersion, op.err = v, err; err != nil {
			return op
		}
		select {
		case <-sc.rejectAcked:
		case <-ctx.Done():
			op.err = ctx.Err()
			return op
		}
	}
	if sc.plays[IDRotation] {
		// Asked once a stream is open, so that the command is pushed on it.
		select {
		case <-sc.watching:
		case <-ctx.Done():
			op.err = ctx.Err()
			return op
		}
		at := len(sc.journal())
		cmd, err := admin.SendCommand(ctx, id, pb.CommandType_COMMAND_TYPE_ROTATE_CREDENTIAL, nil, time.Hour)
		if err != nil {
			op.err = err
			return op
		}
		op.rotation = rotationAsk{id: cmd.GetCommandId(), at: at}
		t := time.NewTimer(rotationWait)
		select {
		case <-sc.rotated:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			op.err = ctx.Err()
			return op
		}
		t.Stop()
	}
	if sc.plays[IDConfig] {
		op.configVersion, op.err = publish("Conformance lab")
	}
	return op
}

// rotationWait bounds how long the operator waits for the terminal's
// credential rotation before publishing the config it would push on the
// reopened stream.
const rotationWait = 20 * time.Second

// cutShort reports whether err only says the run ended before the
// operator's work was done (the terminal exited early, or time ran out).
func cutShort(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	c := status.Code(err)
	return c == codes.Canceled || c == codes.DeadlineExceeded
}
