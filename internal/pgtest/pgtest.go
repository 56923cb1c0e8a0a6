// Package pgtest runs a throwaway PostgreSQL cluster for tests and gives
// each test a fresh, empty place in it.
//
// The cluster is started once per test binary, on first use: initdb into a
// temporary directory, then postgres on a random free port of 127.0.0.1
// and on a unix socket inside that directory (as the postgres OS user when
// the tests run as root, since PostgreSQL refuses to run as root). It is
// stopped and its directory removed when the test binary's TestMain calls
// Main, and in any case when the test binary exits, however it exits: a
// small supervisor process holds the cluster and tears it down as soon as
// the pipe from the test binary closes. Nothing is left running.
//
// Each test gets its own schema (NewDatabase): a CREATE SCHEMA costs one
// catalog row where a CREATE DATABASE copies some megabytes and checkpoints,
// and the URL it returns selects the schema with search_path, so everything
// posfleet creates lands there.
//
// Without PostgreSQL installed, tests that need it skip with a message
// saying what to install; under CI=true they fail instead.
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestX(t *testing.T) {
//		url := pgtest.NewDatabase(t)
//		...
//	}
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is a running PostgreSQL cluster.
type Cluster struct {
	dir  string // temporary directory: data, socket, log
	port int
	// lifeline is the supervisor's stdin: closing it stops the cluster.
	lifeline io.WriteCloser
	super    *exec.Cmd

	mu    sync.Mutex // guards admin
	admin *pgx.Conn
}

var (
	startOnce sync.Once
	cluster   *Cluster
	startErr  error
	schemas   atomic.Int64
)

// Main runs the tests and then stops the cluster if one was started; it
// does not return. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if cluster != nil {
		cluster.Stop()
	}
	os.Exit(code)
}

// require returns the test binary's cluster, starting it on first use. It
// skips t when PostgreSQL is not installed (fails it under CI=true) and
// fails t when the cluster does not start.
func require(t testing.TB) *Cluster {
	t.Helper()
	startOnce.Do(func() { cluster, startErr = start() })
	var missing *missingError
	switch {
	case errors.As(startErr, &missing) && os.Getenv("CI") != "true":
		t.Skipf("pgtest: %v", startErr)
	case startErr != nil:
		t.Fatalf("pgtest: %v", startErr)
	}
	return cluster
}

// Skip skips t, or fails it under CI=true, when PostgreSQL is not
// installed; it starts the cluster when it is.
func Skip(t testing.TB) {
	t.Helper()
	require(t)
}

// NewDatabase returns the URL of a new, empty schema in the cluster, which
// is dropped when t ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	c := require(t)
	name := fmt.Sprintf("t%d", schemas.Add(1))
	if err := c.exec("CREATE SCHEMA " + name); err != nil {
		t.Fatalf("pgtest: create schema: %v", err)
	}
	t.Cleanup(func() {
		if err := c.exec("DROP SCHEMA " + name + " CASCADE"); err != nil {
			t.Errorf("pgtest: drop schema %s: %v", name, err)
		}
	})
	return c.URL(name)
}

