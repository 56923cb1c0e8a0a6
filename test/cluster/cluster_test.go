package cluster_test

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/posfleet/posfleet/internal/pgtest"
	"github.com/posfleet/posfleet/test/internal/workload"
)

// node is one running posfleet serve of the cluster.
type node struct {
	name string
	cmd  *exec.Cmd
	addr string
	// metrics is the base URL of its metrics listener (/readyz), once
	// logged.
	metrics atomic.Pointer[string]
	// standby and serving close when the node logs that it answers as a
	// standby, and that it serves.
	standby, serving chan struct{}
	exited           chan struct{}
	err              error // Wait's result, once exited

	mu   sync.Mutex // guards tail
	tail []string   // the last lines of its log
}

var (
	reStandby = regexp.MustCompile(`msg="answering as a standby" addr=(\S+)`)
	reServing = regexp.MustCompile(`msg=serving addr=(\S+)`)
	reMetrics = regexp.MustCompile(`metrics_url=(\S+)/metrics`)
)

// startNode runs bin serve on the database at url and waits until it
// serves or answers as a standby.
func startNode(t *testing.T, bin, name, url, tokenFile string) *node {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--store", "postgres", "--database-url", url,
		"--data-dir", filepath.Join(t.TempDir(), name), "--admin-token-file", tokenFile,
		"--listen", "127.0.0.1:0", "--console-listen", "off", "--metrics-listen", "127.0.0.1:0", "--log-level", "info", "--quota-scale", "0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &node{name: name, cmd: cmd, standby: make(chan struct{}), serving: make(chan struct{}), exited: make(chan struct{})}
	t.Cleanup(n.kill)
	addrc := make(chan string, 2)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			n.mu.Lock()
			n.tail = append(n.tail, line)
			if len(n.tail) > 30 {
				n.tail = n.tail[1:]
			}
			n.mu.Unlock()
			if m := reMetrics.FindStringSubmatch(line); m != nil {
				n.metrics.Store(&m[1])
			}
			if m := reStandby.FindStringSubmatch(line); m != nil {
				close(n.standby)
				addrc <- m[1]
			}
			if m := reServing.FindStringSubmatch(line); m != nil {
				close(n.serving)
				addrc <- m[1]
			}
		}
	}()
	go func() {
		<-scanned
		n.err = cmd.Wait()
		close(n.exited)
	}()
	select {
	case n.addr = <-addrc:
	case <-n.exited:
		t.Fatalf("node %s exited before answering: %v\n%s", name, n.err, n.log())
	case <-time.After(60 * time.Second):
		t.Fatalf("node %s did not answer within 60 s\n%s", name, n.log())
	}
	return n
}

func (n *node) log() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.Join(n.tail, "\n")
}

// kill sends SIGKILL and waits for the process to go.
func (n *node) kill() {
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
}

