package loadgen

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// Operations recorded by the fleet simulation.
const (
	OpCreateMerchant = "create_merchant"
	OpCreateStore    = "create_store"
	OpProvision      = "provision"
	OpRegister       = "register"
	OpHeartbeat      = "heartbeat"
	OpAuthorize      = "authorize"
	OpReverse        = "reverse"
	OpRefund         = "refund"
	OpCloseBatch     = "close_batch"
	OpPublishConfig  = "publish_config"
	// OpWatch counts broken WatchConfig streams (untimed).
	OpWatch = "watch"
	// OpAckConfig counts failed config acknowledgements (untimed; the
	// client SDK acknowledges and retries on its own).
	OpAckConfig = "ack_config"
)

// DefaultDeclineTokens returns the posfleet issuer simulator's declining
// test cards (see server/payment): do not honour (05), insufficient funds
// (51), expired card (54) and invalid card (14). The system-error card (96)
// is left out so that declines do not read as server failures.
func DefaultDeclineTokens() []string {
	return []string{"tok_test_decline", "tok_test_nsf", "tok_test_expired", "tok_test_invalid"}
}

// RolloutMarkerKey is the Settings.extra key a config-rollout publish sets,
// so that terminals can tell the new version when it arrives.
const RolloutMarkerKey = "loadgen.marker"

// FleetConfig configures a simulated fleet. Zero fields take the defaults
// noted.
type FleetConfig struct {
	// Terminals is the number of simulated terminals. Required.
	Terminals int
	// Merchants to create (default one per 100 terminals, at least one).
	Merchants int
	// StoresPerMerchant (default 2).
	StoresPerMerchant int
	// Currency of the merchants and payments (default "USD").
	Currency string
	// MCC of the merchants (default "5411", grocery).
	MCC string
	// Mix weights the transaction kinds (default DefaultMix).
	Mix Mix
	// DeclineTokens are issuer-simulator test-card tokens that decline
	// (default DefaultDeclineTokens). One is picked per decline.
	DeclineTokens []string
	// MinAmount and MaxAmount bound sale amounts in minor units (default
	// 100 to 5000).
	MinAmount, MaxAmount int64
	// HeartbeatInterval overrides the interval the server hands out; zero
	// follows the server.
	HeartbeatInterval time.Duration
	// NoWatch disables the per-terminal WatchConfig streams.
	NoWatch bool
	// SetupConcurrency bounds concurrent admin and registration calls
	// during setup and batch close (default 32).
	SetupConcurrency int
	// CallTimeout is the deadline of each unary call, and of each attempt of
	// a payment call (default 10s).
	CallTimeout time.Duration
	// Attempts is how many times the client SDK tries a payment call before
	// giving up (default 4, the SDK's). Retries resend the same request_id
	// and an authorization whose outcome stays unknown is reversed, as a
	// real terminal does; the recorded latency is the terminal's, retries
	// included. 1 turns retries off so that every failure is counted as it
	// happens.
	Attempts int
	// RunID prefixes every identifier the fleet creates so that runs never
	// collide (default: random, 6 characters).
	RunID string
	// Seed makes the transaction mix reproducible (default random).
	Seed uint64
	// RolloutGate makes the config-rollout publish a harmful change on
	// purpose, to measure the payment gate: a per-transaction limit of one
	// minor unit (every sale then declines with 61), in stages of 10, 50 and
	// 100% with a payment gate that rolls back on a breach. The run reports
	// how soon and after how many terminals and payments the gate stopped
	// it.
	RolloutGate bool
	// RolloutGateSoak is the gate's soak time (default 30s) and
	// RolloutGateMinPayments the payments it needs to judge (default 20).
	RolloutGateSoak        time.Duration
	RolloutGateMinPayments uint64
}

func (c FleetConfig) withDefaults() FleetConfig {
	if c.Merchants == 0 {
		c.Merchants = max(1, (c.Terminals+99)/100)
	}
	if c.StoresPerMerchant == 0 {
		c.StoresPerMerchant = 2
	}
	if c.RolloutGateSoak == 0 {
		c.RolloutGateSoak = 30 * time.Second
	}
	if c.RolloutGateMinPayments == 0 {
		c.RolloutGateMinPayments = 20
	}
	if c.Currency == "" {
		c.Currency = "USD"
	}
	if c.MCC == "" {
		c.MCC = "5411"
	}
	if c.Mix == nil {
		c.Mix = DefaultMix()
	}
	if len(c.DeclineTokens) == 0 {
		c.DeclineTokens = DefaultDeclineTokens()
	}
	if c.MinAmount == 0 {
		c.MinAmount = 100
	}
	if c.MaxAmount == 0 {
		c.MaxAmount = 5000
	}
	if c.SetupConcurrency == 0 {
		c.SetupConcurrency = 32
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = 10 * time.Second
	}
	if c.Attempts == 0 {
		c.Attempts = client.DefaultRetryPolicy().Attempts
	}
	if c.RunID == "" {
		c.RunID = randomID(6)
	}
	if c.Seed == 0 {
		c.Seed = mrand.Uint64() | 1
	}
	return c
}

