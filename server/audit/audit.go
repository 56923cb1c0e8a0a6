package audit

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/posfleet/posfleet/server/store"
)

// Type is the kind of an audit event. Its values equal the protocol's
// AuditEventType numbers.
type Type int32

// Event types.
const (
	TypeUnspecified Type = iota
	MerchantCreated
	MerchantUpdated
	StoreCreated
	TerminalProvisioned
	TerminalRegistered
	TerminalSuspended
	TerminalReactivated
	TerminalRetired
	TerminalRebound
	EnrollmentReissued
	CredentialRotated
	CommandSent
	CommandAcked
	ConfigPublished
	RolloutChanged
	TokenCreated
	TokenRevoked
	AuthFailure
	PermissionDenied
	RegistrationRefused
	IdentityCollision
	MerchantMismatch
	BatchClosed
	BatchOutOfBalance
	BackupTaken
	MerchantArchived
	StoreArchived
	// ConfigRejected: a terminal rejected a config version.
	ConfigRejected
	// TerminalOffline: a terminal went without contact past the offline
	// threshold.
	TerminalOffline
	// DiskLow: free space on the data directory's disk fell below the
	// reserve; writes are refused until it returns.
	DiskLow
	// WebhookChanged: a webhook endpoint was created, updated, deleted,
	// had its secret rotated, or an event was redelivered.
	WebhookChanged
	// SigningKeyRotated: a new identity signing key became the active one.
	SigningKeyRotated
	typeCount
)

// Event is one entry of the audit trail.
type Event struct {
	ID         uint64            `json:"-"`
	Type       Type              `json:"t"`
	Time       time.Time         `json:"ts"`
	Actor      string            `json:"a,omitempty"`
	TerminalID string            `json:"tid,omitempty"`
	MerchantID string            `json:"mid,omitempty"`
	StoreID    string            `json:"sid,omitempty"`
	Message    string            `json:"m,omitempty"`
	Attributes map[string]string `json:"at,omitempty"`
	Peer       string            `json:"p,omitempty"`
}

// Filter selects events in List. Zero fields match everything.
type Filter struct {
	Type       Type
	TerminalID string
	MerchantID string
	Start, End time.Time // Start inclusive, End exclusive
}

func (f Filter) match(e *Event) bool {
	return (f.Type == TypeUnspecified || e.Type == f.Type) &&
		(f.TerminalID == "" || e.TerminalID == f.TerminalID) &&
		(f.MerchantID == "" || e.MerchantID == f.MerchantID) &&
		(f.Start.IsZero() || !e.Time.Before(f.Start)) &&
		(f.End.IsZero() || e.Time.Before(f.End))
}

// ErrBadPageToken is returned by List for a page token it did not issue.
var ErrBadPageToken = errors.New("audit: invalid page token")

const (
	schemaV1    = 1
	flushEvery  = 50 * time.Millisecond
	maxBatch    = 512
	queueLength = 8192
)

var (
	prefixEvent = []byte("au/")
	// secondary indexes: aut/<type>/<id>, aum/<merchant>/<id>, aux/<terminal>/<id>
	prefixByType     = []byte("aut/")
	prefixByMerchant = []byte("aum/")
	prefixByTerminal = []byte("aux/")
)

// Log is the audit trail. It is safe for concurrent use.
type Log struct {
	db     *store.DB
	logger *slog.Logger
	now    func() time.Time

	queue   chan Event
	flushed chan chan struct{}
	done    chan struct{}
	wg      sync.WaitGroup

	mu sync.Mutex // guards nextID, counts, closed and the fields of counted
	// nextID is the ID of the next recorded event; IDs increase with time.
	nextID uint64
	// counts holds the number of events per type and, for merchant
	// mismatches, per terminal, recorded since Open; counted holds those
	// of before Open, read from disk on first use (see stored).
	counts     [typeCount]uint64
	mismatches map[string]uint64
	counted    storedCounts
	closed     bool
	// tail tracks the IDs handed out but not yet settled, for readers that
	// follow the log in ID order (tail.go).
	tail tailState

	// reads counts the index keys and events List read, so that tests can
	// tell a page's cost; budget, when positive (tests only), replaces
	// readBudget.
	reads  atomic.Uint64
	budget int
}

