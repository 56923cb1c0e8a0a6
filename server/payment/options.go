package payment

import (
	"errors"
	"fmt"
	"time"
)

// Options tune an Engine. Start from DefaultOptions.
type Options struct {
	// Retention is how long request IDs are honoured for replays and how
	// long tombstones and recent transactions stay in memory. At least 24h.
	Retention time.Duration
	// TxCacheTTL is how long a transaction stays in memory after it was
	// decided or last read; reversals and refunds of older ones read it from
	// disk.
	TxCacheTTL time.Duration
	// MaxEntries bounds the idempotency entries kept in memory. When more
	// are live, the oldest are dropped from memory early and looked up on
	// disk instead.
	MaxEntries int
	// MaxBatchOps bounds how many decisions one commit holds.
	MaxBatchOps int
	// MaxBatchBytes bounds the bytes one commit writes. It must stay below
	// what the store accepts in one transaction (15% of its memtable).
	MaxBatchBytes int
	// MaxBatchWrites bounds the keys one commit writes or deletes,
	// housekeeping's batch checkpoints and expiry deletes included. It must
	// stay well below the entries the store accepts in one transaction
	// (about 26,000 with 16 MiB memtables).
	MaxBatchWrites int
	// QueueLength is the capacity of the decision loop's input queue.
	QueueLength int
	// HousekeepingInterval is how often expired state is dropped.
	HousekeepingInterval time.Duration
	// PreauthValidity is how long after its approval a pre-auth can be
	// captured; later captures are declined with 12. Card schemes hold
	// most pre-auths for 7 days (up to 31 for lodging and car rental).
	// Default 7 days; at most 31 days.
	PreauthValidity time.Duration
	// Now is the clock; nil means time.Now. Decision times never go
	// backwards even when it does.
	Now func() time.Time
	// OnCommit, when set, is told of each synced group commit: how many
	// decisions it made durable and how long the store took to write and
	// sync it. The writer goroutine calls it, serially, before the commit's
	// answers are released, so it must be quick, must not block and must
	// not call the engine. Failed commits are not reported.
	OnCommit func(decisions int, elapsed time.Duration)

	// commitHook, when set (tests only), runs inside each commit after the
	// records are staged and before the commit is made durable; an error
	// aborts the commit.
	commitHook func() error
	// syncHook, when set (tests only), runs after each commit returned and
	// before its answers are released, as the tail of a slow fsync would; an
	// error fails the commit as a failed sync does (its records may or may
	// not be on disk, and nothing of it is acknowledged).
	syncHook func() error
	// commitWrites, when set (tests only), is told how many keys each
	// commit writes or deletes.
	commitWrites func(n int)
	// markHook, when set (tests only), runs before each commit's head is
	// written to the watermark.
	markHook func()
	// noCheckpoints, when set (tests only), never checkpoints open batches'
	// totals, as after a crash.
	noCheckpoints bool
	// filterCapacity, when set (tests only), is the number of request IDs
	// the request filter is sized for (see reqFilter).
	filterCapacity int
	// filterHook, when set (tests only), runs in the goroutine that builds
	// the request filter, in the store transaction it reads, before it
	// reads.
	filterHook func()
}

// DefaultOptions returns the production settings: 24h retention, one
// million idempotency entries in memory, commits of up to 4096 decisions,
// 1 MiB or 10,000 keys, and pre-auths capturable for 7 days.
func DefaultOptions() Options {
	return Options{
		Retention:            24 * time.Hour,
		TxCacheTTL:           15 * time.Minute,
		MaxEntries:           1 << 20,
		MaxBatchOps:          4096,
		MaxBatchBytes:        1 << 20,
		MaxBatchWrites:       10000,
		QueueLength:          8192,
		HousekeepingInterval: 10 * time.Second,
		PreauthValidity:      7 * 24 * time.Hour,
	}
}

// Validate reports the first unusable option.
func (o Options) Validate() error {
	switch {
	case o.Retention < 24*time.Hour:
		return fmt.Errorf("payment: Retention %v is below 24h", o.Retention)
	case o.TxCacheTTL <= 0:
		return errors.New("payment: TxCacheTTL must be positive")
	case o.MaxEntries < 1:
		return errors.New("payment: MaxEntries must be positive")
	case o.MaxBatchOps < 1:
		return errors.New("payment: MaxBatchOps must be positive")
	case o.MaxBatchBytes < 64<<10:
		return errors.New("payment: MaxBatchBytes must be at least 64 KiB")
	case o.MaxBatchWrites < 256:
		return errors.New("payment: MaxBatchWrites must be at least 256")
	case o.QueueLength < 1:
		return errors.New("payment: QueueLength must be positive")
	case o.HousekeepingInterval <= 0:
		return errors.New("payment: HousekeepingInterval must be positive")
	case o.PreauthValidity <= 0 || o.PreauthValidity > 31*24*time.Hour:
		return fmt.Errorf("payment: PreauthValidity %v is not between 0 and 31 days", o.PreauthValidity)
	}
	return nil
}