// Validate reports the first unusable setting.
func (c FleetConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Terminals <= 0:
		return errors.New("fleet: Terminals must be positive")
	case c.Merchants < 0 || c.Merchants > c.Terminals:
		return fmt.Errorf("fleet: Merchants %d must be between 1 and Terminals", c.Merchants)
	case c.StoresPerMerchant < 0 || c.StoresPerMerchant > 99:
		return fmt.Errorf("fleet: StoresPerMerchant %d out of range [1, 99]", c.StoresPerMerchant)
	case c.Merchants > 9999:
		return errors.New("fleet: at most 9999 merchants")
	case c.MinAmount <= 0 || c.MaxAmount < c.MinAmount:
		return fmt.Errorf("fleet: amounts %d..%d must be positive and ordered", c.MinAmount, c.MaxAmount)
	case c.SetupConcurrency < 0 || c.CallTimeout < 0 || c.HeartbeatInterval < 0 || c.Attempts < 0:
		return errors.New("fleet: SetupConcurrency, CallTimeout, HeartbeatInterval and Attempts must not be negative")
	case len(c.RunID) > 8 || !isAlnum(c.RunID):
		return fmt.Errorf("fleet: RunID %q must be 1-8 letters or digits", c.RunID)
	}
	if err := c.Mix.Validate(); err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	for _, tok := range c.DeclineTokens {
		if tok == "" || len(tok) > 128 {
			return fmt.Errorf("fleet: decline token %q must be 1-128 characters", tok)
		}
	}
	return nil
}

func isAlnum(s string) bool {
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			return false
		}
	}
	return s != ""
}

const idAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

func randomID(n int) string {
	b := make([]byte, n)
	for i := range b {
		v, err := rand.Int(rand.Reader, big.NewInt(int64(len(idAlphabet))))
		if err != nil {
			panic(err) // crypto/rand does not fail on supported platforms
		}
		b[i] = idAlphabet[v.Int64()]
	}
	return string(b)
}

// Fleet simulates a fleet of terminals against a posfleet server: it
// provisions merchants, stores and terminals through the admin API,
// registers the terminals (each with its own connection unless the caller
// shares fewer), keeps their heartbeats and config watches going, and as an
// Executor turns arrivals into a transaction mix. At the end each terminal
// closes its batch and checks that it balances.
type Fleet struct {
	cfg    FleetConfig
	logger *slog.Logger
	admin  *client.Client
	terms  []*terminal
	pick   picker
	// retry is the payment calls' policy; payTimeout bounds a whole payment
	// call, its retries included.
	retry      client.RetryPolicy
	payTimeout time.Duration

	merchants []string
	run       *Run

	bgCtx    context.Context
	bgCancel context.CancelFunc
	bg       sync.WaitGroup

	registered atomic.Int64
	watching   atomic.Int64

	ro rollout
}

// rollout tracks a config publish until every terminal has it.
type rollout struct {
	mu        sync.Mutex // guards every field below
	marker    string
	published time.Time
	reached   map[int]time.Time
	ids       []string
	version   uint64
	err       error
	// gate holds the watched gated rollouts (FleetConfig.RolloutGate) by
	// ID; gateStop ends the watch and gateDone closes when it ended.
	gate     map[string]*pb.Rollout
	stopped  map[string]time.Time
	gateStop chan struct{}
	gateDone chan struct{}
}

// terminal is one simulated terminal. Fields set at provisioning are read
// only afterwards; registration fields are written before ready is closed;
// transaction state is used only by the run's user goroutine for this
// terminal (and by batch close after the run).
type terminal struct {
	idx                         int
	serial, merchantID, storeID string
	enrollment                  string
	provErr                     error

	cl *client.Client

	ready      chan struct{}
	regErr     error
	terminalID string
	md         metadata.MD
	hbEvery    time.Duration
	configVer  atomic.Uint64

	rng    *mrand.Rand
	seq    uint64
	batch  uint64
	totals totals
	sales  []sale
	// unknownReversed counts the authorizations without an answer that
	// the SDK reversed, finding them approved.
	unknownReversed int64
}

// totals is a terminal's own view of its open batch.
type totals struct {
	saleCount, refundCount, reversalCount    uint64
	saleAmount, refundAmount, reversalAmount int64
}

// sale is an approved, captured, unreversed sale that can still be refunded.
type sale struct {
	authorizationID string
	remaining       int64
}

