package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrConflict is returned by Update when its transaction collided with
// another one committed since it began: on Badger a key it read was
// written; on PostgreSQL a serialization failure or a deadlock (SQLSTATE
// 40001, 40P01). Nothing of the transaction was written; it may be retried.
var ErrConflict = errors.New("store: transaction conflict")

// ErrUnsupported is returned for a Badger-only operation on a PostgreSQL
// database: Backup and Restore.
var ErrUnsupported = errors.New("store: not supported on PostgreSQL")

var errBackupUnsupported = fmt.Errorf("%w: a PostgreSQL deployment is backed up with PostgreSQL's own tools (pg_dump, pg_basebackup)", ErrUnsupported)

// PostgresOptions configure a database on PostgreSQL. Start from
// DefaultPostgresOptions.
type PostgresOptions struct {
	// URL is the PostgreSQL connection string (a postgres:// URL or a
	// key=value DSN, as libpq reads them). Required. A host other than a
	// loopback address or a unix socket needs sslmode=require, verify-ca
	// or verify-full.
	URL string
	// MaxConns bounds the connection pool. Default 16.
	MaxConns int32
	// StatementTimeout bounds each round trip to the database; a statement
	// still running then is cancelled and its transaction fails. Default
	// 30 s.
	StatementTimeout time.Duration
	// ExpiryInterval is how often rows whose TTL has passed are deleted
	// (reads never return them). Zero disables the sweep. Default 1 min.
	ExpiryInterval time.Duration
	// NoMigrate makes OpenPostgres check the schema version without
	// applying pending migrations: a schema older than this binary's is
	// then refused too (apply it with posfleet migrate).
	NoMigrate bool
	// CommitFault, when set (tests only: a failpoint), runs in every
	// read-write transaction after its writes are staged and before the
	// commit; an error fails the commit (see Options.CommitFault).
	CommitFault func() error

	// Node names this node in the posfleet_writer table while it holds
	// the writer role. Default: host name and process ID.
	Node string
	// OnStandby, when set, is called once if OpenPostgres finds another
	// node holding the writer role and starts waiting for it.
	OnStandby func()
	// OnLeaderLost, when set, is called once when this node loses the
	// writer role for good (the error wraps ErrFenced); from then on every
	// write fails with ErrFenced.
	OnLeaderLost func(error)
	// LeaderPing is how often the connection holding the writer lock is
	// checked. Default 1 s.
	LeaderPing time.Duration
	// LeaderPingTimeout bounds each check (and each attempt to take the
	// lock back). Default 2 s.
	LeaderPingTimeout time.Duration
	// LeaderGrace is how long a node whose lock connection was lost keeps
	// trying to take the lock back, as long as no other node has taken the
	// role (its epoch is still the database's): enough to ride through a
	// database failover. Writes stay fenced by the epoch meanwhile. Default
	// 30 s.
	LeaderGrace time.Duration
}

// DefaultPostgresOptions returns the defaults for url.
func DefaultPostgresOptions(url string) PostgresOptions {
	return PostgresOptions{
		URL:              url,
		MaxConns:         16,
		StatementTimeout: 30 * time.Second,
		ExpiryInterval:   time.Minute,

		LeaderPing:        time.Second,
		LeaderPingTimeout: 2 * time.Second,
		LeaderGrace:       30 * time.Second,
	}
}

// Validate reports whether the options are usable: the URL parses and is
// safe to use (see CheckPostgresURL), and the numbers are in range.
func (o PostgresOptions) Validate() error {
	switch {
	case o.MaxConns < 1:
		return errors.New("store: MaxConns must be at least 1")
	case o.StatementTimeout <= 0:
		return errors.New("store: StatementTimeout must be positive")
	case o.ExpiryInterval < 0:
		return errors.New("store: ExpiryInterval must not be negative")
	case o.LeaderPing <= 0 || o.LeaderPingTimeout <= 0:
		return errors.New("store: LeaderPing and LeaderPingTimeout must be positive")
	case o.LeaderGrace < 0:
		return errors.New("store: LeaderGrace must not be negative")
	}
	_, err := parsePostgresURL(o.URL)
	return err
}

