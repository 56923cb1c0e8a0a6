package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrFenced is returned by every write to a PostgreSQL database after this
// node lost the writer role: another node took it over (and incremented
// the fencing epoch), or the lock connection was lost and not regained in
// time. Nothing of the failed transaction was written. The node must stop:
// its in-memory state may no longer match the database.
var ErrFenced = errors.New("store: another node has taken the writer role of the database")

// writerLock is the advisory lock of a database's writer role, keyed on
// the posfleet_writer table's OID so that each schema (each posfleet
// database) has its own: "posf" in the high 32 bits, the OID in the low.
const writerLock = `(x'706f7366'::bigint << 32) | 'posfleet_writer'::regclass::oid::bigint`

// pgSQLFenced is the SQLSTATE posfleet_fence raises (migrations/000002).
const pgSQLFenced = "PF001"

// leader holds the writer role of a database: a session-level advisory
// lock on a connection of its own, and the epoch this node wrote when it
// took the role. A goroutine pings the connection; when it is lost, the
// leader tries to take the lock back for PostgresOptions.LeaderGrace as
// long as the epoch is still its own, and else gives the role up for good:
// every later write fails with ErrFenced and OnLeaderLost is called.
type leader struct {
	cc     *pgx.ConnConfig
	opts   PostgresOptions
	logger *slog.Logger
	epoch  int64

	mu   sync.Mutex // guards conn and lost
	conn *pgx.Conn
	lost error // why the role was lost; nil while held

	stop chan struct{}
	done chan struct{}
}

// defaultNode names this process in posfleet_writer: host and process ID.
func defaultNode() string {
	host, _ := os.Hostname()
	return host + ":" + strconv.Itoa(os.Getpid())
}

// takeWriterRole waits until this node holds the writer role of the
// database (calling opts.OnStandby once if another node holds it), then
// increments the epoch. It returns when ctx ends first.
func takeWriterRole(ctx context.Context, cc *pgx.ConnConfig, opts PostgresOptions, log *slog.Logger) (*leader, error) {
	l := &leader{cc: cc, opts: opts, logger: log, stop: make(chan struct{}), done: make(chan struct{})}
	if l.opts.Node == "" {
		l.opts.Node = defaultNode()
	}
	standby := false
	for {
		conn, err := pgx.ConnectConfig(ctx, cc)
		if err == nil {
			var got bool
			if err = conn.QueryRow(ctx, "SELECT pg_try_advisory_lock("+writerLock+")").Scan(&got); err == nil && !got {
				if !standby {
					standby = true
					var node string
					var since time.Time
					_ = conn.QueryRow(ctx, "SELECT node, since FROM posfleet_writer WHERE id = 1").Scan(&node, &since)
					log.Info("another node holds the writer role of the database; waiting as a standby", "writer", node, "writer_since", since)
					if opts.OnStandby != nil {
						opts.OnStandby()
					}
				}
				// Blocks until the lock is free; a cancelled ctx cancels
				// the query.
				_, err = conn.Exec(ctx, "SELECT pg_advisory_lock("+writerLock+")")
			}
			if err == nil {
				err = conn.QueryRow(ctx, `INSERT INTO posfleet_writer (id, epoch, node, since) VALUES (1, 1, $1, now())
					ON CONFLICT (id) DO UPDATE SET epoch = posfleet_writer.epoch + 1, node = EXCLUDED.node, since = EXCLUDED.since
					RETURNING epoch`, l.opts.Node).Scan(&l.epoch)
			}
			if err == nil {
				l.conn = conn
				log.Info("took the writer role of the database", "epoch", l.epoch, "node", l.opts.Node, "was_standby", standby)
				go l.watch()
				return l, nil
			}
			conn.Close(context.Background())
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("store: waiting for the writer role: %w", ctx.Err())
		}
		log.Warn("taking the writer role failed; trying again", "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("store: waiting for the writer role: %w", ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// check returns ErrFenced (wrapped with the reason) once the role is lost.
func (l *leader) check() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

// watch pings the lock connection every LeaderPing until close or loss.
func (l *leader) watch() {
	defer close(l.done)
	t := time.NewTicker(l.opts.LeaderPing)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		err := l.ping()
		if err == nil {
			continue
		}
		l.logger.Warn("lost the connection holding the writer role; trying to take it back", "err", err, "grace", l.opts.LeaderGrace)
		if err = l.regain(); err != nil {
			l.give(err)
			return
		}
		l.logger.Info("took the writer role back", "epoch", l.epoch)
	}
}

// ping checks that the lock connection is alive and the epoch still ours.
func (l *leader) ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), l.opts.LeaderPingTimeout)
	defer cancel()
	l.mu.Lock()
	conn := l.conn
	l.mu.Unlock()
	var epoch int64
	if err := conn.QueryRow(ctx, "SELECT epoch FROM posfleet_writer WHERE id = 1").Scan(&epoch); err != nil {
		return err
	}
	if epoch != l.epoch {
		return l.taken(epoch)
	}
	return nil
}

// errTaken marks a loss that no retry can undo: the epoch moved on.
var errTaken = errors.New("the epoch moved on")

func (l *leader) taken(epoch int64) error {
	return fmt.Errorf("%w: epoch %d, this node's was %d", errTaken, epoch, l.epoch)
}

// regain reconnects and takes the lock again, for up to LeaderGrace, as
// long as the epoch is still this node's: then no other node has written
// since, and the role goes on as if never interrupted (a database failover
// to a synchronous standby, a dropped connection). It fails at once when
// the epoch has moved on.
func (l *leader) regain() error {
	l.mu.Lock()
	old := l.conn
	l.mu.Unlock()
	_ = old.Close(context.Background()) // releases the lock, if the session still held it
	deadline := time.Now().Add(l.opts.LeaderGrace)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-l.stop:
			return ErrClosed
		default:
		}
		conn, err := l.tryRegain(time.Until(deadline))
		if err == nil {
			l.mu.Lock()
			l.conn = conn
			l.mu.Unlock()
			return nil
		}
		if errors.Is(err, errTaken) {
			return err
		}
		last = err
		select {
		case <-l.stop:
			return ErrClosed
		case <-time.After(min(l.opts.LeaderPing, time.Until(deadline))):
		}
	}
	return fmt.Errorf("not regained within %v: %w", l.opts.LeaderGrace, last)
}

// tryRegain makes one attempt of regain.
func (l *leader) tryRegain(left time.Duration) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), min(left, l.opts.LeaderPingTimeout))
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, l.cc)
	if err != nil {
		return nil, err
	}
	var got bool
	var epoch int64
	err = conn.QueryRow(ctx, "SELECT pg_try_advisory_lock("+writerLock+"), (SELECT epoch FROM posfleet_writer WHERE id = 1)").Scan(&got, &epoch)
	switch {
	case err != nil:
	case epoch != l.epoch:
		err = l.taken(epoch)
	case !got:
		err = errors.New("another session holds the writer lock")
	default:
		return conn, nil
	}
	conn.Close(context.Background())
	return nil, err
}

// give gives the role up for good and tells OnLeaderLost.
func (l *leader) give(why error) {
	err := fmt.Errorf("%w (%w)", ErrFenced, why)
	l.mu.Lock()
	l.lost = err
	l.mu.Unlock()
	l.logger.Error("lost the writer role of the database; writes are refused", "err", why)
	if l.opts.OnLeaderLost != nil {
		l.opts.OnLeaderLost(err)
	}
}

// close stops the watch and closes the lock connection, which releases
// the role to a standby.
func (l *leader) close() {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost == nil {
		l.lost = ErrClosed
	}
	_ = l.conn.Close(context.Background())
}