// NewFleet returns a fleet using admin (a client carrying an admin token)
// for provisioning and conns for the terminals: terminal i uses
// conns[i mod len(conns)]; pass one per terminal for the default of a
// connection each. The terminal clients must carry no bearer credential:
// each terminal sends its own with every call. The logger may be nil.
func NewFleet(cfg FleetConfig, admin *client.Client, conns []*client.Client, logger *slog.Logger) (*Fleet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if admin == nil || len(conns) == 0 {
		return nil, errors.New("fleet: an admin client and at least one terminal connection are required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	f := &Fleet{cfg: cfg, logger: logger, admin: admin, pick: newPicker(cfg.Mix)}
	f.retry = client.DefaultRetryPolicy()
	f.retry.Attempts = cfg.Attempts
	f.retry.AttemptTimeout = cfg.CallTimeout
	f.payTimeout = time.Duration(cfg.Attempts) * (cfg.CallTimeout + f.retry.MaxBackoff)
	for m := range cfg.Merchants {
		f.merchants = append(f.merchants, fmt.Sprintf("L%sM%04d", cfg.RunID, m))
	}
	for i := range cfg.Terminals {
		m := i % cfg.Merchants
		cc := conns[i%len(conns)]
		f.terms = append(f.terms, &terminal{
			idx:        i,
			serial:     fmt.Sprintf("LG-%s-%06d", cfg.RunID, i),
			merchantID: f.merchants[m],
			storeID:    fmt.Sprintf("s%02d", (i/cfg.Merchants)%cfg.StoresPerMerchant),
			cl:         cc,
			ready:      make(chan struct{}),
			rng:        mrand.New(mrand.NewPCG(cfg.Seed, uint64(i))),
		})
	}
	return f, nil
}

// Info describes the fleet for Result.Info.
func (f *Fleet) Info() map[string]string {
	return map[string]string{
		"terminals":   strconv.Itoa(f.cfg.Terminals),
		"merchants":   strconv.Itoa(f.cfg.Merchants),
		"stores":      strconv.Itoa(f.cfg.Merchants * f.cfg.StoresPerMerchant),
		"mix":         f.cfg.Mix.String(),
		"run_id":      f.cfg.RunID,
		"config_push": strconv.FormatBool(!f.cfg.NoWatch),
	}
}

// OnEvent handles profile events; pass it as Config.OnEvent.
func (f *Fleet) OnEvent(ctx context.Context, e Event) {
	switch e.Action {
	case EventRegisterAll:
		f.registerAll(ctx, len(f.terms), time.Now())
	case EventPublishConfig:
		f.publish(ctx)
	}
}

// Run plays a whole fleet run on run (whose Config.OnEvent must be
// f.OnEvent): provision, register (unless the profile's registration storm
// does it), drive the profile, close every batch, and attach the config
// rollout measurement. It returns the first setup error, or Drive's.
func (f *Fleet) Run(ctx context.Context, run *Run) error {
	if len(run.cfg.Profile.Events) > 0 && run.cfg.OnEvent == nil {
		return errors.New("fleet: the profile has events but the run's Config.OnEvent is not the fleet's OnEvent")
	}
	f.run = run
	f.bgCtx, f.bgCancel = context.WithCancel(ctx)
	defer func() {
		f.bgCancel()
		f.bg.Wait()
	}()
	if err := f.provision(ctx); err != nil {
		return err
	}
	if !run.cfg.Profile.HasEvent(EventRegisterAll) {
		f.registerAll(ctx, f.cfg.SetupConcurrency, time.Time{})
		if f.registered.Load() == 0 {
			return fmt.Errorf("fleet: no terminal registered (first error: %v)", f.firstRegErr())
		}
	}
	err := f.run.Drive(ctx, f)
	if ctx.Err() == nil {
		f.closeBatches(ctx)
	}
	f.finishRollout()
	return err
}

func (f *Fleet) firstRegErr() error {
	for _, t := range f.terms {
		select {
		case <-t.ready:
			if t.regErr != nil {
				return t.regErr
			}
		default:
		}
		if t.provErr != nil {
			return t.provErr
		}
	}
	return nil
}

// parallel runs fn(i) for i in [0, n) with at most conc at a time.
func parallel(n, conc int, fn func(i int)) {
	sem := make(chan struct{}, max(1, conc))
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(i)
		})
	}
	wg.Wait()
}

// call times one unary call from intended and records it.
func (f *Fleet) call(ctx context.Context, rec Recorder, op string, intended time.Time, fn func(ctx context.Context) (Outcome, error)) (Outcome, error) {
	return f.callWithin(ctx, rec, op, intended, f.cfg.CallTimeout, fn)
}

// callWithin is call with a deadline of timeout.
func (f *Fleet) callWithin(ctx context.Context, rec Recorder, op string, intended time.Time, timeout time.Duration, fn func(ctx context.Context) (Outcome, error)) (Outcome, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sent := time.Now()
	o, err := fn(ctx)
	if err != nil {
		o = ErrorOutcome(err)
	}
	rec.Call(op, intended, sent, time.Now(), o)
	return o, err
}

