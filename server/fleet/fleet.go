package fleet

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/store"
)

// Options configure a Fleet. Start from DefaultOptions.
type Options struct {
	// NewSecret returns a random secret with 256 bits of entropy and the
	// given prefix; terminal credentials are made with it. Required.
	NewSecret func(prefix string) string
	// Now is the clock (time.Now when nil); tests replace it.
	Now func() time.Time
	// FlushInterval is how often heartbeat status, faults and command
	// deliveries are written to storage in one batch.
	FlushInterval time.Duration
	// HeartbeatInterval is the heartbeat interval handed out when the
	// config source has none.
	HeartbeatInterval time.Duration
	// EnrollmentTTL is the validity of an enrollment code when the operator
	// gives none.
	EnrollmentTTL time.Duration
	// CommandTTL is how long a remote command stays deliverable when the
	// operator gives no TTL.
	CommandTTL time.Duration
	// SerialAttempts and SerialAttemptsPerMinute limit registration
	// attempts per serial number (token bucket: burst and refill rate).
	SerialAttempts          int
	SerialAttemptsPerMinute float64
	// PeerFailures and PeerFailuresPerMinute limit refused registrations per
	// peer host. Successful registrations take no token, so a legitimate
	// registration storm from one address is not slowed down.
	PeerFailures          int
	PeerFailuresPerMinute float64
	// AuditRepeatWindow coalesces repeated refusals from one peer in the
	// audit trail: one event per window, with the count of the suppressed.
	AuditRepeatWindow time.Duration
	// FaultRetention is how long fault events are kept for the fleet report.
	FaultRetention time.Duration
	// FaultBurst and FaultsPerHour bound the fault events stored per
	// terminal (token bucket): faults beyond them still show in the
	// terminal's latest faults but are neither stored nor counted in the
	// report, only in Report.FaultsDropped.
	FaultBurst    int
	FaultsPerHour float64
	// FaultComponentsPerTerminal bounds the distinct fault components one
	// terminal may report (since the server started); faults of further
	// components are filed under OtherComponent.
	FaultComponentsPerTerminal int
	// MaxFaultKeys bounds the distinct (merchant, store, component) fault
	// counts kept for the report; beyond it, new components are filed
	// under OtherComponent.
	MaxFaultKeys int
	// RegisterRetryWindow is how long after its first registration an
	// enrollment code whose credential was never used still accepts a
	// retried Register even though the code has expired meanwhile, so that a
	// response lost just before the expiry does not lock the terminal out.
	// Zero: only until the code's own expiry.
	RegisterRetryWindow time.Duration
	// StatusSampleInterval is how often a terminal's status history takes
	// a sample while heartbeats arrive; a change of battery, paper, network
	// or signal takes one sooner (see Fleet.StatusHistory). Default 15m.
	StatusSampleInterval time.Duration
	// StatusHistory is how many samples a terminal's status history keeps,
	// in storage and pending in memory. Default 96 (a day at 15 minutes).
	StatusHistory int
}

// OtherComponent is the fault component that stands for components beyond
// the caps (Options.FaultComponentsPerTerminal, Options.MaxFaultKeys), and
// the report row that sums the entries beyond its top ones.
const OtherComponent = "(other)"

// DefaultOptions returns production settings. NewSecret must still be set.
func DefaultOptions() Options {
	return Options{
		FlushInterval:           2 * time.Second,
		HeartbeatInterval:       60 * time.Second,
		EnrollmentTTL:           72 * time.Hour,
		CommandTTL:              24 * time.Hour,
		SerialAttempts:          5,
		SerialAttemptsPerMinute: 2,
		PeerFailures:            20,
		PeerFailuresPerMinute:   10,
		AuditRepeatWindow:       time.Minute,
		FaultRetention:          30 * 24 * time.Hour,

		FaultBurst:                 120,
		FaultsPerHour:              120,
		FaultComponentsPerTerminal: 16,
		MaxFaultKeys:               20000,
		RegisterRetryWindow:        24 * time.Hour,

		StatusSampleInterval: 15 * time.Minute,
		StatusHistory:        96,
	}
}