// Open starts the audit trail on db. It reads only the newest event, so it
// takes the same time however long the trail. The logger may be nil.
func Open(ctx context.Context, db *store.DB, logger *slog.Logger) (*Log, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l := &Log{
		db:         db,
		logger:     logger,
		now:        time.Now,
		queue:      make(chan Event, queueLength),
		flushed:    make(chan chan struct{}),
		done:       make(chan struct{}),
		mismatches: map[string]uint64{},
		tail:       newTailState(),
	}
	// Only the newest event is read: counts of older ones are read from
	// the type index when first asked for (see stored).
	err := db.View(func(tx *store.Txn) error {
		return tx.IterateReverse(prefixEvent, nil, func(k, _ []byte) error {
			if len(k) != len(prefixEvent)+8 {
				return fmt.Errorf("audit: malformed key %x", k)
			}
			l.nextID = binary.BigEndian.Uint64(k[len(prefixEvent):]) + 1
			return store.ErrStop
		})
	})
	if err != nil {
		return nil, err
	}
	if min := uint64(time.Now().UnixMicro()); l.nextID < min {
		l.nextID = min
	}
	l.counted.before = l.nextID
	l.wg.Add(1)
	go l.flushLoop()
	return l, nil
}

func (l *Log) count(e *Event) {
	if e.Type > 0 && e.Type < typeCount {
		l.counts[e.Type]++
	}
	if e.Type == MerchantMismatch && e.TerminalID != "" {
		l.mismatches[e.TerminalID]++
	}
}

// Commit runs fn in one synced transaction of the log's database and writes
// evs in the same transaction: the events are on disk exactly when the change
// fn stages is, so no crash leaves an acknowledged change without its event,
// nor an event without its change. Times default to now. If fn or the commit
// fails, nothing is written and the events are not counted. Use Commit for
// events that record a change; Record for alerts and refusals.
func (l *Log) Commit(fn func(tx *store.Txn) error, evs ...Event) error {
	return l.commit(l.db.Update, fn, evs)
}

// commit is Commit through update (db.Update, or db.UpdateReserved for
// events that must reach disk even while space is low).
func (l *Log) commit(update func(func(tx *store.Txn) error) error, fn func(tx *store.Txn) error, evs []Event) error {
	staged := l.assign(evs)
	err := update(func(tx *store.Txn) error {
		if err := fn(tx); err != nil {
			return err
		}
		return l.Stage(tx, staged)
	})
	if err == nil {
		l.Committed(staged)
	} else {
		l.Abandon(staged)
	}
	return err
}

// Prepare returns copies of evs with their IDs and times set, ready for
// Stage. Callers that commit through their own transaction (the payment
// writer) use Prepare, Stage and Committed instead of Commit.
func (l *Log) Prepare(evs []Event) []Event { return l.assign(evs) }

// Stage writes prepared events into tx. They count once Committed is called
// after the transaction committed.
func (l *Log) Stage(tx *store.Txn, evs []Event) error {
	for i := range evs {
		if err := put(tx, &evs[i]); err != nil {
			return err
		}
	}
	return nil
}

// Committed counts events that Stage wrote and whose transaction committed.
func (l *Log) Committed(evs []Event) {
	if len(evs) == 0 {
		return
	}
	l.mu.Lock()
	for i := range evs {
		l.count(&evs[i])
	}
	l.settleLocked(evs)
	l.mu.Unlock()
}

// assign copies evs, giving each the next ID and, when unset, the time now.
func (l *Log) assign(evs []Event) []Event {
	if len(evs) == 0 {
		return nil
	}
	out := make([]Event, len(evs))
	// The time is taken under the lock, so that times follow IDs (List
	// seeks a time by its ID).
	l.mu.Lock()
	now := l.now()
	for i, e := range evs {
		if e.Time.IsZero() {
			e.Time = now
		}
		e.Time = e.Time.UTC()
		e.ID = l.nextID
		l.nextID++
		l.tail.hold(e.ID)
		out[i] = e
	}
	l.mu.Unlock()
	return out
}

// Record queues e to be written in the next batch. Time defaults to now. It never blocks on the
// disk; if the queue is full (the disk cannot keep up) it waits for room.
// Events recorded after Close are logged and dropped.
func (l *Log) Record(e Event) {
	l.mu.Lock()
	if e.Time.IsZero() {
		e.Time = l.now() // under the lock, so that times follow IDs
	}
	e.Time = e.Time.UTC()
	if l.closed {
		l.mu.Unlock()
		l.logger.Error("audit event after close dropped", "type", e.Type, "actor", e.Actor)
		return
	}
	e.ID = l.nextID
	l.nextID++
	l.tail.hold(e.ID)
	l.count(&e)
	l.mu.Unlock()
	l.queue <- e
}

