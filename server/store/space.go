package store

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrDiskLow is returned by Update, and by callers that check Space.Allow
// before deciding, while the free space of the data directory's filesystem
// is below the reserve. Reads still work; writes are allowed again once
// space returns.
var ErrDiskLow = errors.New("store: free disk space is below the reserve; writes are refused until space returns")

// SpaceOptions configure the disk-space monitor.
type SpaceOptions struct {
	// Reserve is the free space, in bytes, below which writes are refused.
	// It is raised to MinReserve when smaller (zero: MinReserve alone).
	Reserve int64
	// Interval is how often the monitor measures the free space. The check
	// before each write measures again when the last measurement is older
	// than Interval/8, so a burst of writes cannot run far past the reserve.
	Interval time.Duration
	// OnChange, when set, is called with true when free space falls below
	// the reserve and with false when it is back above it. It is called from
	// the monitor's goroutine or from a writer, one call at a time.
	OnChange func(low bool)
	// Statfs, when set (tests only), measures the free bytes instead of
	// statfs(2) on the database's directory.
	Statfs func() (int64, error)
}

// DefaultSpaceOptions returns the defaults: the computed minimum reserve
// and a measurement every 500 ms.
func DefaultSpaceOptions() SpaceOptions {
	return SpaceOptions{Interval: 500 * time.Millisecond}
}

// Validate reports whether the options are usable.
func (o SpaceOptions) Validate() error {
	switch {
	case o.Reserve < 0:
		return errors.New("store: disk Reserve must not be negative")
	case o.Interval < 10*time.Millisecond:
		return errors.New("store: disk check Interval must be at least 10ms")
	}
	return nil
}

// spaceMargin covers the files Badger writes besides memtables and tables
// (MANIFEST rewrites, the discard-stats file, the KEYREGISTRY) and the
// commits already decided when the reserve is reached (one group commit of
// payments, one audit batch).
const spaceMargin = 4 << 20

// MinReserve returns the least free space a database opened with opts
// needs to finish, without new writes, everything Badger may still write
// once writes are refused, given an LSM tree of lsmSize bytes:
//
//   - the active memtable's write-ahead file (.mem, written through mmap)
//     grows by up to MemTableSize before the memtable is rotated;
//   - flushing a memtable writes a level-0 table of up to MemTableSize
//     (through mmap) before the memtable's .mem file is deleted; flushes
//     run one at a time, and Close flushes the last memtable;
//   - a compaction writes its output tables before it deletes its inputs;
//     its output is no larger than its inputs, and the inputs of all
//     concurrent compactions together are no larger than the LSM tree;
//   - spaceMargin for everything else.
//
// So the reserve is 2*MemTableSize + lsmSize + spaceMargin: with the
// default 16 MiB memtables, 36 MiB plus the LSM tree's size.
func MinReserve(opts Options, lsmSize int64) int64 {
	return 2*opts.MemTableSize + max(lsmSize, 0) + spaceMargin
}