// Validate reports the first unusable setting.
func (o Options) Validate() error {
	switch {
	case o.NewSecret == nil:
		return errors.New("fleet: Options.NewSecret is required")
	case o.FlushInterval <= 0:
		return errors.New("fleet: FlushInterval must be positive")
	case o.HeartbeatInterval < time.Second:
		return errors.New("fleet: HeartbeatInterval must be at least 1s")
	case o.EnrollmentTTL <= 0 || o.CommandTTL <= 0:
		return errors.New("fleet: EnrollmentTTL and CommandTTL must be positive")
	case o.SerialAttempts < 1 || o.PeerFailures < 1:
		return errors.New("fleet: attempt bursts must be at least 1")
	case o.SerialAttemptsPerMinute <= 0 || o.PeerFailuresPerMinute <= 0:
		return errors.New("fleet: attempt rates must be positive")
	case o.AuditRepeatWindow < 0 || o.FaultRetention <= 0:
		return errors.New("fleet: AuditRepeatWindow must not be negative, FaultRetention must be positive")
	case o.RegisterRetryWindow < 0:
		return errors.New("fleet: RegisterRetryWindow must not be negative")
	case o.FaultBurst < 1 || o.FaultsPerHour <= 0 || o.FaultComponentsPerTerminal < 1 || o.MaxFaultKeys < 1:
		return errors.New("fleet: fault caps must be positive")
	case o.StatusSampleInterval <= 0 || o.StatusHistory < 1:
		return errors.New("fleet: StatusSampleInterval and StatusHistory must be positive")
	}
	return nil
}

// ConfigSource is what the fleet needs from config push: the config version
// a terminal should run and its heartbeat interval. It must answer from
// memory; it is called on every heartbeat.
type ConfigSource interface {
	// DesiredConfigVersion returns the config version the terminal should
	// run, 0 if none.
	DesiredConfigVersion(terminalID string) uint64
	// HeartbeatInterval returns the terminal's configured heartbeat
	// interval, 0 for the default.
	HeartbeatInterval(terminalID string) time.Duration
}

// Storage keys. Big-endian integers keep prefix iteration ordered.
var (
	prefixMerchant  = []byte("m/")  // m/<merchant>
	prefixStore     = []byte("s/")  // s/<merchant>/<store>
	prefixTerminal  = []byte("t/")  // t/<terminal>
	prefixHeartbeat = []byte("hb/") // hb/<terminal>
	prefixCommand   = []byte("cm/") // cm/<terminal>/<seq>
	prefixFault     = []byte("fl/") // fl/<seq>
)

func keyOf(prefix []byte, parts ...string) []byte {
	return append(append([]byte{}, prefix...), store.Key(parts...)...)
}