// Flush waits until every event recorded before the call is on disk.
func (l *Log) Flush(ctx context.Context) error {
	ch := make(chan struct{})
	select {
	case l.flushed <- ch:
	case <-l.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Count returns how many events of type t were recorded (ever).
func (l *Log) Count(t Type) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t <= 0 || t >= typeCount {
		return 0
	}
	base, err := l.stored(t)
	if err != nil {
		l.logger.Error("audit: count events", "type", t, "err", err)
	}
	return base + l.counts[t]
}

// MismatchesByTerminal returns the number of merchant-mismatch alerts per
// terminal.
func (l *Log) MismatchesByTerminal() map[string]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.stored(MerchantMismatch); err != nil {
		l.logger.Error("audit: count merchant mismatches", "err", err)
	}
	out := make(map[string]uint64, len(l.mismatches)+len(l.counted.mismatches))
	for k, v := range l.counted.mismatches {
		out[k] += v
	}
	for k, v := range l.mismatches {
		out[k] += v
	}
	return out
}

// Close writes what is queued and stops the flusher.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	close(l.queue)
	l.wg.Wait()
	return nil
}

func (l *Log) flushLoop() {
	defer l.wg.Done()
	defer close(l.done)
	batch := make([]Event, 0, maxBatch)
	var waiters []chan struct{}
	timer := time.NewTimer(flushEvery)
	defer timer.Stop()
	writeBatch := func() {
		if len(batch) > 0 {
			if err := l.write(batch); err != nil {
				l.logger.Error("audit write failed", "err", err, "events", len(batch))
			}
			l.settle(batch) // written or lost: either way settled
			batch = batch[:0]
		}
	}
	write := func() {
		writeBatch()
		for _, w := range waiters {
			close(w)
		}
		waiters = waiters[:0]
	}
	for {
		select {
		case e, ok := <-l.queue:
			if !ok {
				write()
				return
			}
			batch = append(batch, e)
			if len(batch) >= maxBatch {
				write()
			}
		case w := <-l.flushed:
			// Drain what is already queued, then write.
			for drained := false; !drained; {
				select {
				case e, ok := <-l.queue:
					if !ok {
						waiters = append(waiters, w)
						write()
						return
					}
					// A full queue is written in batches of maxBatch: one
					// commit of all of it is too big for the store.
					if batch = append(batch, e); len(batch) >= maxBatch {
						writeBatch()
					}
				default:
					drained = true
				}
			}
			waiters = append(waiters, w)
			write()
		case <-timer.C:
			write()
			timer.Reset(flushEvery)
		}
	}
}

func (l *Log) write(batch []Event) error {
	// Batches go out even while disk space is low: the events were recorded
	// already, and the reserve holds them.
	return l.db.UpdateReserved(func(tx *store.Txn) error { return l.Stage(tx, batch) })
}

// put stages one event and its index entries in tx.
func put(tx *store.Txn, e *Event) error {
	v, err := encode(e)
	if err != nil {
		return err
	}
	id := store.AppendUint64(nil, e.ID)
	if err := tx.Set(append(append([]byte{}, prefixEvent...), id...), v); err != nil {
		return err
	}
	if err := tx.Set(indexKey(prefixByType, fmt.Sprint(int32(e.Type)), e.ID), nil); err != nil {
		return err
	}
	if e.MerchantID != "" {
		if err := tx.Set(indexKey(prefixByMerchant, e.MerchantID, e.ID), nil); err != nil {
			return err
		}
	}
	if e.TerminalID != "" {
		if err := tx.Set(indexKey(prefixByTerminal, e.TerminalID, e.ID), nil); err != nil {
			return err
		}
	}
	return nil
}

func indexKey(prefix []byte, value string, id uint64) []byte {
	k := make([]byte, 0, len(prefix)+len(value)+9)
	k = append(k, prefix...)
	k = append(k, value...)
	k = append(k, '/')
	return store.AppendUint64(k, id)
}

func encode(e *Event) ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("audit: encode: %w", err)
	}
	return append([]byte{schemaV1}, b...), nil
}

func decode(v []byte, e *Event) error {
	if len(v) == 0 || v[0] != schemaV1 {
		return fmt.Errorf("audit: unknown schema version")
	}
	return json.Unmarshal(v[1:], e)
}