// provision creates the merchants, their stores and the terminals.
func (f *Fleet) provision(ctx context.Context) error {
	cfg := f.cfg
	errs := make([]error, cfg.Merchants)
	parallel(cfg.Merchants, cfg.SetupConcurrency, func(m int) {
		rec := f.run.Recorder(m)
		id := f.merchants[m]
		_, errs[m] = f.call(ctx, rec, OpCreateMerchant, time.Now(), func(ctx context.Context) (Outcome, error) {
			_, err := f.admin.CreateMerchant(ctx, &pb.Merchant{
				MerchantId:  id,
				LegalName:   "Loadgen Retail " + id + " Ltd",
				DisplayName: "Loadgen " + id,
				Mcc:         cfg.MCC,
				Currency:    cfg.Currency,
				Address:     &pb.Address{Line1: "1 Test Street", City: "Wellington", PostalCode: "6011", Country: "NZ"},
			})
			return OK(), err
		})
		if errs[m] != nil {
			return
		}
		for s := range cfg.StoresPerMerchant {
			_, err := f.call(ctx, rec, OpCreateStore, time.Now(), func(ctx context.Context) (Outcome, error) {
				_, err := f.admin.CreateStore(ctx, &pb.Store{
					MerchantId: id,
					StoreId:    fmt.Sprintf("s%02d", s),
					Name:       fmt.Sprintf("Store %d", s),
					Address:    &pb.Address{Line1: fmt.Sprintf("%d Queen Street", s+1), City: "Auckland", PostalCode: "1010", Country: "NZ"},
				})
				return OK(), err
			})
			if err != nil {
				errs[m] = err
				return
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("fleet: create merchants and stores: %w", err)
	}
	var failed atomic.Int64
	parallel(len(f.terms), cfg.SetupConcurrency, func(i int) {
		t := f.terms[i]
		_, t.provErr = f.call(ctx, f.run.Recorder(i), OpProvision, time.Now(), func(ctx context.Context) (Outcome, error) {
			resp, err := f.admin.ProvisionTerminal(ctx, t.serial, t.merchantID, t.storeID, "loadgen "+cfg.RunID, 24*time.Hour)
			if err == nil {
				t.terminalID, t.enrollment = resp.GetTerminalId(), resp.GetEnrollmentCode()
			}
			return OK(), err
		})
		if t.provErr != nil {
			failed.Add(1)
		}
	})
	if n := failed.Load(); n > 0 {
		f.logger.Warn("terminals failed to provision", "failed", n, "of", len(f.terms), "first_error", f.firstRegErr())
		if int(n) == len(f.terms) {
			return fmt.Errorf("fleet: no terminal could be provisioned: %w", f.firstRegErr())
		}
	}
	f.logger.Info("fleet provisioned", "merchants", cfg.Merchants, "terminals", len(f.terms)-int(failed.Load()))
	return nil
}

// registerAll registers every provisioned terminal, conc at a time. A
// non-zero stormAt is the intended time of every registration (a storm:
// all at once); otherwise each is intended when it starts.
func (f *Fleet) registerAll(ctx context.Context, conc int, stormAt time.Time) {
	parallel(len(f.terms), conc, func(i int) {
		t := f.terms[i]
		defer close(t.ready)
		if t.provErr != nil {
			t.regErr = t.provErr
			return
		}
		intended := stormAt
		if intended.IsZero() {
			intended = time.Now()
		}
		var resp *pb.RegisterResponse
		_, t.regErr = f.call(ctx, f.run.Recorder(i), OpRegister, intended, func(ctx context.Context) (Outcome, error) {
			var err error
			resp, err = t.cl.Register(ctx, t.serial, t.enrollment,
				&pb.DeviceInfo{Model: "SIM-1", Manufacturer: "posfleet loadgen", FirmwareVersion: "1.0.0", AppVersion: "loadgen-1"})
			return OK(), err
		})
		if t.regErr != nil {
			return
		}
		t.terminalID = resp.GetTerminalId()
		t.md = metadata.Pairs("authorization", "Bearer "+resp.GetCredential())
		t.configVer.Store(resp.GetConfig().GetVersion())
		t.hbEvery = resp.GetHeartbeatInterval().AsDuration()
		if f.cfg.HeartbeatInterval > 0 {
			t.hbEvery = f.cfg.HeartbeatInterval
		}
		f.registered.Add(1)
		f.startBackground(t)
	})
	if n := int64(len(f.terms)) - f.registered.Load(); n > 0 {
		f.logger.Warn("terminals failed to register", "failed", n, "first_error", f.firstRegErr())
	}
}

// auth returns ctx carrying the terminal's bearer credential.
func (t *terminal) auth(ctx context.Context) context.Context {
	return metadata.NewOutgoingContext(ctx, t.md)
}

// startBackground starts the terminal's heartbeats and config watch.
func (f *Fleet) startBackground(t *terminal) {
	if t.hbEvery > 0 {
		f.bg.Go(func() { f.heartbeats(f.bgCtx, t) })
	}
	if !f.cfg.NoWatch {
		f.watching.Add(1)
		f.bg.Go(func() { f.watch(f.bgCtx, t) })
	}
}

// heartbeats sends the terminal's heartbeats, each timed from its
// scheduled tick, one at a time. The first tick is at a random phase within
// the interval so that the fleet's heartbeats spread out.
func (f *Fleet) heartbeats(ctx context.Context, t *terminal) {
	rec := f.run.Recorder(t.idx)
	boot := time.Now()
	next := boot.Add(time.Duration(mrand.Int64N(int64(t.hbEvery))))
	timer := time.NewTimer(time.Until(next))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		var nextIn time.Duration
		// A heartbeat already sent is answered even when the run stops
		// meanwhile (within CallTimeout): cutting it off would record the
		// generator's own shutdown as a server error.
		f.call(t.auth(context.WithoutCancel(ctx)), rec, OpHeartbeat, next, func(ctx context.Context) (Outcome, error) {
			resp, err := t.cl.Heartbeat(ctx, &pb.TerminalStatus{
				FirmwareVersion: "1.0.0",
				AppVersion:      "loadgen-1",
				ConfigVersion:   t.configVer.Load(),
				Paper:           pb.PaperStatus_PAPER_STATUS_OK,
				Network:         pb.NetworkType_NETWORK_TYPE_ETHERNET,
				Uptime:          durationpb.New(time.Since(boot)),
			})
			nextIn = resp.GetNextHeartbeat().AsDuration()
			return OK(), err
		})
		if ctx.Err() != nil {
			return
		}
		if f.cfg.HeartbeatInterval > 0 || nextIn <= 0 {
			nextIn = t.hbEvery
		}
		next = next.Add(nextIn)
		timer.Reset(time.Until(next))
	}
}

// watch runs the client SDK's config watch for the terminal: a stream
// kept open with backoff and resume, each new version applied and
// acknowledged. Receipts of the rollout marker are noted; broken streams
// and failed acknowledgements are counted.
func (f *Fleet) watch(ctx context.Context, t *terminal) {
	rec := f.run.Recorder(t.idx)
	_, err := t.cl.WatchConfig(t.auth(ctx), client.ConfigWatch{
		KnownVersion: t.configVer.Load(),
		Apply: func(_ context.Context, msg *pb.WatchConfigResponse) error {
			t.configVer.Store(msg.GetVersion())
			f.noteConfig(t.idx, msg.GetSettings().GetExtra()[RolloutMarkerKey], time.Now())
			return nil
		},
		MinBackoff: 250 * time.Millisecond,
		OnError: func(err error, retryIn time.Duration) {
			if ctx.Err() != nil {
				return // the fleet is stopping: not the server's failure
			}
			op := OpWatch
			if retryIn == 0 {
				op = OpAckConfig
			}
			rec.Drop(op, time.Now(), ErrorOutcome(err))
		},
	})
	if ctx.Err() == nil && err != nil {
		// A status the server will not change its mind about: the
		// terminal stops watching.
		rec.Drop(OpWatch, time.Now(), ErrorOutcome(err))
		f.logger.Warn("config watch stopped", "terminal", t.terminalID, "err", err)
	}
}

func (f *Fleet) noteConfig(idx int, marker string, at time.Time) {
	if marker == "" {
		return
	}
	f.ro.mu.Lock()
	defer f.ro.mu.Unlock()
	if marker != f.ro.marker {
		return
	}
	if _, ok := f.ro.reached[idx]; !ok {
		f.ro.reached[idx] = at
	}
}

// publish publishes a marked config to each of the fleet's merchants.
func (f *Fleet) publish(ctx context.Context) {
	f.ro.mu.Lock()
	f.ro.marker = fmt.Sprintf("%s-%d", f.cfg.RunID, time.Now().UnixNano())
	f.ro.published = time.Now()
	f.ro.reached = map[int]time.Time{}
	marker, published := f.ro.marker, f.ro.published
	f.ro.mu.Unlock()

	var mu sync.Mutex // guards ids, version and errs
	var ids []string
	var version uint64
	var errs []error
	parallel(len(f.merchants), f.cfg.SetupConcurrency, func(m int) {
		var resp *pb.PublishConfigResponse
		_, err := f.call(ctx, f.run.Recorder(m), OpPublishConfig, published, func(ctx context.Context) (Outcome, error) {
			var err error
			req := &pb.PublishConfigRequest{
				Scope:       &pb.ConfigScope{MerchantId: f.merchants[m]},
				Settings:    &pb.Settings{Extra: map[string]string{RolloutMarkerKey: marker}},
				Rollout:     &pb.RolloutPlan{StagePercents: []uint32{100}},
				Description: "posfleet loadgen config-rollout " + f.cfg.RunID,
			}
			if f.cfg.RolloutGate {
				req.Settings.PerTransactionLimit = &pb.Money{MinorUnits: 1, Currency: f.cfg.Currency}
				req.Rollout = &pb.RolloutPlan{StagePercents: []uint32{10, 50, 100}, AutoAdvance: true, PaymentGate: &pb.PaymentGate{
					SoakTime: durationpb.New(f.cfg.RolloutGateSoak), MinPayments: f.cfg.RolloutGateMinPayments, AutoRollback: true,
				}}
				req.Description += " (payment gate check: declining limit)"
			}
			resp, err = f.admin.Admin().PublishConfig(ctx, req)
			return OK(), err
		})
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, err)
			return
		}
		ids = append(ids, resp.GetRolloutId())
		version = max(version, resp.GetVersion())
	})
	f.ro.mu.Lock()
	defer f.ro.mu.Unlock()
	f.ro.ids, f.ro.version, f.ro.err = ids, version, errors.Join(errs...)
	if f.ro.err != nil {
		f.logger.Warn("config publish failed", "err", f.ro.err)
	}
	if f.cfg.RolloutGate && len(ids) > 0 {
		f.ro.gate, f.ro.stopped = map[string]*pb.Rollout{}, map[string]time.Time{}
		f.ro.gateStop, f.ro.gateDone = make(chan struct{}), make(chan struct{})
		go f.watchGate(ctx, slices.Clone(ids), f.ro.gateStop, f.ro.gateDone)
	}
}