// CheckPostgresURL reports whether url is a PostgreSQL connection string
// posfleet accepts: it parses, and every host it names is a loopback
// address, a unix socket, or reached with TLS that cannot fall back to a
// plain connection (sslmode=require, verify-ca or verify-full). The error
// names the host, never the password.
func CheckPostgresURL(url string) error {
	_, err := parsePostgresURL(url)
	return err
}

func parsePostgresURL(url string) (*pgxpool.Config, error) {
	if url == "" {
		return nil, errors.New("store: a PostgreSQL database URL is required")
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgconn's parse errors do not repeat the password.
		return nil, fmt.Errorf("store: database URL: %w", err)
	}
	cc := cfg.ConnConfig
	hosts := []*pgconn.FallbackConfig{{Host: cc.Host, Port: cc.Port, TLSConfig: cc.TLSConfig}}
	hosts = append(hosts, cc.Fallbacks...)
	for _, h := range hosts {
		if h.TLSConfig == nil && !localHost(h.Host) {
			return nil, fmt.Errorf("store: refusing a plain (unencrypted) connection to PostgreSQL at %s: set sslmode=require, verify-ca or verify-full in the database URL; plain connections are allowed only to a loopback address or a unix socket", h.Host)
		}
	}
	return cfg, nil
}

// localHost reports whether host is a unix socket directory or a loopback
// address.
func localHost(host string) bool {
	if len(host) > 0 && host[0] == '/' {
		return true
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// OpenPostgres opens a database on PostgreSQL: it connects, applies the
// pending schema migrations (unless opts.NoMigrate) and refuses a schema
// newer than this binary's (ErrSchemaTooNew). Then it takes the database's
// writer role: one node at a time writes a database, and OpenPostgres
// waits, as a standby, while another holds it (until ctx ends). Every
// read-write transaction checks that the role is still this node's, so a
// node that lost it (see PostgresOptions.LeaderGrace) fails its writes
// with ErrFenced and writes nothing. The returned DB is used like
// one from Open; Badger-only features are absent: Watermark returns nil,
// no disk-space watch, and Backup and Restore return ErrUnsupported.
func OpenPostgres(ctx context.Context, opts PostgresOptions, logger *slog.Logger) (*DB, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, _ := parsePostgresURL(opts.URL)
	cfg.MaxConns = opts.MaxConns
	if err := migratePostgres(ctx, cfg.ConnConfig, !opts.NoMigrate, logger); err != nil {
		return nil, err
	}
	lead, err := takeWriterRole(ctx, cfg.ConnConfig, opts, logger)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		lead.close()
		return nil, fmt.Errorf("store: connect to PostgreSQL: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, opts.StatementTimeout)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		lead.close()
		return nil, fmt.Errorf("store: connect to PostgreSQL at %s: %w", cfg.ConnConfig.Host, err)
	}
	pg := &pgDB{pool: pool, opts: opts, logger: logger, stop: make(chan struct{}), leader: lead}
	if opts.ExpiryInterval > 0 {
		pg.wg.Add(1)
		go pg.expiryLoop()
	}
	return &DB{alt: pg, logger: logger}, nil
}

// backend is a storage engine serving a DB in place of the built-in Badger
// one. Its methods are called concurrently, from any goroutine; update and
// view each run their fn on the calling goroutine, with a Txn of their own.
type backend interface {
	// update runs fn in a read-write transaction and commits it (see
	// DB.UpdateReserved): durable when it returns nil.
	update(fn func(*Txn) error) error
	// view runs fn in a read-only snapshot.
	view(fn func(*Txn) error) error
	// writable reports whether the database can take writes now.
	writable() error
	// close releases the engine; later calls fail with ErrClosed.
	close() error
}

// txnBackend is a transaction of a backend. It is used by one goroutine at
// a time and not after its update or view returns.
type txnBackend interface {
	get(key []byte) ([]byte, error)
	expiry(key []byte) (time.Time, error)
	// set writes value at key, expiring after ttl when ttl > 0.
	set(key, value []byte, ttl time.Duration) error
	delete(key []byte) error
	// iterate visits the live keys with prefix from start (see
	// Txn.Iterate and IterateReverse); with keysOnly, values are nil.
	iterate(prefix, start []byte, reverse, keysOnly bool, fn func(key, value []byte, expires time.Time) error) error
}

// pgDB is the PostgreSQL backend: one table of keys and values
// (migrations/), read and written through a connection pool.
type pgDB struct {
	pool   *pgxpool.Pool
	leader *leader // the writer role; every read-write transaction checks its epoch
	opts   PostgresOptions
	logger *slog.Logger
	closed atomic.Bool
	stop   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
}

// ctx returns the context of one round trip.
func (d *pgDB) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d.opts.StatementTimeout)
}