// Fleet holds merchants, stores and terminals: provisioning, enrollment,
// terminal credentials, signed merchant identities, heartbeats, faults and
// remote commands. Lookups on the request path (credential, binding,
// pending commands) are answered from memory; every change is written to
// storage before it is acknowledged, except heartbeat status, faults and
// command deliveries, which are written in batches. It is safe for
// concurrent use.
type Fleet struct {
	db     *store.DB
	audit  *audit.Log
	logger *slog.Logger
	opts   Options
	now    func() time.Time
	signer *signer

	serialLimit *Limiter
	peerLimit   *Limiter
	auditRepeat *RepeatFilter
	// faultLimit bounds the fault events stored per terminal.
	faultLimit *Limiter
	// faultsDropped counts faults over their terminal's budget.
	faultsDropped atomic.Uint64
	cfg           atomic.Pointer[configSourceBox]
	payments      atomic.Pointer[paymentHistoryBox]

	// catalogMu serializes merchant and store creation and updates (each
	// held across its storage write).
	catalogMu sync.Mutex

	mu sync.RWMutex // guards the maps below and every term.rec
	// merchants by ID; values are replaced, never modified.
	merchants map[string]*Merchant
	// stores by merchant and store ID; values are never modified.
	stores map[storeKey]*Store
	// terms holds every terminal, retired ones included.
	terms map[string]*term
	// serials maps the serial of each non-retired terminal to its ID.
	serials map[string]string
	// creds maps credential hashes to their terminal.
	creds map[[32]byte]*term
	// enrolls maps pending and last-used enrollment code hashes to their
	// terminal.
	enrolls map[[32]byte]*term
	// reservedIDs and reservedSerials are held by provisions whose storage
	// write is in flight.
	reservedIDs, reservedSerials map[string]bool

	// cmdMu serializes writes of command state: an acknowledgement and the
	// batched delivery and expiry writes, so that a batch never overwrites
	// a newer acknowledgement.
	cmdMu sync.Mutex

	pendMu sync.Mutex // guards dirty, cmdTerms, faults, faultCounts, faultSeq
	// dirty holds terminals whose heartbeat status or commands changed
	// since the last flush.
	dirty map[*term]struct{}
	// cmdTerms holds terminals with unfinished commands (for the expiry
	// sweep).
	cmdTerms map[*term]struct{}
	// faults are fault events not yet written.
	faults []faultRec
	// faultCounts counts retained faults per merchant, store and component.
	faultCounts map[faultKey]uint64
	// faultSeq numbers fault events.
	faultSeq uint64

	hooksMu sync.RWMutex // guards onChange, onCommand
	// onChange and onCommand are the subscribers of OnTerminalChange and
	// OnCommand.
	onChange  []func(TerminalRef)
	onCommand []func(terminalID string)

	cmdSeq atomic.Uint64 // numbers commands; starts above every stored one

	stop      chan struct{}
	flushDone chan struct{}
	closeOnce sync.Once
	closeErr  error
}

type configSourceBox struct{ src ConfigSource }

type paymentHistoryBox struct{ h PaymentHistory }

type storeKey struct{ merchant, store string }

type faultKey struct{ merchant, store, component string }

// term is a terminal: its stored record plus its live, in-memory state.
type term struct {
	// opMu serializes changes of this terminal; it is held across the
	// storage write so that changes apply in order.
	opMu sync.Mutex

	// rec is the stored record; guarded by Fleet.mu, replaced, never
	// modified.
	rec *terminalRec

	liveMu sync.Mutex // guards the fields below
	// status and last are the latest heartbeat's status and arrival time.
	status Status
	last   time.Time
	// seen is the time of the latest contact: any authenticated call, a
	// registration or a heartbeat (to the second; see touch).
	seen time.Time
	// faults are the latest faults, newest first.
	faults []Fault
	// components are the distinct fault components the terminal reported
	// since start, at most Options.FaultComponentsPerTerminal.
	components map[string]struct{}
	// cmds are the unfinished commands, oldest first.
	cmds []*cmdEntry
	// dirty is set when status or commands changed since the last flush.
	dirty bool
	// ident caches the last signed identity.
	ident *Identity
	// lastSample is the latest status history sample (nil if none).
	lastSample *StatusSample
	// samples are the history samples not yet written, oldest first, at
	// most Options.StatusHistory; a flush drops them once they are stored.
	samples []StatusSample
}

type cmdEntry struct {
	cmd   Command
	dirty bool // changed in memory since it was last written
}