// watchGate polls the gated rollouts until each has stopped (halted or
// aborted) or completed, noting when each stopped.
func (f *Fleet) watchGate(ctx context.Context, ids []string, stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for len(ids) > 0 {
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-t.C:
		}
		var left []string
		for _, id := range ids {
			cctx, cancel := context.WithTimeout(ctx, f.cfg.CallTimeout)
			resp, err := f.admin.Admin().GetRollout(cctx, &pb.GetRolloutRequest{RolloutId: id})
			cancel()
			now := time.Now()
			if err != nil {
				left = append(left, id)
				continue
			}
			r := resp.GetRollout()
			f.ro.mu.Lock()
			f.ro.gate[id] = r
			switch r.GetState() {
			case pb.RolloutState_ROLLOUT_STATE_HALTED, pb.RolloutState_ROLLOUT_STATE_ABORTED:
				f.ro.stopped[id] = now
			case pb.RolloutState_ROLLOUT_STATE_COMPLETED:
			default:
				left = append(left, id)
			}
			f.ro.mu.Unlock()
		}
		ids = left
	}
}

// gateResult summarizes the watched gated rollouts. Called with ro.mu held.
func (f *Fleet) gateResult() *GateResult {
	g := &GateResult{Rollouts: len(f.ro.ids), Stopped: len(f.ro.stopped)}
	for id, r := range f.ro.gate {
		st := r.GetPaymentGateStatus()
		g.Terminals += r.GetIncludedTerminals()
		g.Payments += st.GetTreatmentPayments()
		g.Stage = max(g.Stage, int(r.GetCurrentStage())+1)
		if at, ok := f.ro.stopped[id]; ok {
			d := ms(at.Sub(f.ro.published).Nanoseconds())
			g.StoppedMs = max(g.StoppedMs, d)
			if g.Reason == "" {
				g.State, g.Reason = strings.TrimPrefix(r.GetState().String(), "ROLLOUT_STATE_"), r.GetStateReason()
			}
		}
	}
	return g
}

