package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/configpush"
	"github.com/posfleet/posfleet/server/fleet"
	"github.com/posfleet/posfleet/server/operator"
	"github.com/posfleet/posfleet/server/payment"
	"github.com/posfleet/posfleet/server/store"
	"github.com/posfleet/posfleet/server/webhook"
)

// Engines are the storage and the domain engines of one server, built and
// connected to each other by openEngines, the one place that wires them.
// The gRPC services receive them built; other front ends (an operator
// console) use them through (*Server).Engines. Every field is set once the
// server is built, except Space, which is nil for an in-memory store.
type Engines struct {
	// DB is the storage all engines commit to.
	DB *store.DB
	// Space refuses writes while the data directory's disk is low; nil
	// for an in-memory store.
	Space *store.Space
	// Audit is the audit trail every engine records into.
	Audit *audit.Log
	// Tokens holds the admin tokens.
	Tokens *operator.Tokens
	// Fleet holds merchants, stores, terminals and their credentials.
	Fleet *fleet.Fleet
	// Config holds settings layers, effective configs and rollouts.
	Config *configpush.Engine
	// payments is the payment engine in service; the payment supervisor
	// (payment_recovery.go) swaps in a reopened one after a storage
	// failure. Read it through Payments.
	payments atomic.Pointer[payment.Engine]

	// Webhooks deliver operational events, read from the audit trail, to
	// operators' endpoints.
	Webhooks *webhook.Webhooks
	// signals counts Authorize outcomes per terminal for config push's
	// payment gates (payment_signals.go): the payment handler records into
	// it, the config engine reads it.
	signals *paymentSignals
	// diskAudit is the audit trail once webhooks are open, for low-disk
	// events.
	diskAudit atomic.Pointer[audit.Log]
	// adminTokenPath is the generated bootstrap token file, if any.
	adminTokenPath string
	// closers release the engines, in reverse order, before the audit
	// trail and the database close.
	closers []func() error
}

// engineHooks are the transport's callbacks into the engines; nil ones are
// not called.
type engineHooks struct {
	// OnSpaceChange is called when the disk's low-space state changes.
	OnSpaceChange func(low bool)
	// OnCommit is told of each synced payment group commit
	// (payment.Options.OnCommit).
	OnCommit func(decisions int, elapsed time.Duration)
	// OnLeaderLost is told when the node loses the PostgreSQL database's
	// writer role for good (store.PostgresOptions.OnLeaderLost).
	OnLeaderLost func(error)
	// OnPaymentsRecovered is called when a reopened payment engine took
	// over from one stopped by a storage failure.
	OnPaymentsRecovered func()
}