// readyz returns the status code of the node's /readyz.
func (n *node) readyz(t *testing.T) int {
	t.Helper()
	base := n.metrics.Load()
	if base == nil {
		t.Fatalf("node %s logged no metrics URL\n%s", n.name, n.log())
	}
	resp, err := http.Get(*base + "/readyz")
	if err != nil {
		t.Fatalf("node %s /readyz: %v", n.name, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// startThree starts nodes a, b and c on the empty database url, in
// that order, and checks that a serves and b and c wait as standbys.
func startThree(t *testing.T, bin, url, tokenFile string) (a, b, c *node) {
	t.Helper()
	a = startNode(t, bin, "a", url, tokenFile)
	if !isClosed(a.serving) {
		t.Fatalf("the first node on an empty database does not serve:\n%s", a.log())
	}
	b = startNode(t, bin, "b", url, tokenFile)
	c = startNode(t, bin, "c", url, tokenFile)
	for _, n := range []*node{b, c} {
		if !isClosed(n.standby) || isClosed(n.serving) {
			t.Fatalf("node %s with an active node on its database: want it a standby\n%s", n.name, n.log())
		}
	}
	return a, b, c
}

// TestStandbyTakesOverWhenTheActiveNodeIsKilled: three nodes on one
// database, one active and two standbys; the workload runs across all
// three; the active node is killed with SIGKILL mid-run. A standby takes
// over within seconds, the standbys refuse calls with NOT_LEADER until
// then, terminals carry on through the new active node, and every
// acknowledged answer is there exactly once.
func TestStandbyTakesOverWhenTheActiveNodeIsKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the real binary and runs three nodes on PostgreSQL")
	}
	url := pgtest.NewDatabase(t)
	bin := workload.BuildBinary(t)
	tokenFile := workload.TokenFile(t, t.TempDir())
	ctx := t.Context()

	a, b, c := startThree(t, bin, url, tokenFile)
	targets := strings.Join([]string{a.addr, b.addr, c.addr}, ",")

	// A standby says so: health NOT_SERVING, calls Unavailable NOT_LEADER
	// with a RetryInfo.
	sb := workload.Dial(t, b.addr, workload.AdminToken)
	if st, err := sb.Health(ctx, ""); err != nil || st != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("standby health: got %v, %v; want NOT_SERVING", st, err)
	}
	_, err := sb.GetMerchant(ctx, "M1")
	checkNotLeader(t, err)
	if got := b.readyz(t); got != http.StatusServiceUnavailable {
		t.Errorf("standby /readyz: got %d, want 503", got)
	}
	if got := a.readyz(t); got != http.StatusOK {
		t.Errorf("active node /readyz: got %d, want 200", got)
	}

	h := &workload.History{}
	h.Setup(ctx, t, targets, 6)

	// Load across the cluster; kill the active node a second in.
	loadCtx, stopLoad := context.WithCancel(ctx)
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		h.Load(loadCtx, t, targets, workload.Seed(t, "POSFLEET_CLUSTER_SEED"))
	}()
	time.Sleep(time.Second)
	beforeKill := h.Len()
	a.kill()
	killed := time.Now()
	var next, other *node
	select {
	case <-b.serving:
		next, other = b, c
	case <-c.serving:
		next, other = c, b
	case <-time.After(20 * time.Second):
		t.Fatalf("no standby serves 20 s after the active node was killed\nb:\n%s\nc:\n%s", b.log(), c.log())
	}
	takeover := time.Since(killed)
	t.Logf("node %s took over and serves %v after the active node was killed (%d answers acknowledged before)", next.name, takeover, beforeKill)
	if takeover > 10*time.Second {
		t.Errorf("takeover took %v, want within seconds", takeover)
	}
	// The workload's terminals stop at the first call the dead node cut
	// off; the same terminals, with the same multi-target clients, carry
	// on through the new active node.
	stopLoad()
	<-loaded
	afterTakeover := h.Len()
	loadUntilAcknowledged(ctx, t, h, targets, workload.Seed(t, "POSFLEET_CLUSTER_SEED2"))
	carried := h.Len() - afterTakeover
	t.Logf("%d answers acknowledged after the takeover", carried)
	if carried == 0 {
		t.Errorf("no answer acknowledged after the takeover: the terminals did not carry on")
	}
	if isClosed(other.serving) || isClosed(other.exited) {
		t.Errorf("node %s: got serving %v, exited %v; want it still a standby", other.name, isClosed(other.serving), isClosed(other.exited))
	}

	if got := next.readyz(t); got != http.StatusOK {
		t.Errorf("/readyz of the node that took over: got %d, want 200", got)
	}

	res := h.Check(ctx, t, targets, workload.Mark{})
	res.Report(t, "after the takeover:")
	for _, p := range res.Problems {
		t.Error(p)
	}
	if res.Checked[workload.Approval] == 0 {
		t.Error("no acknowledged approval to check")
	}
	checkWriter(t, url, 2)

	// A standby stops cleanly on SIGTERM.
	if err := other.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-other.exited:
		if other.err != nil {
			t.Errorf("standby stopped by SIGTERM: got %v, want exit status 0\n%s", other.err, other.log())
		}
	case <-time.After(20 * time.Second):
		t.Errorf("standby still runs 20 s after SIGTERM")
	}
}

