package store

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pgTxn is a transaction on PostgreSQL. Writes are buffered and sent in one
// round trip (an upsert of every set and a delete of every deleted key)
// before the next range read and at commit; point reads are answered from
// the buffer when it holds the key. So reads see the transaction's own
// writes, as on Badger.
//
// The transaction begins on the database at its first read, in the same
// round trip: REPEATABLE READ (READ ONLY for a view), a snapshot like
// Badger's. An update that never reads commits its writes in one round trip
// as an implicit transaction. Conflicts differ from Badger's in one way: an
// update fails (ErrConflict) when a row it writes changed since its snapshot,
// not when a key it only read did.
type pgTxn struct {
	db       *pgDB
	readOnly bool
	conn     *pgxpool.Conn // held from the first read to the end
	begun    bool          // BEGIN has been sent on conn
	// pending holds the buffered writes in order; index maps a key to its
	// entry, so that a key written twice is sent once, as last written.
	pending []pgWrite
	index   map[string]int
}

// pgWrite is one buffered write.
type pgWrite struct {
	key, value []byte
	expires    pgtype.Timestamptz // Valid when the key expires
	del        bool
}

const (
	pgUpsert = `INSERT INTO posfleet_kv (key, value, expires_at)
		SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::timestamptz[])
		ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at`
	pgDelete = `DELETE FROM posfleet_kv WHERE key = ANY($1::bytea[])`
	pgGet    = `SELECT value FROM posfleet_kv WHERE key = $1 AND (expires_at IS NULL OR expires_at > $2)`
	// pgFence fails a read-write transaction (SQLSTATE PF001) unless the
	// epoch it names is still the writer's, and holds the writer row
	// FOR SHARE to its end: a takeover waits for it (migrations/000002).
	pgFence  = `SELECT posfleet_fence($1)`
	pgExpiry = `SELECT expires_at FROM posfleet_kv WHERE key = $1 AND (expires_at IS NULL OR expires_at > $2)`
)

var errReadOnlyTxn = errors.New("store: no sets or deletes are allowed in a read-only transaction")

func (tx *pgTxn) set(key, value []byte, ttl time.Duration) error {
	w := pgWrite{key: key, value: value}
	if ttl > 0 {
		w.expires = pgtype.Timestamptz{Time: time.Unix(time.Now().Add(ttl).Unix(), 0), Valid: true}
	}
	return tx.write(w)
}

func (tx *pgTxn) delete(key []byte) error {
	return tx.write(pgWrite{key: key, del: true})
}

func (tx *pgTxn) write(w pgWrite) error {
	switch {
	case tx.readOnly:
		return errReadOnlyTxn
	case len(w.key) == 0:
		return errors.New("store: key is empty")
	}
	if value := w.value; !w.del && value == nil {
		w.value = []byte{} // NOT NULL: an empty value, as Badger stores it
	}
	if i, ok := tx.index[string(w.key)]; ok {
		tx.pending[i] = w
		return nil
	}
	if tx.index == nil {
		tx.index = make(map[string]int)
	}
	tx.index[string(w.key)] = len(tx.pending)
	tx.pending = append(tx.pending, w)
	return nil
}

// buffered returns the buffered write of key, if any.
func (tx *pgTxn) buffered(key []byte) (pgWrite, bool) {
	i, ok := tx.index[string(key)]
	if !ok {
		return pgWrite{}, false
	}
	return tx.pending[i], true
}

// live reports whether a buffered write leaves the key readable now.
func (w pgWrite) live() bool {
	return !w.del && (!w.expires.Valid || w.expires.Time.After(pgNow()))
}

func (tx *pgTxn) get(key []byte) ([]byte, error) {
	if w, ok := tx.buffered(key); ok {
		if !w.live() {
			return nil, ErrNotFound
		}
		return bytes.Clone(w.value), nil
	}
	var v []byte
	err := tx.roundTrip(false, func(b *pgx.Batch) {
		b.Queue(pgGet, key, pgNow()).QueryRow(func(r pgx.Row) error { return r.Scan(&v) })
	})
	if v == nil && err == nil {
		v = []byte{}
	}
	return v, err
}