// openEngines opens the data directory's storage and builds every engine
// on it, in dependency order: storage and disk watch, audit trail, admin
// tokens (with the bootstrap token), fleet, config push on the fleet's
// terminals, payments on both. The hooks tell the transport of events it
// reports (readiness, metrics). On error, what was opened is closed again.
func openEngines(ctx context.Context, cfg Config, hooks engineHooks, logger *slog.Logger) (_ *Engines, err error) {
	e := &Engines{signals: &paymentSignals{}}
	defer func() {
		if err != nil {
			_ = e.Close()
		}
	}()

	if testStore != nil {
		if err := testStore(&cfg); err != nil {
			return nil, err
		}
	}
	sopts := store.DefaultOptions(cfg.DataDir)
	sopts.CommitFault = cfg.commitFault
	sopts.VerifyAllTables = cfg.VerifyAllTables
	if cfg.InMemory {
		sopts.InMemory = true
	} else if err := ownedDir(cfg.DataDir, cfg.TakeOwnership, logger); err != nil {
		return nil, err
	} else if err := privateDir(cfg.DataDir, logger); err != nil {
		return nil, err
	}
	if cfg.Store == StorePostgres {
		if e.DB, err = openPostgres(ctx, cfg, hooks.OnLeaderLost, logger); err != nil {
			return nil, err
		}
	} else if e.DB, err = store.Open(sopts, logger); err != nil {
		return nil, err
	}
	if !cfg.InMemory && cfg.Store != StorePostgres {
		e.Space, err = store.WatchSpace(e.DB, store.SpaceOptions{
			Reserve:  cfg.DiskReserve,
			Interval: cfg.DiskCheckInterval,
			Statfs:   cfg.statfs,
			OnChange: func(low bool) {
				// The DISK_LOW event is on disk before gRPC health reports it.
				e.noteDiskLow(low, logger)
				if hooks.OnSpaceChange != nil {
					hooks.OnSpaceChange(low)
				}
			},
		}, logger.With("component", "space"))
		if err != nil {
			return nil, err
		}
		st := e.Space.Status()
		logger.Info("disk space", "dir", cfg.DataDir, "free_bytes", st.FreeBytes, "reserve_bytes", st.ReserveBytes, "low", st.Low)
		e.closers = append(e.closers, e.Space.Close)
	}
	if e.Audit, err = audit.Open(ctx, e.DB, logger.With("component", "audit")); err != nil {
		return nil, err
	}
	e.Audit.Retain(auditRetention(&cfg))
	adminToken, tokenPath, err := bootstrapAdminToken(cfg)
	if err != nil {
		return nil, err
	}
	e.adminTokenPath = tokenPath
	if err := e.openFleet(ctx, adminToken, cfg.FaultRetention, logger); err != nil {
		return nil, err
	}
	if err := e.openConfig(ctx, logger); err != nil {
		return nil, err
	}
	if err := e.openPayments(ctx, hooks, logger); err != nil {
		return nil, err
	}
	if err := e.openWebhooks(ctx, cfg.Webhooks, logger); err != nil {
		return nil, err
	}
	return e, nil
}

// openFleet opens the admin token store (installing the bootstrap token,
// stored only as a hash) and the fleet.
func (e *Engines) openFleet(ctx context.Context, bootstrapToken string, faultRetention time.Duration, logger *slog.Logger) error {
	var err error
	e.Tokens, err = operator.Open(ctx, e.DB, operator.Options{NewSecret: NewSecret, Audit: e.Audit}, logger.With("component", "operator"))
	if err != nil {
		return fmt.Errorf("server: open admin tokens: %w", err)
	}
	if err := e.Tokens.EnsureBootstrap(ctx, bootstrapToken); err != nil {
		return fmt.Errorf("server: install bootstrap admin token: %w", err)
	}
	opts := fleet.DefaultOptions()
	opts.NewSecret = NewSecret
	if faultRetention > 0 {
		opts.FaultRetention = faultRetention
	}
	e.Fleet, err = fleet.Open(ctx, e.DB, e.Audit, opts, logger.With("component", "fleet"))
	if err != nil {
		return fmt.Errorf("server: open fleet: %w", err)
	}
	e.closers = append(e.closers, e.Fleet.Close)
	return nil
}

// openConfig starts config push on the fleet's terminal population and
// connects it: heartbeats carry its versions and intervals, terminal
// changes and new commands reach it, and payment gates read the payment
// signals.
func (e *Engines) openConfig(ctx context.Context, logger *slog.Logger) error {
	var err error
	e.Config, err = configpush.Open(ctx, e.DB, e.Audit, fleetDirectory{e.Fleet}, configpush.Options{Signals: e.signals}, logger.With("component", "configpush"))
	if err != nil {
		return fmt.Errorf("server: open config push: %w", err)
	}
	e.closers = append(e.closers, e.Config.Close)
	e.Fleet.SetConfigSource(e.Config)
	e.Fleet.OnTerminalChange(func(ref fleet.TerminalRef) { e.Config.TerminalChanged(ref.TerminalID) })
	e.Fleet.OnCommand(e.Config.NotifyCommands)
	return nil
}