// terminalRec is the stored form of a terminal.
//
// The JSON names of the stored records (terminalRec, heartbeatRec,
// faultRec, signingKeyRec and the exported types they hold: Device,
// Status, Fault, Command, Merchant, Store, Address) are short because they
// are written with every record: they are the on-disk format and are kept
// as they are (renaming one would lose that field of every stored record).
// The Go field names say what each one is; a new field gets a new name.
type terminalRec struct {
	ID          string `json:"id"`
	Serial      string `json:"sn"`
	MerchantID  string `json:"mid"`
	StoreID     string `json:"sid"`
	Label       string `json:"lb,omitempty"`
	State       State  `json:"st"`
	StateReason string `json:"sr,omitempty"`
	Device      Device `json:"dev"`
	// IdentityOffset makes the terminal's identity version: its merchant's
	// identity version plus this offset. A rebind raises it so that the
	// version increases even when the new merchant's version is lower, and a
	// merchant update raises every terminal's version without rewriting them.
	IdentityOffset int64     `json:"io"` // stored as "io": identity offset
	Created        time.Time `json:"ct"`
	Registered     time.Time `json:"rt,omitzero"`
	// CredHash is the SHA-256 of the credential. A credential is 256 random
	// bits, so a fast unsalted hash is enough: it cannot be guessed from its
	// hash, and hashing lets the credential be looked up.
	CredHash []byte `json:"ch,omitempty"`
	// EnrollHash is the hash of the pending enrollment code, EnrollExpires
	// its expiry; UsedEnrollHash the last code used.
	EnrollHash     []byte    `json:"eh,omitempty"`
	EnrollExpires  time.Time `json:"ee,omitzero"`
	UsedEnrollHash []byte    `json:"uh,omitempty"`
	// EnrollIssued is when the pending enrollment code first issued a
	// credential (CredHash) that has not been used yet; zero when it has
	// issued none. Until that credential's first use the code stays
	// pending, so that a terminal that lost the Register response can
	// register again (see Fleet.Register).
	EnrollIssued time.Time `json:"ei,omitzero"`
	// NextCredHash is the hash of a rotated credential not used yet; the
	// credential of CredHash stays valid until its first use, so that a
	// terminal that lost the RotateCredential response is not locked out.
	NextCredHash []byte `json:"nc,omitempty"`
}

func (r *terminalRec) clone() *terminalRec {
	c := *r
	return &c
}

// heartbeatRec is the stored form of a terminal's live status.
type heartbeatRec struct {
	Status Status    `json:"s"`
	Last   time.Time `json:"t"`
	// Seen is the latest contact of any kind (zero in records written
	// before it existed: then Last).
	Seen   time.Time `json:"c,omitempty"`
	Faults []Fault   `json:"f,omitempty"`
	// LastSample is the latest status history sample (nil in records
	// written before the history existed).
	LastSample *StatusSample `json:"ls,omitempty"`
}

// faultRec is a stored fault event.
type faultRec struct {
	Seq        uint64 `json:"-"`
	TerminalID string `json:"tid"`
	MerchantID string `json:"mid"`
	StoreID    string `json:"sid"`
	Fault      Fault  `json:"f"`
	// Received is when the server got it; retention counts from it.
	Received time.Time `json:"rt"`
}

// Open loads the fleet from db and starts its background flusher. Audit
// events go to log.
func Open(ctx context.Context, db *store.DB, log *audit.Log, opts Options, logger *slog.Logger) (*Fleet, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	f := &Fleet{
		db:              db,
		audit:           log,
		logger:          logger,
		opts:            opts,
		now:             opts.Now,
		serialLimit:     NewLimiter(opts.SerialAttemptsPerMinute/60, opts.SerialAttempts, 0),
		peerLimit:       NewLimiter(opts.PeerFailuresPerMinute/60, opts.PeerFailures, 0),
		auditRepeat:     NewRepeatFilter(opts.AuditRepeatWindow, 0),
		faultLimit:      NewLimiter(opts.FaultsPerHour/3600, opts.FaultBurst, 100_000),
		merchants:       map[string]*Merchant{},
		stores:          map[storeKey]*Store{},
		terms:           map[string]*term{},
		serials:         map[string]string{},
		creds:           map[[32]byte]*term{},
		enrolls:         map[[32]byte]*term{},
		reservedIDs:     map[string]bool{},
		reservedSerials: map[string]bool{},
		dirty:           map[*term]struct{}{},
		cmdTerms:        map[*term]struct{}{},
		faultCounts:     map[faultKey]uint64{},
		stop:            make(chan struct{}),
		flushDone:       make(chan struct{}),
	}
	var err error
	if f.signer, err = openSigner(db, f.now()); err != nil {
		return nil, err
	}
	if err := f.load(ctx); err != nil {
		return nil, err
	}
	if err := f.pruneFaults(f.now().Add(-f.opts.FaultRetention)); err != nil {
		return nil, err
	}
	go f.flushLoop()
	return f, nil
}