// finishRollout attaches the rollout measurement to the run.
func (f *Fleet) finishRollout() {
	f.ro.mu.Lock()
	defer f.ro.mu.Unlock()
	if f.ro.marker == "" {
		return
	}
	if f.ro.gateStop != nil {
		close(f.ro.gateStop)
		done := f.ro.gateDone
		f.ro.mu.Unlock()
		<-done
		f.ro.mu.Lock()
		f.ro.gateStop = nil
	}
	rr := &RolloutResult{
		Version:   f.ro.version,
		Terminals: int(f.watching.Load()),
		Reached:   len(f.ro.reached),
	}
	if f.ro.gate != nil {
		rr.Gate = f.gateResult()
	}
	if len(f.ro.ids) > 0 {
		rr.RolloutID = f.ro.ids[0]
		if len(f.ro.ids) > 1 {
			rr.RolloutID = fmt.Sprintf("%s (+%d more)", f.ro.ids[0], len(f.ro.ids)-1)
		}
	}
	if st := f.run.Started(); !st.IsZero() {
		rr.PublishedSeconds = round(f.ro.published.Sub(st).Seconds(), 3)
	}
	if f.ro.err != nil {
		rr.Error = f.ro.err.Error()
	}
	h := newHist()
	var last time.Duration
	for _, at := range f.ro.reached {
		d := at.Sub(f.ro.published)
		last = max(last, d)
		record(h, d.Nanoseconds())
	}
	rr.Propagation = summarize(h)
	if rr.Reached > 0 && rr.Reached >= rr.Terminals {
		v := ms(last.Nanoseconds())
		rr.AllReachedMs = &v
	}
	f.run.SetRollout(rr)
}

// Execute carries out one transaction of the mix on terminal user.
func (f *Fleet) Execute(ctx context.Context, user int, a Arrival, rec Recorder) Outcome {
	t := f.terms[user]
	select {
	case <-t.ready:
	case <-ctx.Done():
		return Dropped("not_sent")
	}
	if t.regErr != nil {
		return Dropped("not_registered")
	}
	kind := f.pick.pick(t.rng.Float64())
	if kind == TxRefund && len(t.sales) == 0 {
		kind = TxApprove
	}
	switch kind {
	case TxDecline:
		tok := f.cfg.DeclineTokens[t.rng.IntN(len(f.cfg.DeclineTokens))]
		o, _, _, _ := f.sale(ctx, t, rec, a.Intended, tok)
		return o
	case TxReverse:
		o, reqID, done, approved := f.sale(ctx, t, rec, a.Intended, t.cardToken())
		if !approved {
			return o
		}
		return f.reverse(ctx, t, rec, done, reqID, pb.ReversalReason_REVERSAL_REASON_CUSTOMER_CANCEL)
	case TxRefund:
		return f.refund(ctx, t, rec, a.Intended)
	default:
		o, _, _, _ := f.sale(ctx, t, rec, a.Intended, t.cardToken())
		return o
	}
}

func (t *terminal) nextRequestID(runID string) string {
	t.seq++
	return runID + "-" + t.terminalID + "-" + strconv.FormatUint(t.seq, 10)
}