var validName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Database returns the URL of the schema called name (lower-case letters,
// digits and underscores), creating it empty if it does not exist yet. It
// lives as long as the cluster: tests that reopen their data by name get
// it back.
func Database(t testing.TB, name string) string {
	t.Helper()
	require(t)
	url, err := DatabaseURL(name)
	if err != nil {
		t.Fatal(err)
	}
	return url
}

// DatabaseURL is Database for code that has no testing.TB at hand (a hook
// deep in the code under test): it returns an error where Database would
// skip or fail the test.
func DatabaseURL(name string) (string, error) {
	startOnce.Do(func() { cluster, startErr = start() })
	if startErr != nil {
		return "", fmt.Errorf("pgtest: %w", startErr)
	}
	if !validName.MatchString(name) {
		return "", fmt.Errorf("pgtest: schema name %q: want lower-case letters, digits and underscores", name)
	}
	if err := cluster.exec("CREATE SCHEMA IF NOT EXISTS " + name); err != nil {
		return "", fmt.Errorf("pgtest: create schema: %w", err)
	}
	return cluster.URL(name), nil
}

// URL returns the URL of the schema called name over TCP on 127.0.0.1 as
// the superuser postgres; "" selects the default schema.
func (c *Cluster) URL(schema string) string {
	q := url.Values{"sslmode": {"disable"}}
	if schema != "" {
		q.Set("search_path", schema)
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?%s", c.port, q.Encode())
}

// Port is the cluster's TCP port on 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// exec runs sql on the cluster as the superuser.
func (c *Cluster) exec(sql string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := c.admin.Exec(ctx, sql)
	return err
}

// Stop stops the cluster and removes its directory.
func (c *Cluster) Stop() {
	c.mu.Lock()
	if c.admin != nil {
		c.admin.Close(context.Background())
		c.admin = nil
	}
	c.mu.Unlock()
	c.lifeline.Close()
	_ = c.super.Wait()
}

// missingError says that PostgreSQL is not installed.
type missingError struct{ msg string }

func (e *missingError) Error() string { return e.msg }

// BinDir returns the directory of PostgreSQL's server programs: pg_config
// --bindir, or the newest /usr/lib/postgresql/*/bin.
func BinDir() (string, error) {
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return pgMajor(b) - pgMajor(a) })
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	return "", &missingError{"PostgreSQL is not installed (no pg_config --bindir, no /usr/lib/postgresql/*/bin/initdb): apt-get install postgresql"}
}

func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// supervise runs the server given as arguments after the directory, and
// when its stdin closes (Stop, or the test binary gone) stops it at once
// and removes the directory.
const supervise = `dir=$1; shift
"$@" >>"$dir/postgres.log" 2>&1 &
pid=$!
cat >/dev/null
kill -QUIT "$pid" 2>/dev/null
wait "$pid"
rm -rf "$dir"
`

// start initializes and starts a cluster. The port is free when chosen but
// not held until postgres binds it, so another process may take it in
// between (any listen on port 0 could draw it): then the cluster is made
// again, on another port.
func start() (*Cluster, error) {
	for attempt := 1; ; attempt++ {
		c, err := initAndLaunch()
		if !errors.Is(err, errPortTaken) || attempt == 5 {
			return c, err
		}
	}
}

// errPortTaken says that postgres could not listen on the port chosen for
// it.
var errPortTaken = errors.New("pgtest: the port chosen was taken before postgres bound it")

// initAndLaunch initializes a cluster in a new directory and starts it.
func initAndLaunch() (*Cluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	var asPostgres []string // command prefix that drops root
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			os.RemoveAll(dir)
			return nil, &missingError{"running as root and there is no postgres OS user to run PostgreSQL as (PostgreSQL refuses to run as root): apt-get install postgresql creates it"}
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		asPostgres = []string{"setpriv", "--reuid=" + u.Uid, "--regid=" + u.Gid, "--clear-groups", "--"}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	return launch(dir, bin, asPostgres)
}

// launch starts postgres on a free port under the supervisor and waits
// until it accepts connections. If it does not, the supervisor stops it and
// removes dir.
func launch(dir, bin string, asPostgres []string) (*Cluster, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	args := append([]string{"-c", supervise, "sh", dir}, asPostgres...)
	args = append(args, filepath.Join(bin, "postgres"), "-D", filepath.Join(dir, "data"),
		"-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1",
		// Throwaway data: no fsync (tests here do not test PostgreSQL's
		// durability).
		"-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off",
		"-c", "max_connections=400", "-c", "shared_buffers=32MB")
	super := exec.Command("sh", args...)
	lifeline, err := super.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := super.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c := &Cluster{dir: dir, port: port, lifeline: lifeline, super: super}
	deadline := time.Now().Add(90 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable", dir, port))
		cancel()
		if err == nil {
			c.admin = conn
			return c, nil
		}
		log, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
		if failed(string(log)) || time.Now().After(deadline) {
			c.Stop()
			if strings.Contains(string(log), "Address already in use") {
				err = fmt.Errorf("%w: %v", errPortTaken, err)
			}
			return nil, fmt.Errorf("postgres did not start: %w\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// failed reports whether the server's log says it failed to start: a
// FATAL or PANIC line other than the refusals of connections made while it
// starts up.
func failed(log string) bool {
	for line := range strings.Lines(log) {
		if (strings.Contains(line, "FATAL:") || strings.Contains(line, "PANIC:")) &&
			!strings.Contains(line, "the database system is starting up") {
			return true
		}
	}
	return false
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