// load reads every record into memory.
func (f *Fleet) load(ctx context.Context) error {
	var maxCmd uint64
	err := f.db.View(func(tx *store.Txn) error {
		err := tx.Iterate(prefixMerchant, nil, func(k, v []byte) error {
			m := new(Merchant)
			if err := decode(v, m); err != nil {
				return fmt.Errorf("fleet: decode %s: %w", k, err)
			}
			f.merchants[m.ID] = m
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.Iterate(prefixStore, nil, func(k, v []byte) error {
			s := new(Store)
			if err := decode(v, s); err != nil {
				return fmt.Errorf("fleet: decode %s: %w", k, err)
			}
			f.stores[storeKey{s.MerchantID, s.ID}] = s
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.Iterate(prefixTerminal, nil, func(k, v []byte) error {
			r := new(terminalRec)
			if err := decode(v, r); err != nil {
				return fmt.Errorf("fleet: decode %s: %w", k, err)
			}
			t := &term{rec: r}
			f.terms[r.ID] = t
			f.index(t, nil, r)
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.Iterate(prefixHeartbeat, nil, func(k, v []byte) error {
			var h heartbeatRec
			if err := decode(v, &h); err != nil {
				return fmt.Errorf("fleet: decode %s: %w", k, err)
			}
			if t := f.terms[string(k[len(prefixHeartbeat):])]; t != nil {
				t.status, t.last, t.faults, t.seen = h.Status, h.Last, h.Faults, h.Seen
				t.lastSample = h.LastSample
				if t.seen.Before(h.Last) {
					t.seen = h.Last
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		err = tx.Iterate(prefixCommand, nil, func(k, v []byte) error {
			var c Command
			if err := decode(v, &c); err != nil {
				return fmt.Errorf("fleet: decode %s: %w", k, err)
			}
			if len(k) >= 8 {
				maxCmd = max(maxCmd, beUint64(k[len(k)-8:]))
			}
			if t := f.terms[c.TerminalID]; t != nil && !c.State.final() {
				t.cmds = append(t.cmds, &cmdEntry{cmd: c})
				f.cmdTerms[t] = struct{}{}
			}
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Iterate(prefixFault, nil, func(k, v []byte) error {
			var r faultRec
			if err := decode(v, &r); err != nil {
				return fmt.Errorf("fleet: decode %s: %w", k, err)
			}
			f.faultSeq = max(f.faultSeq, beUint64(k[len(prefixFault):]))
			// Count every stored fault, expired or not: pruning (in Open,
			// then hourly) takes each one off again.
			f.faultCounts[faultKey{r.MerchantID, r.StoreID, r.Fault.Component}]++
			return nil
		})
	})
	if err != nil {
		return err
	}
	f.cmdSeq.Store(max(maxCmd, uint64(f.now().UnixMicro())))
	f.faultSeq = max(f.faultSeq, uint64(f.now().UnixMicro()))
	f.logger.InfoContext(ctx, "fleet loaded", "merchants", len(f.merchants), "stores", len(f.stores), "terminals", len(f.terms))
	return nil
}

func beUint64(b []byte) uint64 {
	var v uint64
	for _, c := range b[:8] {
		v = v<<8 | uint64(c)
	}
	return v
}

// index updates the in-memory indexes for t's record changing from old (nil
// for a new terminal) to r. f.mu is held for writing (or the fleet is not
// shared yet).
func (f *Fleet) index(t *term, old, r *terminalRec) {
	if old != nil {
		for _, b := range [][]byte{old.CredHash, old.NextCredHash} {
			if h, ok := hash32(b); ok && f.creds[h] == t {
				delete(f.creds, h)
			}
		}
		for _, b := range [][]byte{old.EnrollHash, old.UsedEnrollHash} {
			if h, ok := hash32(b); ok && f.enrolls[h] == t {
				delete(f.enrolls, h)
			}
		}
		if f.serials[old.Serial] == old.ID {
			delete(f.serials, old.Serial)
		}
	}
	// Retired terminals stay in creds and enrolls so that their callers
	// learn that the terminal is retired.
	for _, b := range [][]byte{r.CredHash, r.NextCredHash} {
		if h, ok := hash32(b); ok {
			f.creds[h] = t
		}
	}
	for _, b := range [][]byte{r.EnrollHash, r.UsedEnrollHash} {
		if h, ok := hash32(b); ok {
			f.enrolls[h] = t
		}
	}
	if r.State != StateRetired {
		f.serials[r.Serial] = r.ID
	}
}

func hash32(b []byte) ([32]byte, bool) {
	var h [32]byte
	if len(b) != len(h) {
		return h, false
	}
	copy(h[:], b)
	return h, true
}

// secretHash returns the SHA-256 of a secret with a domain prefix.
func secretHash(domain, secret string) [32]byte {
	return sha256.Sum256([]byte(domain + "\x00" + secret))
}

// Close writes pending heartbeat status, faults and command deliveries and
// stops the background flusher. The fleet must not be used afterwards.
func (f *Fleet) Close() error {
	f.closeOnce.Do(func() {
		close(f.stop)
		<-f.flushDone
		// The last flush goes out even while disk space is low: it is
		// small, the reserve holds it, and nothing is dropped at shutdown.
		f.closeErr = f.flush(true)
	})
	return f.closeErr
}

// SetConfigSource connects config push: the desired config version and
// heartbeat interval handed to terminals come from src from now on. Until it
// is set, the version is 0 and the interval Options.HeartbeatInterval.
func (f *Fleet) SetConfigSource(src ConfigSource) {
	f.cfg.Store(&configSourceBox{src: src})
}

// PaymentHistory tells the fleet whether a merchant has payments, which
// fixes the merchant's currency (see UpdateMerchant).
type PaymentHistory interface {
	// MerchantHasPayments reports whether any payment of the merchant is
	// recorded. It is called with the fleet's catalog lock held, so it must
	// not create or update merchants or stores; it may be called
	// concurrently with anything else.
	MerchantHasPayments(ctx context.Context, merchantID string) (bool, error)
}

// SetPaymentHistory connects the payment ledger: from now on a merchant's
// currency cannot change once h says it has payments. Until it is set,
// there are no payments and the currency may always change.
func (f *Fleet) SetPaymentHistory(h PaymentHistory) {
	f.payments.Store(&paymentHistoryBox{h: h})
}

// hasPayments reports whether merchantID has payments, per the payment
// history (none when there is no history).
func (f *Fleet) hasPayments(ctx context.Context, merchantID string) (bool, error) {
	if b := f.payments.Load(); b != nil && b.h != nil {
		return b.h.MerchantHasPayments(ctx, merchantID)
	}
	return false, nil
}

// desiredVersion returns the config version terminalID should run.
func (f *Fleet) desiredVersion(terminalID string) uint64 {
	if b := f.cfg.Load(); b != nil && b.src != nil {
		return b.src.DesiredConfigVersion(terminalID)
	}
	return 0
}

// interval returns terminalID's heartbeat interval, without jitter.
func (f *Fleet) interval(terminalID string) time.Duration {
	if b := f.cfg.Load(); b != nil && b.src != nil {
		if d := b.src.HeartbeatInterval(terminalID); d > 0 {
			return d
		}
	}
	return f.opts.HeartbeatInterval
}

// HeartbeatInterval returns terminalID's heartbeat interval with ±10%
// jitter, so that a fleet that boots together does not call in together.
func (f *Fleet) HeartbeatInterval(terminalID string) time.Duration {
	return jitter(f.interval(terminalID))
}

func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
}

// OnTerminalChange subscribes fn to terminal changes: it is called after a
// terminal is provisioned, rebound, suspended, reactivated or retired, with
// the terminal's new binding. fn runs on the caller's goroutine and must not
// block or call back into the fleet's mutating methods.
func (f *Fleet) OnTerminalChange(fn func(TerminalRef)) {
	f.hooksMu.Lock()
	defer f.hooksMu.Unlock()
	f.onChange = append(f.onChange, fn)
}

// OnCommand subscribes fn to new remote commands: it is called with the
// terminal ID after a command is queued (e.g. to push it on a config
// stream). fn must not block.
func (f *Fleet) OnCommand(fn func(terminalID string)) {
	f.hooksMu.Lock()
	defer f.hooksMu.Unlock()
	f.onCommand = append(f.onCommand, fn)
}

func (f *Fleet) notifyChange(r *terminalRec) {
	f.hooksMu.RLock()
	fns := f.onChange
	f.hooksMu.RUnlock()
	ref := TerminalRef{TerminalID: r.ID, MerchantID: r.MerchantID, StoreID: r.StoreID, State: r.State}
	for _, fn := range fns {
		fn(ref)
	}
}

func (f *Fleet) notifyCommand(terminalID string) {
	f.hooksMu.RLock()
	fns := f.onCommand
	f.hooksMu.RUnlock()
	for _, fn := range fns {
		fn(terminalID)
	}
}

// record writes an audit event, if the fleet has an audit trail.
func (f *Fleet) record(e audit.Event) {
	if f.audit != nil {
		f.audit.Record(e)
	}
}

// recordSync writes an audit event in its own synced commit (see
// audit.Log.RecordSync), if the fleet has an audit trail.
func (f *Fleet) recordSync(e audit.Event) error {
	if f.audit == nil {
		return nil
	}
	return f.audit.RecordSync(e)
}

// PublicKeys returns the server's identity signing keys: the active one
// first, then the retired ones, newest first.
func (f *Fleet) PublicKeys() []PublicKey { return f.signer.publicKeys() }

// ActiveSigningKey returns the key that signs new identities.
func (f *Fleet) ActiveSigningKey() PublicKey { return f.signer.publicKeys()[0] }

// RotateSigningKey makes a new identity signing key, endorsed by the active
// one, the active one, and returns it. Identities signed from now on name
// it; earlier ones still verify with their published key, which stays in
// PublicKeys as retired. The rotation is audited with its storage write.
func (f *Fleet) RotateSigningKey(ctx context.Context, who audit.Actor) (PublicKey, error) {
	if err := ctx.Err(); err != nil {
		return PublicKey{}, err
	}
	prev := f.signer.activeKeyID()
	commit := func(fn func(tx *store.Txn) error, pub PublicKey) error {
		return f.commit(fn, audit.Event{Type: audit.SigningKeyRotated, Actor: who.Name, Peer: who.Peer,
			Message:    "identity signing key rotated",
			Attributes: map[string]string{"key_id": pub.KeyID, "fingerprint": pub.Fingerprint(), "previous_key_id": prev}})
	}
	if _, err := f.signer.rotate(f.now, commit); err != nil {
		return PublicKey{}, err
	}
	f.mu.RLock()
	terms := make([]*term, 0, len(f.terms))
	for _, t := range f.terms {
		terms = append(terms, t)
	}
	f.mu.RUnlock()
	for _, t := range terms {
		t.liveMu.Lock()
		t.ident = nil
		t.liveMu.Unlock()
	}
	return f.ActiveSigningKey(), nil
}
