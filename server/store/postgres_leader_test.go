package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/posfleet/posfleet/internal/pgtest"
	"github.com/posfleet/posfleet/server/store"
)

// leaderOptions are quick-reacting options for the writer-role tests.
func leaderOptions(url, node string) store.PostgresOptions {
	o := store.DefaultPostgresOptions(url)
	o.MaxConns = 4
	o.Node = node
	o.LeaderPing = 100 * time.Millisecond
	o.LeaderPingTimeout = time.Second
	o.LeaderGrace = 3 * time.Second
	return o
}

// openAsync opens a database in the background, reporting standby.
type openResult struct {
	db  *store.DB
	err error
}

func openAsync(t *testing.T, opts store.PostgresOptions) (standby <-chan struct{}, opened <-chan openResult) {
	t.Helper()
	sb := make(chan struct{}, 1)
	res := make(chan openResult, 1)
	opts.OnStandby = func() { sb <- struct{}{} }
	go func() {
		db, err := store.OpenPostgres(t.Context(), opts, nil)
		res <- openResult{db, err}
	}()
	t.Cleanup(func() {
		select {
		case r := <-res:
			if r.db != nil {
				r.db.Close()
			}
		default:
		}
	})
	return sb, res
}

func put(db *store.DB, key, value string) error {
	return db.Update(func(tx *store.Txn) error { return tx.Set([]byte(key), []byte(value)) })
}

func get(db *store.DB, key string) (string, error) {
	var v []byte
	err := db.View(func(tx *store.Txn) error {
		var err error
		v, err = tx.Get([]byte(key))
		return err
	})
	return string(v), err
}

// writerLockHolders selects the backends holding the writer lock of the
// current database.
const writerLockHolders = `SELECT pid FROM pg_locks
	WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
	AND objid = 'posfleet_writer'::regclass::oid AND objsubid = 1`

// terminateWriterLock kills the backend holding the writer lock of the
// database and returns its process ID.
func terminateWriterLock(t *testing.T, url string) int32 {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var pid int32
	var n int
	err = conn.QueryRow(t.Context(), `SELECT min(pid), count(pg_terminate_backend(pid)) FROM (`+writerLockHolders+`) AS holders`).Scan(&pid, &n)
	if err != nil || n != 1 {
		t.Fatalf("terminating the writer lock's backend: got %d terminated, %v; want 1", n, err)
	}
	return pid
}

// waitWriterLockRetaken waits until a backend other than old holds the
// writer lock.
func waitWriterLockRetaken(t *testing.T, url string, old int32) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var pid int32
		err := conn.QueryRow(t.Context(), writerLockHolders).Scan(&pid)
		if err == nil && pid != old {
			return
		}
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer lock was not taken again within 30 s of its backend's end")
		}
	}
}

func writer(t *testing.T, url string) (epoch int64, node string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(t.Context(), "SELECT epoch, node FROM posfleet_writer").Scan(&epoch, &node); err != nil {
		t.Fatal(err)
	}
	return epoch, node
}

