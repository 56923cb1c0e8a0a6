// Package autofailover runs a throwaway pg_auto_failover formation for
// tests: a monitor, a primary and a synchronous secondary, each a
// pg_autoctl keeper with its own PostgreSQL on a random port of 127.0.0.1,
// in a temporary directory, as the postgres OS user when the tests run as
// root (PostgreSQL refuses root). It is what docs/postgresql.md's "High
// availability" section describes, made small: the monitor's health checks
// run every second so that a failover takes seconds, not half a minute.
//
// Without pg_autoctl installed (Debian: postgresql-15-auto-failover) a test
// skips with a message saying so; under CI=true it fails instead.
//
//	f := autofailover.Start(t)
//	url := f.URL()          // multi-host, target_session_attrs=read-write
//	f.KillPrimary(t)         // SIGKILL the primary's keeper and PostgreSQL
//	f.WaitPrimary(t, 60*time.Second)
//
// Everything is stopped and removed when the test ends; if the test binary
// dies first, each keeper's process group is killed as its lifeline (a
// pipe from the test binary) closes.
package autofailover

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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/posfleet/posfleet/internal/pgtest"
)

// Database is the database the formation's nodes create for posfleet.
const Database = "posfleet"

// Node is one PostgreSQL node of the formation.
type Node struct {
	// Name is its pg_auto_failover node name (node1, node2).
	Name string
	// Port is its PostgreSQL port on 127.0.0.1.
	Port int
	// PGData is its data directory.
	PGData string
	// keeper is the shell that runs its pg_autoctl, leader of a process
	// group that holds its PostgreSQL too; closing lifeline, its stdin,
	// kills the group (see run).
	keeper   *exec.Cmd
	lifeline io.WriteCloser
}

// Formation is a running monitor, primary and secondary.
type Formation struct {
	dir     string
	bin     string // PostgreSQL's bin directory (pg_ctl)
	cred    *syscall.Credential
	env     []string
	monitor *Node
	// Nodes are the data nodes, node1 first (the first primary).
	Nodes []*Node

	mu     sync.Mutex // guards killed
	killed map[*Node]bool
}

// Start creates and runs the formation and waits until the primary
// replicates synchronously to the secondary. It skips t when pg_autoctl or
// PostgreSQL is missing (fails it under CI=true) and fails t when the
// formation does not come up within two minutes.
func Start(t testing.TB) *Formation {
	t.Helper()
	_, err := exec.LookPath("pg_autoctl")
	if err == nil {
		_, err = pgtest.BinDir()
	}
	if err != nil {
		msg := fmt.Sprintf("autofailover: pg_autoctl or PostgreSQL missing (%v): apt-get install postgresql-15-auto-failover", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	f, err := start()
	if f != nil {
		t.Cleanup(f.stop)
	}
	if err != nil {
		t.Fatalf("autofailover: %v%s", err, f.logTail())
	}
	return f
}

func start() (*Formation, error) {
	bin, _ := pgtest.BinDir()
	dir, err := os.MkdirTemp("", "pgha-")
	if err != nil {
		return nil, err
	}
	f := &Formation{dir: dir, bin: bin, killed: map[*Node]bool{}}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return f, errors.New("running as root and there is no postgres OS user to run PostgreSQL as")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return f, err
		}
		f.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return f, err
	}
	// pg_autoctl keeps its configuration and state under the XDG
	// directories: inside dir, so that they go with it.
	f.env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"XDG_DATA_HOME="+filepath.Join(dir, "share"), "XDG_RUNTIME_DIR="+filepath.Join(dir, "run"),
		"PATH="+bin+":"+os.Getenv("PATH"), "PG_AUTOCTL_DEBUG=")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	if f.monitor, err = f.newNode("monitor"); err != nil {
		return f, err
	}
	if err := f.run(f.monitor, "create", "monitor", "--pgdata", f.monitor.PGData, "--pgport", strconv.Itoa(f.monitor.Port),
		"--hostname", "127.0.0.1", "--auth", "trust", "--no-ssl", "--pgctl", filepath.Join(bin, "pg_ctl"), "--run"); err != nil {
		return f, err
	}
	// Health checks every second and a node unhealthy after two: a
	// failover in seconds (the defaults take about half a minute).
	if err := f.monitorExec(ctx,
		"ALTER SYSTEM SET pgautofailover.health_check_period = '1s'",
		"ALTER SYSTEM SET pgautofailover.health_check_timeout = '1s'",
		"ALTER SYSTEM SET pgautofailover.health_check_max_retries = 1",
		"ALTER SYSTEM SET pgautofailover.health_check_retry_delay = '500ms'",
		"ALTER SYSTEM SET pgautofailover.node_considered_unhealthy_timeout = '2s'",
		"ALTER SYSTEM SET pgautofailover.primary_demote_timeout = '3s'",
		"SELECT pg_reload_conf()"); err != nil {
		return f, fmt.Errorf("configure the monitor: %w", err)
	}
	monitorURL := fmt.Sprintf("postgres://autoctl_node@127.0.0.1:%d/pg_auto_failover?sslmode=disable", f.monitor.Port)
	for i, want := range []string{"single", "secondary"} {
		n, err := f.newNode(fmt.Sprintf("node%d", i+1))
		if err != nil {
			return f, err
		}
		f.Nodes = append(f.Nodes, n)
		if err := f.run(n, "create", "postgres", "--pgdata", n.PGData, "--pgport", strconv.Itoa(n.Port),
			"--hostname", "127.0.0.1", "--auth", "trust", "--no-ssl", "--monitor", monitorURL, "--name", n.Name,
			"--dbname", Database, "--pgctl", filepath.Join(bin, "pg_ctl"), "--run"); err != nil {
			return f, err
		}
		if err := f.waitState(ctx, n.Name, want); err != nil {
			return f, err
		}
	}
	if err := f.waitState(ctx, "node1", "primary"); err != nil {
		return f, err
	}
	return f, nil
}

