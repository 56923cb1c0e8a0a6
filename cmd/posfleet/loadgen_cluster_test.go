package main

import (
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/posfleet/posfleet/loadgen"
)

// nodeProxy stands in for one node of a cluster: a TCP proxy on loopback in
// front of one real server, so that several "nodes" share one state as
// nodes on one database do. Kill makes the node vanish as a killed process
// does: its port refuses and its connections reset.
type nodeProxy struct {
	lis     net.Listener
	backend string
	mu      sync.Mutex // guards conns and dead
	conns   []net.Conn
	dead    bool
	wg      sync.WaitGroup
}

func startNodeProxy(t *testing.T, backend string) *nodeProxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &nodeProxy{lis: lis, backend: backend}
	p.wg.Go(p.accept)
	t.Cleanup(p.Kill)
	return p
}

func (p *nodeProxy) addr() string { return p.lis.Addr().String() }

func (p *nodeProxy) accept() {
	for {
		c, err := p.lis.Accept()
		if err != nil {
			return
		}
		b, err := net.Dial("tcp", p.backend)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(c, b) {
			return
		}
		for _, pair := range [][2]net.Conn{{c, b}, {b, c}} {
			p.wg.Go(func() {
				io.Copy(pair[0], pair[1])
				pair[0].Close()
				pair[1].Close()
			})
		}
	}
}

// track registers the connections of one proxied connection; false when
// the node is already dead (they are closed then).
func (p *nodeProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dead {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	p.conns = append(p.conns, cs...)
	return true
}

// Kill closes the port and every connection through it, and waits for
// the proxy's goroutines.
func (p *nodeProxy) Kill() {
	p.mu.Lock()
	p.dead = true
	p.lis.Close()
	for _, c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // a reset, as from a dead host's kernel
		}
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// TestLoadgenFollowsClusterWhenANodeDies runs the fleet driver against
// three nodes (proxies in front of one real server) and kills one mid-run:
// the run completes, every payment is answered and every batch balances,
// the dead node's terminals moved to the other two (exactly in turn), and
// the per-node counts add up.
func TestLoadgenFollowsClusterWhenANodeDies(t *testing.T) {
	cli := StartAdminCLI(t)
	var nodes []*nodeProxy
	var targets []string
	for range 3 {
		p := startNodeProxy(t, cli.P.Addr)
		nodes = append(nodes, p)
		targets = append(targets, p.addr())
	}
	const terminals = 12
	dir := filepath.Join(t.TempDir(), "report")
	cmd := exec.Command(binPath, "loadgen", "--target", strings.Join(targets, ","), "--admin-token-file", cli.TokenFile,
		"--rate", "40", "--duration", "4s", "--warmup", "0", "--terminals", "12", "--merchants", "1",
		"--heartbeat-interval", "1s", "--report", dir)
	var out strings.Builder
	cmd.Stdout = &out
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	// Kill node 0 a second into the profile (the first progress line,
	// after every terminal registered): 4 of the 12 connections are on it.
	var logs strings.Builder
	sc := scanUntilProgress(stderr, &logs)
	nodes[0].Kill()
	for sc.Scan() {
		logs.WriteString(sc.Text() + "\n")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("loadgen across a node's death: %v\n%s%s", err, &logs, &out)
	}
	if !strings.Contains(out.String(), "moves between nodes") {
		t.Errorf("summary lacks the per-node table:\n%s", &out)
	}

	res, err := loadgen.ReadResult(filepath.Join(dir, loadgen.ReportJSON))
	if err != nil {
		t.Fatal(err)
	}
	// Money: every payment answered (the SDK retried the ones cut off with
	// the same request_id on another node) and every batch in balance.
	for _, op := range []string{loadgen.OpAuthorize, loadgen.OpReverse, loadgen.OpRefund, loadgen.OpCloseBatch} {
		if o := res.Op(op); o != nil && o.Errors != 0 {
			t.Errorf("%s: %d errors: %+v", op, o.Errors, o.Outcomes)
		}
	}
	if o := res.Op(loadgen.OpCloseBatch); o == nil || o.OK == 0 {
		t.Errorf("close_batch: got %+v, want balanced batches", o)
	}

	cl := res.Cluster
	if cl == nil || len(cl.Targets) != 3 {
		t.Fatalf("report cluster = %+v, want three targets", cl)
	}
	var conns int
	var in, outs int64
	for i, tr := range cl.Targets {
		if tr.Target != targets[i] {
			t.Errorf("target %d = %q, want %q", i, tr.Target, targets[i])
		}
		if tr.Requests == 0 {
			t.Errorf("target %s served no calls", tr.Target)
		}
		conns += tr.Connections
		in += tr.MovesIn
		outs += tr.MovesOut
	}
	if conns != terminals || in != cl.Moves || outs != cl.Moves {
		t.Errorf("connections %d (want %d), moves in %d and out %d (want both %d)", conns, terminals, in, outs, cl.Moves)
	}
	// Every call of a terminal connection reached a node or is counted as
	// unreached: at least one call per terminal operation.
	var ops int64
	for _, op := range []string{loadgen.OpRegister, loadgen.OpHeartbeat, loadgen.OpAuthorize, loadgen.OpReverse, loadgen.OpRefund, loadgen.OpCloseBatch} {
		if o := res.Op(op); o != nil {
			for _, oc := range o.Outcomes {
				if !strings.HasPrefix(oc.Outcome, "dropped:") {
					ops += oc.Count
				}
			}
		}
	}
	calls := cl.Unreached
	for _, tr := range cl.Targets {
		calls += tr.Requests
	}
	if calls < ops {
		t.Errorf("per-node counts hold %d calls, fewer than the %d terminal operations", calls, ops)
	}
	// The dead node's four terminals moved, two to each other node.
	if got := cl.Targets[0]; got.Connections != 0 || got.MovesOut < terminals/3 {
		t.Errorf("dead node: %+v, want no connection left and at least %d moved out", got, terminals/3)
	}
	for _, tr := range cl.Targets[1:] {
		if tr.Connections != terminals/2 {
			t.Errorf("node %s ends with %d connections, want %d", tr.Target, tr.Connections, terminals/2)
		}
	}
}