// cardToken returns a fresh ordinary card token, so that velocity limits
// on one card do not turn approvals into declines.
func (t *terminal) cardToken() string {
	return "tok_lg_" + t.terminalID + "_" + strconv.FormatUint(t.rng.Uint64()&0xffffffffff, 36)
}

// entryMode draws how the card was read: mostly contactless and chip.
func (t *terminal) entryMode() pb.EntryMode {
	switch t.rng.IntN(8) {
	case 0, 1, 2, 3:
		return pb.EntryMode_ENTRY_MODE_CONTACTLESS
	case 4, 5, 6:
		return pb.EntryMode_ENTRY_MODE_CHIP
	default:
		return pb.EntryMode_ENTRY_MODE_SWIPE
	}
}

// sale authorizes and captures a sale through the client SDK, which
// retries with the same request_id and reverses (reason TIMEOUT) an
// authorization whose outcome stays unknown, as a terminal must. It returns
// the outcome, the request ID, when the call finished, and whether it was
// approved.
func (f *Fleet) sale(ctx context.Context, t *terminal, rec Recorder, intended time.Time, token string) (Outcome, string, time.Time, bool) {
	reqID := t.nextRequestID(f.cfg.RunID)
	amount := f.cfg.MinAmount + t.rng.Int64N(f.cfg.MaxAmount-f.cfg.MinAmount+1)
	var resp *pb.AuthorizeResponse
	o, err := f.callWithin(t.auth(ctx), rec, OpAuthorize, intended, f.payTimeout, func(ctx context.Context) (Outcome, error) {
		var err error
		resp, err = t.cl.AuthorizeWithPolicy(ctx, &pb.AuthorizeRequest{
			RequestId:  reqID,
			MerchantId: t.merchantID,
			Amount:     &pb.Money{MinorUnits: amount, Currency: f.cfg.Currency},
			Card:       &pb.Card{Token: token, MaskedPan: "411111******1111", EntryMode: t.entryMode()},
			LocalTime:  timestamppb.Now(),
			Capture:    true,
		}, f.retry)
		if err != nil {
			return Outcome{}, err
		}
		if resp.GetDecision() == pb.Decision_DECISION_APPROVED {
			return OK(), nil
		}
		return Declined(resp.GetResponseCode()), nil
	})
	done := time.Now()
	if err != nil {
		// No answer: the SDK reversed the authorization (reason TIMEOUT).
		// If there was an approval to reverse, the server's batch counts a
		// reversal, and so must the terminal's.
		var unknown *client.OutcomeUnknownError
		if errors.As(err, &unknown) && unknown.Reversal.GetStatus() == pb.ReverseStatus_REVERSE_STATUS_REVERSED {
			t.totals.reversalCount++
			t.totals.reversalAmount += unknown.Reversal.GetReversedAmount().GetMinorUnits()
			t.unknownReversed++
		}
		return o, reqID, done, false
	}
	if b := resp.GetBatchNumber(); b != 0 {
		t.batch = b
	}
	if o.Class != ClassOK {
		return o, reqID, done, false
	}
	t.totals.saleCount++
	t.totals.saleAmount += amount
	t.sales = append(t.sales, sale{authorizationID: resp.GetAuthorizationId(), remaining: amount})
	return o, reqID, done, true
}

// reverse reverses the authorization with request ID orig and updates the
// terminal's totals with what the server reversed.
func (f *Fleet) reverse(ctx context.Context, t *terminal, rec Recorder, intended time.Time, orig string, reason pb.ReversalReason) Outcome {
	var resp *pb.ReverseResponse
	o, err := f.callWithin(t.auth(ctx), rec, OpReverse, intended, f.payTimeout, func(ctx context.Context) (Outcome, error) {
		var err error
		resp, err = t.cl.ReverseWithPolicy(ctx, &pb.ReverseRequest{RequestId: t.nextRequestID(f.cfg.RunID), OriginalRequestId: orig, Reason: reason}, f.retry)
		if err != nil {
			return Outcome{}, err
		}
		switch resp.GetStatus() {
		case pb.ReverseStatus_REVERSE_STATUS_REVERSED, pb.ReverseStatus_REVERSE_STATUS_ALREADY_REVERSED:
			return OK(), nil
		}
		return Declined(resp.GetStatus().String()), nil
	})
	if err != nil || resp.GetStatus() != pb.ReverseStatus_REVERSE_STATUS_REVERSED {
		return o
	}
	amt := resp.GetReversedAmount().GetMinorUnits()
	t.totals.reversalCount++
	t.totals.reversalAmount += amt
	// A reversed sale leaves the sales totals and can no longer be refunded.
	for i, s := range t.sales {
		if s.authorizationID == resp.GetAuthorizationId() {
			t.totals.saleCount--
			t.totals.saleAmount -= amt
			t.sales = append(t.sales[:i], t.sales[i+1:]...)
			break
		}
	}
	return o
}