// checkNotLeader checks that err is a standby's refusal.
func checkNotLeader(t *testing.T, err error) {
	t.Helper()
	st := status.Convert(err)
	var reason string
	var retry bool
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			reason = d.GetReason()
		case *errdetails.RetryInfo:
			retry = true
		}
	}
	if st.Code() != codes.Unavailable || reason != "NOT_LEADER" || !retry {
		t.Errorf("a call to a standby: got %v, reason %q, RetryInfo %v; want Unavailable, NOT_LEADER, a RetryInfo", st.Code(), reason, retry)
	}
}

// checkWriter checks the database's writer epoch.
func checkWriter(t *testing.T, url string, want int64) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var epoch int64
	var node string
	if err := conn.QueryRow(t.Context(), "SELECT epoch, node FROM posfleet_writer").Scan(&epoch, &node); err != nil {
		t.Fatal(err)
	}
	if epoch != want {
		t.Errorf("writer epoch: got %d (node %s), want %d", epoch, node, want)
	}
}

// TestActiveNodeFencedExits: the active node's lock connection is killed
// in the database (as a network partition would cut it) while a standby
// waits. The standby takes over; the old active node finds the epoch moved
// on and exits with a non-zero status, so that its supervisor restarts it
// as a standby, and it answers nothing as the writer any more.
func TestActiveNodeFencedExits(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the real binary and runs two nodes on PostgreSQL")
	}
	url := pgtest.NewDatabase(t)
	bin := workload.BuildBinary(t)
	tokenFile := workload.TokenFile(t, t.TempDir())
	ctx := t.Context()

	a := startNode(t, bin, "a", url, tokenFile)
	b := startNode(t, bin, "b", url, tokenFile)
	if !isClosed(b.standby) {
		t.Fatalf("node b: want a standby\n%s", b.log())
	}
	h := &workload.History{}
	h.Setup(ctx, t, a.addr+","+b.addr, 2)

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	err = conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND objid = 'posfleet_writer'::regclass::oid AND objsubid = 1`).Scan(&n)
	if err != nil || n != 1 {
		t.Fatalf("terminating the writer lock's backend: got %d, %v; want 1", n, err)
	}
	select {
	case <-b.serving:
	case <-time.After(20 * time.Second):
		t.Fatalf("the standby does not serve 20 s after the writer's lock connection was killed\n%s", b.log())
	}
	select {
	case <-a.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("the fenced node still runs 20 s after the takeover\n%s", a.log())
	}
	var ee *exec.ExitError
	if !errors.As(a.err, &ee) || ee.ExitCode() <= 0 {
		t.Errorf("fenced node's exit: got %v, want a non-zero exit status", a.err)
	}
	if !strings.Contains(a.log(), "lost the writer role") {
		t.Errorf("fenced node's log does not say it lost the writer role:\n%s", a.log())
	}
	checkWriter(t, url, 2)

	// The terminals carry on through the new node; what they were told
	// before is there.
	before := h.Len()
	loadUntilAcknowledged(ctx, t, h, a.addr+","+b.addr, workload.Seed(t, "POSFLEET_CLUSTER_SEED"))
	if h.Len() == before {
		t.Error("nothing acknowledged through the new active node")
	}
	res := h.Check(ctx, t, b.addr, workload.Mark{})
	for _, p := range res.Problems {
		t.Error(p)
	}
}

// loadUntilAcknowledged runs the workload in windows of two seconds until a
// window ends with answers acknowledged, for up to 30 s: on a loaded
// machine the first window after a takeover may pass before the terminals
// reach the new node, and that alone does not mean they cannot carry on.
func loadUntilAcknowledged(ctx context.Context, t *testing.T, h *workload.History, targets string, seed uint64) {
	t.Helper()
	before := h.Len()
	deadline := time.Now().Add(30 * time.Second)
	for h.Len() == before && time.Now().Before(deadline) {
		wctx, stop := context.WithTimeout(ctx, 2*time.Second)
		h.Load(wctx, t, targets, seed)
		stop()
		seed++
	}
}