func (tx *pgTxn) expiry(key []byte) (time.Time, error) {
	if w, ok := tx.buffered(key); ok {
		if !w.live() {
			return time.Time{}, ErrNotFound
		}
		return expiresAt(w.expires), nil
	}
	var at pgtype.Timestamptz
	err := tx.roundTrip(false, func(b *pgx.Batch) {
		b.Queue(pgExpiry, key, pgNow()).QueryRow(func(r pgx.Row) error { return r.Scan(&at) })
	})
	return expiresAt(at), err
}

// expiresAt returns the expiry as Txn.Expiry does: the zero time for
// none, in the local time zone like Badger's.
func expiresAt(at pgtype.Timestamptz) time.Time {
	if !at.Valid {
		return time.Time{}
	}
	return time.Unix(at.Time.Unix(), 0)
}

// roundTrip sends, in one batch: BEGIN if the transaction has not begun,
// the buffered writes when flush is set (they are cleared), and what queue
// adds. Its results are read by the callbacks queue set on its queries.
func (tx *pgTxn) roundTrip(flush bool, queue func(b *pgx.Batch)) error {
	if tx.db.closed.Load() {
		return ErrClosed
	}
	ctx, cancel := tx.db.ctx()
	defer cancel()
	if tx.conn == nil {
		conn, err := tx.db.pool.Acquire(ctx)
		if err != nil {
			return pgErr(err)
		}
		tx.conn = conn
	}
	b := &pgx.Batch{}
	if !tx.begun {
		if tx.readOnly {
			b.Queue("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
		} else {
			b.Queue("BEGIN ISOLATION LEVEL REPEATABLE READ")
			b.Queue(pgFence, tx.db.leader.epoch)
		}
		tx.begun = true
	}
	if flush {
		tx.queueWrites(b)
	}
	queue(b)
	return pgErr(tx.conn.SendBatch(ctx, b).Close())
}

// queueWrites adds the buffered writes to b and clears the buffer.
func (tx *pgTxn) queueWrites(b *pgx.Batch) {
	if len(tx.pending) == 0 {
		return
	}
	var keys, values, dels [][]byte
	var exps []pgtype.Timestamptz
	for _, w := range tx.pending {
		if w.del {
			dels = append(dels, w.key)
			continue
		}
		keys = append(keys, w.key)
		values = append(values, w.value)
		exps = append(exps, w.expires)
	}
	if len(keys) > 0 {
		b.Queue(pgUpsert, keys, values, exps)
	}
	if len(dels) > 0 {
		b.Queue(pgDelete, dels)
	}
	tx.pending = tx.pending[:0]
	clear(tx.index)
}

// commit writes the buffered writes and commits. An update that has not
// read sends its writes alone, as one implicit transaction.
func (tx *pgTxn) commit() error {
	if !tx.begun {
		if len(tx.pending) == 0 {
			return nil
		}
		ctx, cancel := tx.db.ctx()
		defer cancel()
		b := &pgx.Batch{}
		b.Queue(pgFence, tx.db.leader.epoch)
		tx.queueWrites(b)
		return pgErr(tx.db.pool.SendBatch(ctx, b).Close())
	}
	var tag string
	err := tx.roundTrip(true, func(b *pgx.Batch) {
		b.Queue("COMMIT").Exec(func(ct pgconn.CommandTag) error {
			tag = ct.String()
			return nil
		})
	})
	if err != nil {
		return err
	}
	tx.begun = false
	if tag != "COMMIT" {
		// A transaction that failed earlier (an error fn did not return)
		// is rolled back by COMMIT.
		return fmt.Errorf("store: postgres: the transaction was rolled back (%s) after an earlier error", tag)
	}
	return nil
}

// release ends the transaction if it is still open and gives back its
// connection. A connection left inside a transaction is closed by the pool.
func (tx *pgTxn) release() {
	if tx.conn == nil {
		return
	}
	if tx.begun {
		ctx, cancel := tx.db.ctx()
		_, _ = tx.conn.Exec(ctx, "ROLLBACK")
		cancel()
	}
	tx.conn.Release()
	tx.conn = nil
}

// Iteration fetches rows in chunks: a small first one, as many iterations
// stop after a few keys, then larger ones. A chunk is read completely
// before fn sees its rows, so fn may use the transaction.
const (
	pgFirstChunk = 32
	pgChunk      = 256
)

// pgBound is one end of a key range; nil key: unbounded.
type pgBound struct {
	key       []byte
	inclusive bool
}

func (tx *pgTxn) iterate(prefix, start []byte, reverse, keysOnly bool, fn func(key, value []byte, expires time.Time) error) error {
	lo := pgBound{key: prefix, inclusive: true}
	hi := pgBound{key: prefixSuccessor(prefix)}
	if start != nil {
		switch {
		case !reverse && bytes.Compare(start, prefix) > 0:
			lo.key = start
		case reverse && (hi.key == nil || bytes.Compare(start, hi.key) < 0):
			hi = pgBound{key: start, inclusive: true}
		}
	}
	flush := true
	for limit := pgFirstChunk; ; limit = pgChunk {
		rows, err := tx.fetch(flush, lo, hi, reverse, keysOnly, limit)
		if err != nil {
			return err
		}
		flush = false // writes fn makes are not visited, as on Badger
		for _, r := range rows {
			err := fn(r.key, r.value, expiresAt(r.expires))
			if errors.Is(err, ErrStop) {
				return nil
			}
			if err != nil {
				return err
			}
		}
		if len(rows) < limit {
			return nil
		}
		last := rows[len(rows)-1].key
		if reverse {
			hi = pgBound{key: last}
		} else {
			lo = pgBound{key: last}
		}
	}
}

// pgRow is one row read by an iteration.
type pgRow struct {
	key, value []byte
	expires    pgtype.Timestamptz
}

// fetch reads up to limit live rows between lo and hi, in key order
// (descending when reverse).
func (tx *pgTxn) fetch(flush bool, lo, hi pgBound, reverse, keysOnly bool, limit int) ([]pgRow, error) {
	var q strings.Builder
	q.WriteString("SELECT key, ")
	if keysOnly {
		q.WriteString("NULL::bytea, NULL::timestamptz")
	} else {
		q.WriteString("value, expires_at")
	}
	q.WriteString(" FROM posfleet_kv WHERE (expires_at IS NULL OR expires_at > $1)")
	args := []any{pgNow(), limit}
	bound := func(b pgBound, op string) {
		if b.key == nil {
			return
		}
		if b.inclusive {
			op += "="
		}
		args = append(args, b.key)
		q.WriteString(" AND key " + op + " $" + strconv.Itoa(len(args)))
	}
	bound(lo, ">")
	bound(hi, "<")
	q.WriteString(" ORDER BY key")
	if reverse {
		q.WriteString(" DESC")
	}
	q.WriteString(" LIMIT $2")
	var rows []pgRow
	err := tx.roundTrip(flush, func(b *pgx.Batch) {
		b.Queue(q.String(), args...).Query(func(rs pgx.Rows) error {
			for rs.Next() {
				var r pgRow
				if err := rs.Scan(&r.key, &r.value, &r.expires); err != nil {
					return err
				}
				if r.key == nil {
					r.key = []byte{}
				}
				if r.value == nil && !keysOnly {
					r.value = []byte{}
				}
				rows = append(rows, r)
			}
			return rs.Err()
		})
	})
	return rows, err
}