// Space watches the free space of a database's filesystem and refuses the
// database's writes while it is below the reserve (see MinReserve). It is
// safe for concurrent use. Create it with WatchSpace; stop it with Close.
type Space struct {
	db     *DB
	opts   SpaceOptions
	logger *slog.Logger
	statfs func() (int64, error)

	low      atomic.Bool
	free     atomic.Int64
	need     atomic.Int64
	measured atomic.Int64 // time of the last measurement, UnixNano
	// mu serializes measurements, so that state changes are logged and
	// reported in order.
	mu sync.Mutex

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// WatchSpace starts watching the free space of db's directory and makes
// db.Update refuse writes with ErrDiskLow while it is below the reserve.
// It measures once before it returns.
func WatchSpace(db *DB, opts SpaceOptions, logger *slog.Logger) (*Space, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if db.alt != nil {
		return nil, errors.New("store: a PostgreSQL database has no local disk to watch")
	}
	if db.opts.InMemory {
		return nil, errors.New("store: an in-memory database has no disk to watch")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Space{db: db, opts: opts, logger: logger, statfs: opts.Statfs,
		stop: make(chan struct{}), done: make(chan struct{})}
	if s.statfs == nil {
		dir := db.opts.Dir
		s.statfs = func() (int64, error) { return freeBytes(dir) }
	}
	if err := s.measure(); err != nil {
		return nil, err
	}
	db.space.Store(s)
	go s.loop()
	return s, nil
}

// freeBytes returns the bytes of dir's filesystem available to this
// (unprivileged) process.
func freeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("store: statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

func (s *Space) loop() {
	defer close(s.done)
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if err := s.measure(); err != nil {
			s.logger.Error("disk space check failed", "err", err)
		}
	}
}

// measure reads the free space and the reserve now needed and updates the
// low state, logging and reporting changes. A failed measurement leaves the
// state as it was.
func (s *Space) measure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	free, err := s.statfs()
	if err != nil {
		return err
	}
	need := max(s.opts.Reserve, MinReserve(s.db.opts, s.db.lsmSize()))
	s.free.Store(free)
	s.need.Store(need)
	s.measured.Store(time.Now().UnixNano())
	wasLow := s.low.Load()
	// Writes resume only with a little more than the reserve free, so that
	// they do not flap on and off at the boundary.
	low := free < need || (wasLow && free < need+need/16)
	if low == wasLow {
		return nil
	}
	s.low.Store(low)
	if low {
		s.logger.Warn("free disk space below the reserve: refusing writes until space returns",
			"dir", s.db.opts.Dir, "free_bytes", free, "reserve_bytes", need)
	} else {
		s.logger.Info("free disk space back above the reserve: writes resume",
			"dir", s.db.opts.Dir, "free_bytes", free, "reserve_bytes", need)
	}
	if s.opts.OnChange != nil {
		s.opts.OnChange(low)
	}
	return nil
}

// lsmSize returns the LSM tree's size on disk now: the sum of its tables'
// sizes. (Badger's Size is refreshed only once a minute.)
func (db *DB) lsmSize() int64 {
	var n int64
	for _, t := range db.bdb.Tables() {
		n += int64(t.OnDiskSize)
	}
	return n
}

// Allow returns ErrDiskLow while free space is below the reserve, and nil
// otherwise. It measures again when the last measurement is older than an
// eighth of the interval; otherwise it costs two atomic loads.
func (s *Space) Allow() error {
	if s == nil {
		return nil
	}
	if time.Now().UnixNano()-s.measured.Load() > int64(s.opts.Interval/8) && s.mu.TryLock() {
		s.mu.Unlock()
		if err := s.measure(); err != nil {
			s.logger.Error("disk space check failed", "err", err)
		}
	}
	if s.low.Load() {
		return ErrDiskLow
	}
	return nil
}

// SpaceStatus is a snapshot of the monitor's last measurement.
type SpaceStatus struct {
	// Low is true while writes are refused.
	Low bool
	// FreeBytes is the free space last measured.
	FreeBytes int64
	// ReserveBytes is the reserve in force: the configured reserve or the
	// computed minimum, whichever is larger.
	ReserveBytes int64
}

// Status returns the last measurement.
func (s *Space) Status() SpaceStatus {
	return SpaceStatus{Low: s.low.Load(), FreeBytes: s.free.Load(), ReserveBytes: s.need.Load()}
}

// Close stops the monitor; the database's writes are no longer checked.
func (s *Space) Close() error {
	s.once.Do(func() {
		close(s.stop)
		<-s.done
		s.db.space.CompareAndSwap(s, nil)
	})
	return nil
}

// CheckSpace returns ErrDiskLow while the database's disk space is below
// the reserve (see WatchSpace), and nil otherwise or when nothing watches.
// It is cheap enough to call before every write.
func (db *DB) CheckSpace() error { return db.space.Load().Allow() }

// SpaceStatus returns the last measurement of the database's disk space,
// and false when nothing watches it.
func (db *DB) SpaceStatus() (SpaceStatus, bool) {
	s := db.space.Load()
	if s == nil {
		return SpaceStatus{}, false
	}
	return s.Status(), true
}