// openPayments starts the payment engine on the fleet and config push,
// gives the fleet its payment history, and starts the supervisor that
// reopens the engine after a storage failure.
func (e *Engines) openPayments(ctx context.Context, hooks engineHooks, logger *slog.Logger) error {
	logger = logger.With("component", "payment")
	dir := &paymentDirectory{fleet: e.Fleet, config: e.Config, logger: logger}
	opts := payment.DefaultOptions()
	opts.OnCommit = hooks.OnCommit
	open := func(ctx context.Context) (*payment.Engine, error) {
		return payment.Open(ctx, e.DB, e.Audit, dir, opts, logger)
	}
	p, err := open(ctx)
	if err != nil {
		return fmt.Errorf("server: open payments: %w", err)
	}
	e.payments.Store(p)
	e.closers = append(e.closers, e.supervisePayments(open, hooks.OnPaymentsRecovered, logger))
	e.Fleet.SetPaymentHistory(merchantPayments{e})
	return nil
}

// Close releases the engines in reverse order of opening, then the audit
// trail and the database. It is safe on partly built Engines.
func (e *Engines) Close() error {
	var errs []error
	for i := len(e.closers) - 1; i >= 0; i-- {
		errs = append(errs, e.closers[i]())
	}
	e.closers = nil
	if e.Audit != nil {
		errs = append(errs, e.Audit.Close())
	}
	if e.DB != nil {
		errs = append(errs, e.DB.Close())
	}
	return errors.Join(errs...)
}

// openWebhooks starts the webhook deliveries, which follow the audit trail,
// the offline sweep that feeds them, and lets a low disk be reported
// through them.
func (e *Engines) openWebhooks(ctx context.Context, cfg webhook.Config, logger *slog.Logger) error {
	var err error
	e.Webhooks, err = webhook.Open(ctx, e.DB, e.Audit, cfg, logger.With("component", "webhooks"))
	if err != nil {
		return fmt.Errorf("server: open webhooks: %w", err)
	}
	e.closers = append(e.closers, e.Webhooks.Close)
	e.diskAudit.Store(e.Audit)
	if e.Space != nil && e.Space.Status().Low {
		e.noteDiskLow(true, logger)
	}
	return e.watchOffline(logger)
}

// offlineSweepEvery is how often terminals are checked for going offline
// (TERMINAL_OFFLINE, the terminal_offline webhook).
const offlineSweepEvery = 15 * time.Second

// watchOffline sweeps the fleet for terminals gone offline until Close.
func (e *Engines) watchOffline(logger *slog.Logger) error {
	det, err := e.Fleet.NewOfflineDetector()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(offlineSweepEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			n, err := det.Sweep(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				logger.Warn("offline sweep failed", "err", err, "reported", n)
			case n > 0:
				logger.Info("terminals went offline", "count", n)
			}
		}
	}()
	e.closers = append(e.closers, func() error { cancel(); <-done; return nil })
	return nil
}

// noteDiskLow records a DISK_LOW audit event (and so a disk_low webhook)
// when free space falls below the reserve, in its own synced commit through
// the reserve (audit.Log.RecordSync): it is on disk before gRPC health
// reports the low disk. Writes refused, and /readyz or /metrics read, in
// the moment between the space monitor's flip and that commit can precede
// it; a crash in that moment loses nothing, since a server that starts
// with the disk still low records DISK_LOW again (openWebhooks).
func (e *Engines) noteDiskLow(low bool, logger *slog.Logger) {
	log := e.diskAudit.Load()
	if !low || log == nil {
		return
	}
	st := e.Space.Status()
	err := log.RecordSync(audit.Event{Type: audit.DiskLow, Actor: "system",
		Message: "free disk space below the reserve; writes are refused until it returns",
		Attributes: map[string]string{
			"free_bytes": strconv.FormatInt(st.FreeBytes, 10), "reserve_bytes": strconv.FormatInt(st.ReserveBytes, 10),
		}})
	if err != nil {
		logger.Error("DISK_LOW audit event not recorded", "err", err)
	}
}