// newNode picks a free port and a data directory for a node.
func (f *Formation) newNode(name string) (*Node, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return &Node{Name: name, Port: port, PGData: filepath.Join(f.dir, name)}, nil
}

// keeperScript runs pg_autoctl and, once its stdin closes (the test binary
// closed it or exited, however it exited), kills its whole process group:
// pg_autoctl, its PostgreSQL and every backend. Nothing outlives the test.
const keeperScript = `pg_autoctl "$@" </dev/null & cat >/dev/null; kill -KILL 0`

// run starts pg_autoctl for n in its own process group, as the postgres
// OS user when root, logging to <dir>/<name>.log.
func (f *Formation) run(n *Node, args ...string) error {
	log, err := os.Create(filepath.Join(f.dir, n.Name+".log"))
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command("sh", append([]string{"-c", keeperScript, "sh"}, args...)...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = f.dir, f.env, log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: f.cred, Setpgid: true}
	lifeline, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pg_autoctl %s: %w", strings.Join(args[:2], " "), err)
	}
	n.keeper, n.lifeline = cmd, lifeline
	go cmd.Wait() //nolint:errcheck // reaped; its end shows in the log
	return nil
}

// connect opens a connection to db on port as the postgres superuser.
func connect(ctx context.Context, port int, db string) (*pgx.Conn, error) {
	return pgx.Connect(ctx, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=2", port, db))
}

// monitorExec runs statements on the monitor once it accepts connections.
func (f *Formation) monitorExec(ctx context.Context, stmts ...string) error {
	var conn *pgx.Conn
	var err error
	for {
		if conn, err = connect(ctx, f.monitor.Port, "pg_auto_failover"); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("monitor not up: %w", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	defer conn.Close(context.Background())
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// State returns the reported state of each node, by name, as the monitor
// sees it.
func (f *Formation) State(ctx context.Context) (map[string]string, error) {
	conn, err := connect(ctx, f.monitor.Port, "pg_auto_failover")
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, "SELECT nodename, reportedstate::text FROM pgautofailover.node")
	if err != nil {
		return nil, err
	}
	states := map[string]string{}
	for rows.Next() {
		var name, state string
		if err := rows.Scan(&name, &state); err != nil {
			return nil, err
		}
		states[name] = state
	}
	return states, rows.Err()
}

// waitState waits until the monitor reports node in state. While a
// secondary is catching up, it asks the primary for checkpoints: the base
// backup waits for one, and a spread checkpoint takes most of a minute.
func (f *Formation) waitState(ctx context.Context, node, want string) error {
	var last map[string]string
	for {
		st, err := f.State(ctx)
		if err == nil {
			last = st
			if st[node] == want {
				return nil
			}
			if st[node] == "catchingup" || st[node] == "wait_standby" {
				if c, err := connect(ctx, f.Nodes[0].Port, Database); err == nil {
					_, _ = c.Exec(ctx, "CHECKPOINT")
					c.Close(context.Background())
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not %s (states %v, last error %v)", node, want, last, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// URL is the formation's connection string for posfleet, as
// `pg_autoctl show uri --formation default` prints it (every node, with
// target_session_attrs=read-write, so that a client finds whichever is the
// primary), with the user and no TLS, as these throwaway nodes have none.
func (f *Formation) URL() string {
	hosts := make([]string, len(f.Nodes))
	for i, n := range f.Nodes {
		hosts[i] = fmt.Sprintf("127.0.0.1:%d", n.Port)
	}
	q := url.Values{"target_session_attrs": {"read-write"}, "sslmode": {"disable"}, "connect_timeout": {"2"}}
	return fmt.Sprintf("postgres://postgres@%s/%s?%s", strings.Join(hosts, ","), Database, q.Encode())
}

// ShowURI returns what `pg_autoctl show uri --formation default` prints.
func (f *Formation) ShowURI(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, "pg_autoctl", "show", "uri", "--formation", "default", "--pgdata", f.monitor.PGData)
	cmd.Dir, cmd.Env = f.dir, f.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: f.cred}
	out, err := cmd.Output()
	return strings.TrimSpace(string(out)), err
}

// Primary returns the node that answers read-write through URL.
func (f *Formation) Primary(ctx context.Context) (*Node, error) {
	conn, err := pgx.Connect(ctx, f.URL())
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	var port int
	if err := conn.QueryRow(ctx, "SELECT inet_server_port()").Scan(&port); err != nil {
		return nil, err
	}
	for _, n := range f.Nodes {
		if n.Port == port {
			return n, nil
		}
	}
	return nil, fmt.Errorf("primary on unknown port %d", port)
}

// SynchronousStandbys returns the primary's synchronous_standby_names.
func (f *Formation) SynchronousStandbys(ctx context.Context) (string, error) {
	conn, err := pgx.Connect(ctx, f.URL())
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	var names string
	err = conn.QueryRow(ctx, "SHOW synchronous_standby_names").Scan(&names)
	return names, err
}

// KillPrimary kills the primary's keeper and its PostgreSQL with SIGKILL,
// as a machine that dies would leave them, and returns the node.
func (f *Formation) KillPrimary(t testing.TB) *Node {
	t.Helper()
	n, err := f.Primary(t.Context())
	if err != nil {
		t.Fatalf("autofailover: find the primary: %v", err)
	}
	f.kill(n)
	return n
}

// kill sends SIGKILL to n's process group: its keeper and its PostgreSQL
// with every backend.
func (f *Formation) kill(n *Node) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n.keeper == nil || f.killed[n] {
		return
	}
	f.killed[n] = true
	_ = syscall.Kill(-n.keeper.Process.Pid, syscall.SIGKILL)
	n.lifeline.Close()
	// A postmaster that left the group (none should) goes too.
	if pid, ok := postmasterPID(n.PGData); ok {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// postmasterPID reads the pid of pgdata's postmaster.
func postmasterPID(pgdata string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(pgdata, "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	return pid, err == nil && pid > 0
}

// WaitPrimary waits until a node answers read-write through URL and returns
// it, failing t after timeout.
func (f *Formation) WaitPrimary(t testing.TB, timeout time.Duration) *Node {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		n, err := f.Primary(ctx)
		cancel()
		if err == nil {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("autofailover: no primary within %v: %v%s", timeout, err, f.logTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stop kills every keeper and PostgreSQL of the formation and removes its
// directory.
func (f *Formation) stop() {
	for _, n := range append(append([]*Node{}, f.Nodes...), f.monitor) {
		if n != nil {
			f.kill(n)
		}
	}
	// Wait for the postmasters to go before removing their directories.
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range append(append([]*Node{}, f.Nodes...), f.monitor) {
		if n == nil {
			continue
		}
		for {
			pid, ok := postmasterPID(n.PGData)
			if !ok || syscall.Kill(pid, 0) != nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	os.RemoveAll(f.dir)
}

// logTail returns the end of each keeper's log, for a failure message.
func (f *Formation) logTail() string {
	if f == nil {
		return ""
	}
	var b strings.Builder
	for _, name := range []string{"monitor", "node1", "node2"} {
		log, err := os.ReadFile(filepath.Join(f.dir, name+".log"))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(log)), "\n")
		fmt.Fprintf(&b, "\n--- %s.log (end) ---\n%s", name, strings.Join(lines[max(0, len(lines)-15):], "\n"))
	}
	return b.String()
}