// refund refunds part or all of a random earlier sale of the terminal.
func (f *Fleet) refund(ctx context.Context, t *terminal, rec Recorder, intended time.Time) Outcome {
	i := t.rng.IntN(len(t.sales))
	s := &t.sales[i]
	amount := s.remaining
	if t.rng.IntN(2) == 0 && s.remaining > 1 {
		amount = 1 + t.rng.Int64N(s.remaining-1)
	}
	var resp *pb.RefundResponse
	o, err := f.callWithin(t.auth(ctx), rec, OpRefund, intended, f.payTimeout, func(ctx context.Context) (Outcome, error) {
		var err error
		resp, err = t.cl.RefundWithPolicy(ctx, &pb.RefundRequest{
			RequestId:       t.nextRequestID(f.cfg.RunID),
			AuthorizationId: s.authorizationID,
			Amount:          &pb.Money{MinorUnits: amount, Currency: f.cfg.Currency},
		}, f.retry)
		if err != nil {
			return Outcome{}, err
		}
		if resp.GetDecision() == pb.Decision_DECISION_APPROVED {
			return OK(), nil
		}
		return Declined(resp.GetResponseCode()), nil
	})
	if err != nil || o.Class != ClassOK {
		return o
	}
	if b := resp.GetBatchNumber(); b != 0 {
		t.batch = b
	}
	t.totals.refundCount++
	t.totals.refundAmount += amount
	s.remaining -= amount
	if s.remaining <= 0 {
		t.sales = append(t.sales[:i], t.sales[i+1:]...)
	}
	return o
}

// OutOfBalance is the outcome code of a batch close whose server totals
// differ from the terminal's: money went missing or was counted twice.
const OutOfBalance = "OUT_OF_BALANCE"

// closeBatches closes every terminal's open batch with its own totals. A
// batch that does not balance is recorded as an error (OutOfBalance). The
// account of the closes is attached to the run (Run.SetBatches).
func (f *Fleet) closeBatches(ctx context.Context) {
	var mu sync.Mutex // guards br
	br := &BatchesResult{}
	parallel(len(f.terms), f.cfg.SetupConcurrency, func(i int) {
		t := f.terms[i]
		if t.regErr != nil {
			return
		}
		mu.Lock()
		br.UnknownReversed += t.unknownReversed
		mu.Unlock()
		if t.batch == 0 && t.totals == (totals{}) {
			return // no payment answered or reversed: nothing to close
		}
		resp, err := f.closeBatch(ctx, i, t)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil:
			br.Failed++
		case resp.GetInBalance():
			br.Closed++
			br.InBalance++
			br.Balanced.add(t.totals)
		default:
			br.Closed++
			br.OutOfBalance++
			if br.OutOfBalance <= 3 {
				f.logger.Warn("batch out of balance", "terminal", t.terminalID, "batch", t.batch,
					"ours", fmt.Sprintf("%+v", t.totals), "server", resp.GetServerTotals().String())
			}
		}
	})
	if br.OutOfBalance > 0 {
		f.logger.Warn("batches out of balance", "count", br.OutOfBalance)
	}
	f.run.SetBatches(br)
}

// closeBatch closes terminal i's open batch with its totals and records
// the call: an error when it failed or did not balance. A terminal that
// never learnt its batch number (its only approvals lost their answers and
// were reversed) asks the server for it first.
func (f *Fleet) closeBatch(ctx context.Context, i int, t *terminal) (*pb.CloseBatchResponse, error) {
	cur := f.cfg.Currency
	var resp *pb.CloseBatchResponse
	_, err := f.callWithin(t.auth(ctx), f.run.Recorder(i), OpCloseBatch, time.Now(), f.payTimeout, func(ctx context.Context) (Outcome, error) {
		if t.batch == 0 {
			open, err := t.cl.OpenBatch(ctx)
			if err != nil {
				return Outcome{}, err
			}
			t.batch = open.GetBatchNumber()
		}
		var err error
		resp, err = t.cl.CloseBatchWithPolicy(ctx, &pb.CloseBatchRequest{
			RequestId:   fmt.Sprintf("%s-%s-close-%d", f.cfg.RunID, t.terminalID, t.batch),
			BatchNumber: t.batch,
			TerminalTotals: &pb.BatchTotals{
				SaleCount:      t.totals.saleCount,
				SaleAmount:     &pb.Money{MinorUnits: t.totals.saleAmount, Currency: cur},
				RefundCount:    t.totals.refundCount,
				RefundAmount:   &pb.Money{MinorUnits: t.totals.refundAmount, Currency: cur},
				ReversalCount:  t.totals.reversalCount,
				ReversalAmount: &pb.Money{MinorUnits: t.totals.reversalAmount, Currency: cur},
			},
		}, f.retry)
		if err != nil {
			return Outcome{}, err
		}
		if !resp.GetInBalance() {
			return Outcome{Class: ClassError, Code: OutOfBalance}, nil
		}
		return OK(), nil
	})
	return resp, err
}

// add adds a terminal's totals.
func (r *TotalsResult) add(t totals) {
	r.SaleCount += t.saleCount
	r.SaleAmount += t.saleAmount
	r.RefundCount += t.refundCount
	r.RefundAmount += t.refundAmount
	r.ReversalCount += t.reversalCount
	r.ReversalAmount += t.reversalAmount
}