// A second node on a database waits as a standby until the first closes,
// then takes the role with the next epoch and sees the first's writes.
func TestPostgresStandbyWaits(t *testing.T) {
	url := pgtest.NewDatabase(t)
	a, err := store.OpenPostgres(t.Context(), leaderOptions(url, "a"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if epoch, node := writer(t, url); epoch != 1 || node != "a" {
		t.Fatalf("writer after the first open: got epoch %d node %q, want 1 a", epoch, node)
	}
	if err := put(a, "k", "from a"); err != nil {
		t.Fatal(err)
	}
	standby, opened := openAsync(t, leaderOptions(url, "b"))
	select {
	case <-standby:
	case r := <-opened:
		t.Fatalf("second open returned (%v) while the first holds the role, want it waiting", r.err)
	case <-time.After(10 * time.Second):
		t.Fatal("second open neither waits as a standby nor returns")
	}
	select {
	case r := <-opened:
		t.Fatalf("second open returned (%v) while the first holds the role", r.err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := put(a, "k2", "still a"); err != nil {
		t.Fatalf("the writer's write while a standby waits: %v", err)
	}

	start := time.Now()
	a.Close()
	var b *store.DB
	select {
	case r := <-opened:
		if r.err != nil {
			t.Fatal(r.err)
		}
		b = r.db
	case <-time.After(10 * time.Second):
		t.Fatal("the standby did not take the role within 10 s of the writer closing")
	}
	defer b.Close()
	t.Logf("standby took over %v after the writer closed", time.Since(start))
	if epoch, node := writer(t, url); epoch != 2 || node != "b" {
		t.Errorf("writer after the takeover: got epoch %d node %q, want 2 b", epoch, node)
	}
	for k, want := range map[string]string{"k": "from a", "k2": "still a"} {
		if got, err := get(b, k); err != nil || got != want {
			t.Errorf("the new writer reads %s: got %q, %v; want %q", k, got, err, want)
		}
	}
	if err := put(b, "k3", "from b"); err != nil {
		t.Errorf("the new writer's write: %v", err)
	}
}

// A writer whose lock connection is killed while a standby waits is
// fenced: the standby takes over, and no write of the old writer commits
// after that, whether it only writes or reads first; the old writer is
// told it lost the role. A transaction the old writer had begun before the
// takeover commits before the new writer starts, and the new one sees it.
func TestPostgresFencing(t *testing.T) {
	url := pgtest.NewDatabase(t)
	lost := make(chan error, 1)
	aOpts := leaderOptions(url, "a")
	aOpts.OnLeaderLost = func(err error) { lost <- err }
	a, err := store.OpenPostgres(t.Context(), aOpts, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	standby, opened := openAsync(t, leaderOptions(url, "b"))
	<-standby

	// In flight across the takeover: begun (fenced) before the lock is
	// lost, written after.
	inFlight := a.Update(func(tx *store.Txn) error {
		if _, err := tx.Get([]byte("none")); !errors.Is(err, store.ErrNotFound) {
			return err
		}
		terminateWriterLock(t, url)
		time.Sleep(300 * time.Millisecond) // the standby has the lock and waits to bump the epoch
		return tx.Set([]byte("in-flight"), []byte("a"))
	})
	if inFlight != nil {
		t.Fatalf("a transaction begun before the takeover: %v, want it committed", inFlight)
	}
	var b *store.DB
	select {
	case r := <-opened:
		if r.err != nil {
			t.Fatal(r.err)
		}
		b = r.db
	case <-time.After(10 * time.Second):
		t.Fatal("the standby did not take over within 10 s of the writer's lock connection dying")
	}
	defer b.Close()
	if got, err := get(b, "in-flight"); err != nil || got != "a" {
		t.Errorf("the new writer reads the old one's last commit: got %q, %v; want %q", got, err, "a")
	}

	writes := map[string]func() error{
		"write only": func() error { return put(a, "stale-1", "a") },
		"read, then write": func() error {
			return a.Update(func(tx *store.Txn) error {
				if _, err := tx.Get([]byte("in-flight")); err != nil {
					return err
				}
				return tx.Set([]byte("stale-2"), []byte("a"))
			})
		},
	}
	for name, write := range writes {
		if err := write(); !errors.Is(err, store.ErrFenced) {
			t.Errorf("%s by the old writer after the takeover: got %v, want ErrFenced", name, err)
		}
	}
	for _, k := range []string{"stale-1", "stale-2"} {
		if got, err := get(b, k); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the old writer's fenced write %s is visible: got %q, %v; want ErrNotFound", k, got, err)
		}
	}
	select {
	case err := <-lost:
		if !errors.Is(err, store.ErrFenced) {
			t.Errorf("OnLeaderLost: got %v, want ErrFenced", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the old writer was not told within 5 s that it lost the role")
	}
	if err := a.Writable(); !errors.Is(err, store.ErrFenced) {
		t.Errorf("Writable of the old writer: got %v, want ErrFenced", err)
	}
	if err := put(b, "fresh", "b"); err != nil {
		t.Errorf("the new writer's write: %v", err)
	}
}

// A writer whose lock connection dies with no standby waiting takes the
// lock back under the same epoch and goes on writing (a database failover,
// a dropped connection); a standby that arrives later waits.
func TestPostgresWriterRegainsLock(t *testing.T) {
	url := pgtest.NewDatabase(t)
	lost := make(chan error, 1)
	opts := leaderOptions(url, "a")
	opts.OnLeaderLost = func(err error) { lost <- err }
	a, err := store.OpenPostgres(t.Context(), opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// The writer pings (100 ms), reconnects and takes the lock back.
	waitWriterLockRetaken(t, url, terminateWriterLock(t, url))
	if err := put(a, "k", "a"); err != nil {
		t.Errorf("write after the lock connection died: %v", err)
	}
	if epoch, node := writer(t, url); epoch != 1 || node != "a" {
		t.Errorf("writer: got epoch %d node %q, want 1 a", epoch, node)
	}
	standby, opened := openAsync(t, leaderOptions(url, "b"))
	select {
	case <-standby:
	case r := <-opened:
		t.Fatalf("a second node opened (%v) although the writer took its lock back", r.err)
	case <-time.After(10 * time.Second):
		t.Fatal("the second node neither waits nor opens")
	}
	select {
	case err := <-lost:
		t.Errorf("OnLeaderLost(%v) although the lock was taken back", err)
	default:
	}
}