func (d *pgDB) close() error {
	d.once.Do(func() {
		d.closed.Store(true)
		close(d.stop)
		d.wg.Wait()
		d.pool.Close()
		d.leader.close()
	})
	return nil
}

func (d *pgDB) writable() error {
	if d.closed.Load() {
		return ErrClosed
	}
	if err := d.leader.check(); err != nil {
		return err
	}
	ctx, cancel := d.ctx()
	defer cancel()
	if err := d.pool.Ping(ctx); err != nil {
		return fmt.Errorf("store: PostgreSQL unreachable: %w", err)
	}
	return nil
}

func (d *pgDB) update(fn func(*Txn) error) error {
	if d.closed.Load() {
		return ErrClosed
	}
	if err := d.leader.check(); err != nil {
		return err
	}
	tx := &pgTxn{db: d}
	defer tx.release()
	if err := fn(&Txn{alt: tx}); err != nil {
		return err
	}
	if d.opts.CommitFault != nil {
		if err := d.opts.CommitFault(); err != nil {
			return fmt.Errorf("%w: %w", ErrCommit, err)
		}
	}
	if err := tx.commit(); err != nil {
		return fmt.Errorf("%w: %w", ErrCommit, err)
	}
	return nil
}

func (d *pgDB) view(fn func(*Txn) error) error {
	if d.closed.Load() {
		return ErrClosed
	}
	tx := &pgTxn{db: d, readOnly: true}
	defer tx.release()
	return fn(&Txn{alt: tx})
}

// expiryBatch bounds the rows one statement of the expiry sweep deletes.
const expiryBatch = 1000

// expiryLoop deletes expired rows every ExpiryInterval until close.
func (d *pgDB) expiryLoop() {
	defer d.wg.Done()
	t := time.NewTicker(d.opts.ExpiryInterval)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
		if _, err := d.sweepExpired(); err != nil {
			d.logger.Warn("deleting expired rows failed", "err", err)
		}
	}
}

// sweepExpired deletes the rows whose expiry has passed, in batches, and
// returns how many it deleted.
func (d *pgDB) sweepExpired() (int64, error) {
	var total int64
	for {
		select {
		case <-d.stop:
			return total, nil
		default:
		}
		ctx, cancel := d.ctx()
		var tag pgconn.CommandTag
		b := &pgx.Batch{}
		b.Queue(pgFence, d.leader.epoch)
		b.Queue(`DELETE FROM posfleet_kv WHERE key IN
			(SELECT key FROM posfleet_kv WHERE expires_at <= $1 LIMIT $2)`, pgNow(), expiryBatch).Exec(func(ct pgconn.CommandTag) error {
			tag = ct
			return nil
		})
		err := d.pool.SendBatch(ctx, b).Close()
		cancel()
		if err != nil {
			return total, pgErr(err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < expiryBatch {
			return total, nil
		}
	}
}

// pgNow is the time reads compare expiries with: like Badger, a key is
// expired from the second its expiry names.
func pgNow() time.Time { return time.Unix(time.Now().Unix(), 0) }

// pgErr maps PostgreSQL's errors to the store's.
func pgErr(err error) error {
	var pe *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pgx.ErrNoRows):
		return ErrNotFound
	case errors.As(err, &pe) && pe.Code == pgSQLFenced:
		return fmt.Errorf("%w: %s", ErrFenced, pe.Message)
	case errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01"):
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return fmt.Errorf("store: postgres: %w", err)
}
