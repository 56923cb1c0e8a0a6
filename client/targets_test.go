package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server"
)

// nodeCall is one call a fake node received.
type nodeCall struct {
	node      int
	method    string
	requestID string
}

// fakeCluster is a set of fake posfleet nodes on loopback that answer the
// terminal calls the SDK's routing is tested with, and record which node
// got which call. Node-local state does not matter: the subject is the
// client.
type fakeCluster struct {
	nodes []*fakeNode
	mu    sync.Mutex // guards calls
	calls []nodeCall
}

// fakeNode is one node. On node 0, a payment whose request_id starts with
// "hold-" signals held and waits for release (or its deadline) before
// answering.
type fakeNode struct {
	pb.UnimplementedTerminalServiceServer
	pb.UnimplementedPaymentServiceServer

	c        *fakeCluster
	idx      int
	addr     string
	srv      *grpc.Server
	held     chan string
	release  chan struct{}
	mu       sync.Mutex // guards nstreams and refusing
	nstreams int
	// silent makes the node answer no call, as one whose host vanished
	// with its connections still open: calls wait for their deadline.
	silent atomic.Bool
	// standby makes the node refuse every call as a posfleet standby
	// does: Unavailable, NOT_LEADER, nothing recorded.
	standby atomic.Bool
	// refusing is closed while the node refuses calls as posfleet does
	// when it shuts down: open streams end and new calls fail with
	// Unavailable, SHUTTING_DOWN.
	refusing chan struct{}
}

// setRefusing starts or stops refusing calls with SHUTTING_DOWN, the
// connections staying open.
func (n *fakeNode) setRefusing(on bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	select {
	case <-n.refusing:
		if !on {
			n.refusing = make(chan struct{})
		}
	default:
		if on {
			close(n.refusing)
		}
	}
}

// refusal returns the channel closed while the node refuses, and the
// refusal if it does now.
func (n *fakeNode) refusal() (<-chan struct{}, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	select {
	case <-n.refusing:
		return n.refusing, shuttingDown()
	default:
		return n.refusing, nil
	}
}

func startCluster(t *testing.T, n int) *fakeCluster {
	t.Helper()
	c := &fakeCluster{}
	for i := range n {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		nd := &fakeNode{c: c, idx: i, addr: lis.Addr().String(), srv: grpc.NewServer(),
			refusing: make(chan struct{}), held: make(chan string, 16), release: make(chan struct{})}
		pb.RegisterTerminalServiceServer(nd.srv, nd)
		pb.RegisterPaymentServiceServer(nd.srv, nd)
		go nd.srv.Serve(lis)
		t.Cleanup(nd.srv.Stop)
		c.nodes = append(c.nodes, nd)
	}
	return c
}

// target is the comma-separated list of every node.
func (c *fakeCluster) target() string {
	var addrs []string
	for _, nd := range c.nodes {
		addrs = append(addrs, nd.addr)
	}
	return strings.Join(addrs, ",")
}

func (c *fakeCluster) record(node int, method, requestID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, nodeCall{node: node, method: method, requestID: requestID})
}

// nodesOf returns the nodes that received a call with requestID, in order.
func (c *fakeCluster) nodesOf(requestID string) []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for _, call := range c.calls {
		if call.requestID == requestID {
			out = append(out, call.node)
		}
	}
	return out
}

// stall waits for the call's end while the node is silent.
func (n *fakeNode) stall(ctx context.Context) error {
	if !n.silent.Load() {
		return nil
	}
	<-ctx.Done()
	return status.FromContextError(ctx.Err()).Err()
}

func (n *fakeNode) Heartbeat(ctx context.Context, req *pb.HeartbeatRequest) (*pb.HeartbeatResponse, error) {
	if n.standby.Load() {
		st, _ := status.New(codes.Unavailable, "this node is a standby").WithDetails(
			&errdetails.ErrorInfo{Reason: pb.ErrorReason_NOT_LEADER.String(), Domain: "posfleet.dev"},
			&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)})
		return nil, st.Err()
	}
	n.c.record(n.idx, "Heartbeat", req.GetStatus().GetAppVersion())
	if _, err := n.refusal(); err != nil {
		return nil, err
	}
	if err := n.stall(ctx); err != nil {
		return nil, err
	}
	return &pb.HeartbeatResponse{}, nil
}

// WatchConfig sends one config naming the node, then holds the stream
// until the client leaves or the node shuts down, ending it then as
// posfleet does: Unavailable, SHUTTING_DOWN, with a short RetryInfo.
func (n *fakeNode) WatchConfig(_ *pb.WatchConfigRequest, stream pb.TerminalService_WatchConfigServer) error {
	n.mu.Lock()
	n.nstreams++
	version := uint64(1000*(n.idx+1) + n.nstreams)
	n.mu.Unlock()
	n.c.record(n.idx, "WatchConfig", "")
	refusing, err := n.refusal()
	if err != nil {
		return err
	}
	err = stream.Send(&pb.WatchConfigResponse{Version: version, Settings: &pb.Settings{Extra: map[string]string{"node": strconv.Itoa(n.idx)}}})
	if err != nil {
		return err
	}
	select {
	case <-stream.Context().Done():
		return stream.Context().Err()
	case <-refusing:
		return shuttingDown()
	}
}

// shuttingDown is posfleet's refusal of a node that is shutting down, with
// a short RetryInfo.
func shuttingDown() error {
	st, _ := status.New(codes.Unavailable, "server is shutting down; reconnect").WithDetails(
		&errdetails.ErrorInfo{Reason: pb.ErrorReason_SHUTTING_DOWN.String(), Domain: "posfleet.dev"},
		&errdetails.RetryInfo{RetryDelay: durationpb.New(50 * time.Millisecond)})
	return st.Err()
}

func (n *fakeNode) AckConfig(_ context.Context, req *pb.AckConfigRequest) (*pb.AckConfigResponse, error) {
	n.c.record(n.idx, "AckConfig", strconv.FormatUint(req.GetVersion(), 10))
	return &pb.AckConfigResponse{}, nil
}

func (n *fakeNode) Authorize(ctx context.Context, req *pb.AuthorizeRequest) (*pb.AuthorizeResponse, error) {
	n.c.record(n.idx, "Authorize", req.GetRequestId())
	if _, err := n.refusal(); err != nil {
		return nil, err
	}
	if err := n.stall(ctx); err != nil {
		return nil, err
	}
	if n.idx == 0 && strings.HasPrefix(req.GetRequestId(), "hold-") {
		n.held <- req.GetRequestId()
		select {
		case <-n.release:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	return &pb.AuthorizeResponse{AuthorizationId: fmt.Sprintf("node%d", n.idx), Decision: pb.Decision_DECISION_APPROVED, ResponseCode: "00"}, nil
}

// servedBy makes a heartbeat tagged tag and returns the node that got it.
func servedBy(t *testing.T, c *fakeCluster, cl *client.Client, tag string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := cl.Heartbeat(ctx, &pb.TerminalStatus{AppVersion: tag}); err != nil {
		t.Fatalf("heartbeat %s: %v", tag, err)
	}
	nodes := c.nodesOf(tag)
	if len(nodes) != 1 {
		t.Fatalf("heartbeat %s reached nodes %v, want one", tag, nodes)
	}
	return nodes[0]
}

// watchNodes keeps the terminal's config watch open until ctx ends (the
// test waits for it to stop) and sends the node of each config pushed.
func watchNodes(t *testing.T, ctx context.Context, cl *client.Client) <-chan int {
	t.Helper()
	watched := make(chan int, 8)
	done := make(chan struct{})
	go func() {
		defer close(done)
		cl.WatchConfig(ctx, client.ConfigWatch{MinBackoff: 20 * time.Millisecond, Apply: func(_ context.Context, cfg *pb.WatchConfigResponse) error {
			n, _ := strconv.Atoi(cfg.GetSettings().GetExtra()["node"])
			watched <- n
			return nil
		}})
	}()
	t.Cleanup(func() { <-done })
	return watched
}

func dialCluster(t *testing.T, c *fakeCluster, opts ...client.Option) *client.Client {
	t.Helper()
	cl, err := client.Dial(c.target(), append([]client.Option{client.WithInsecure()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

func TestSplitTargets(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{in: "127.0.0.1:7400", want: []string{"127.0.0.1:7400"}},
		{in: "dns:///pos.example:7400", want: []string{"dns:///pos.example:7400"}},
		{in: "a:7400, b:7400,,c:7400 ", want: []string{"a:7400", "b:7400", "c:7400"}},
		{in: "a:7400,b", wantErr: true},
		{in: "a:7400,a:7400", wantErr: true},
		{in: ", ,", wantErr: true},
	} {
		got, err := client.SplitTargets(tc.in)
		if (err != nil) != tc.wantErr || fmt.Sprint(got) != fmt.Sprint(tc.want) && !tc.wantErr {
			t.Errorf("SplitTargets(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
	if _, err := client.Dial("a:7400,b", client.WithInsecure()); err == nil {
		t.Error("Dial of a list with a target without port: got no error")
	}
}

// TestTerminalsSpreadOverNodes dials many terminals over three nodes: by
// index they spread exactly; by key and shuffled every node gets some (the
// evenness of the key's order, which depends on the node names, is
// checked with fixed names in TestFailoverSpreadsEvenly; a node left
// without any of 60 terminals would happen by chance once in 10^10 runs).
func TestTerminalsSpreadOverNodes(t *testing.T) {
	c := startCluster(t, 3)
	const terminals = 60
	for _, tc := range []struct {
		name  string
		opt   func(i int) []client.Option
		exact bool
	}{
		{name: "index", opt: func(i int) []client.Option { return []client.Option{client.WithTargetIndex(i)} }, exact: true},
		{name: "key", opt: func(i int) []client.Option { return []client.Option{client.WithTargetKey(fmt.Sprintf("SN-%06d", i))} }},
		{name: "shuffled", opt: func(int) []client.Option { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			perNode := make([]int, 3)
			for i := range terminals {
				cl := dialCluster(t, c, tc.opt(i)...)
				perNode[servedBy(t, c, cl, fmt.Sprintf("%s-%d", tc.name, i))]++
				cl.Close()
			}
			for n, got := range perNode {
				if tc.exact && got != terminals/3 {
					t.Errorf("node %d served %d of %d terminals (all: %v), want %d", n, got, terminals, perNode, terminals/3)
				}
				if got == 0 {
					t.Errorf("node %d served none of %d terminals (all: %v)", n, terminals, perNode)
				}
			}
		})
	}
}

// TestFailoverSpreadsEvenly checks the failover order of both orderings:
// the terminals of a node that is gone move to the other nodes evenly.
func TestFailoverSpreadsEvenly(t *testing.T) {
	targets := []string{"a:1", "b:1", "c:1"}
	for _, tc := range []struct {
		name  string
		order func(i int) []string
		slack int
	}{
		{name: "index", order: func(i int) []string { return client.TargetOrder(targets, client.WithTargetIndex(i)) }},
		{name: "key", order: func(i int) []string {
			return client.TargetOrder(targets, client.WithTargetKey(fmt.Sprintf("SN-%06d", i)))
		}, slack: 150},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pairs := map[[2]string]int{}
			for i := range 3000 {
				o := tc.order(i)
				if len(o) != 3 || o[0] == o[1] || o[1] == o[2] || o[0] == o[2] {
					t.Fatalf("order %d = %v, want a permutation of %v", i, o, targets)
				}
				pairs[[2]string{o[0], o[1]}]++
			}
			// 6 (first, second) pairs, 500 each when even.
			if len(pairs) != 6 {
				t.Fatalf("got %d (first, failover) pairs %v, want 6", len(pairs), pairs)
			}
			for p, got := range pairs {
				if got < 500-tc.slack || got > 500+tc.slack {
					t.Errorf("pair %v: got %d of 3000, want 500±%d", p, got, tc.slack)
				}
			}
		})
	}
}

// TestCallsStickToOneNode: unary calls, payments and the watch stream of
// one terminal all go to one node while it is up.
func TestCallsStickToOneNode(t *testing.T) {
	c := startCluster(t, 3)
	for i := range 3 {
		cl := dialCluster(t, c, client.WithTargetKey(fmt.Sprintf("sticky-%d", i)))
		home := servedBy(t, c, cl, fmt.Sprintf("sticky-%d-first", i))
		ctx, cancel := context.WithCancel(t.Context())
		watched := watchNodes(t, ctx, cl)
		for j := range 10 {
			if got := servedBy(t, c, cl, fmt.Sprintf("sticky-%d-%d", i, j)); got != home {
				t.Errorf("terminal %d: heartbeat %d on node %d, want its node %d", i, j, got, home)
			}
			reqID := fmt.Sprintf("sticky-pay-%d-%d", i, j)
			if _, err := cl.Authorize(ctx, &pb.AuthorizeRequest{RequestId: reqID}); err != nil {
				t.Fatal(err)
			}
			if got := c.nodesOf(reqID); len(got) != 1 || got[0] != home {
				t.Errorf("terminal %d: payment on nodes %v, want [%d]", i, got, home)
			}
		}
		select {
		case got := <-watched:
			if got != home {
				t.Errorf("terminal %d: watch stream on node %d, want %d", i, got, home)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no config pushed on the watch stream")
		}
		cancel()
	}
}

// failover runs a terminal on node 0 with a watch stream open and a
// payment held in flight on node 0, stops node 0 with stop, and checks
// that the terminal carries on through the other nodes: the payment (with
// the same request_id) and the watch stream. It returns the nodes that got
// the held payment, and the observed calls.
func failover(t *testing.T, stop func(c *fakeCluster)) (*fakeCluster, []int, []client.NodeCall) {
	t.Helper()
	c := startCluster(t, 3)
	var mu sync.Mutex // guards observed
	var observed []client.NodeCall
	cl := dialCluster(t, c, client.WithTargetIndex(0), client.WithNodeObserver(func(nc client.NodeCall) {
		mu.Lock()
		defer mu.Unlock()
		observed = append(observed, nc)
	}))
	if got := servedBy(t, c, cl, "before"); got != 0 {
		t.Fatalf("terminal with index 0 on node %d, want 0", got)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	watched := watchNodes(t, ctx, cl)
	if got := <-watched; got != 0 {
		t.Fatalf("watch stream on node %d, want 0", got)
	}

	const reqID = "hold-payment-1"
	type answer struct {
		resp *pb.AuthorizeResponse
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := cl.AuthorizeWithPolicy(ctx, &pb.AuthorizeRequest{RequestId: reqID},
			client.RetryPolicy{Attempts: 4, AttemptTimeout: 5 * time.Second, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
		answered <- answer{resp, err}
	}()
	select {
	case <-c.nodes[0].held:
	case <-ctx.Done():
		t.Fatal("payment never reached node 0")
	}
	stop(c)
	a := <-answered
	if a.err != nil {
		t.Fatalf("payment across the failover: %v", a.err)
	}
	if got := servedBy(t, c, cl, "after"); got == 0 {
		t.Errorf("heartbeat after node 0 stopped went to node 0")
	}
	select {
	case got := <-watched:
		if got == 0 {
			t.Errorf("watch stream reopened on node 0, which is gone")
		}
	case <-ctx.Done():
		t.Fatal("watch stream did not reopen on another node")
	}
	mu.Lock()
	defer mu.Unlock()
	return c, c.nodesOf(reqID), observed
}

// TestFailoverAfterHardStop: node 0 dies with a payment in flight; the SDK
// retries it with the same request_id on another node, once.
func TestFailoverAfterHardStop(t *testing.T) {
	c, nodes, observed := failover(t, func(c *fakeCluster) { c.nodes[0].srv.Stop() })
	if len(nodes) != 2 || nodes[0] != 0 || nodes[1] == 0 {
		t.Errorf("payment reached nodes %v, want node 0 and then one other", nodes)
	}
	// The observer saw the try that failed on node 0 and the one that
	// succeeded elsewhere.
	var tries []string
	for _, nc := range observed {
		if strings.HasSuffix(nc.Method, "/Authorize") {
			tries = append(tries, fmt.Sprintf("%s:%v", nc.Node, status.Code(nc.Err)))
		}
	}
	want := []string{c.nodes[0].addr + ":Unavailable", c.nodes[nodes[len(nodes)-1]].addr + ":OK"}
	if fmt.Sprint(tries) != fmt.Sprint(want) {
		t.Errorf("observed payment tries %v, want %v", tries, want)
	}
}

// TestFailoverAfterGracefulStop: node 0 shuts down as posfleet does
// (streams end with SHUTTING_DOWN, then GOAWAY and a graceful stop): the
// payment in flight is answered by node 0, once; later calls and the
// watch stream go to the others.
func TestFailoverAfterGracefulStop(t *testing.T) {
	_, nodes, _ := failover(t, func(c *fakeCluster) {
		n := c.nodes[0]
		n.setRefusing(true)
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			n.srv.GracefulStop()
		}()
		// The call in flight finishes on the node that is draining.
		time.Sleep(50 * time.Millisecond)
		close(n.release)
		<-stopped
	})
	if len(nodes) != 1 || nodes[0] != 0 {
		t.Errorf("payment reached nodes %v, want node 0 only", nodes)
	}
}

// TestRetriesStayWithinPolicyWhenAllNodesAreGone: with every node gone, a
// payment is tried at most RetryPolicy.Attempts times, then reported as
// an unknown outcome.
func TestRetriesStayWithinPolicyWhenAllNodesAreGone(t *testing.T) {
	c := startCluster(t, 3)
	for _, nd := range c.nodes {
		nd.srv.Stop()
	}
	var tries int
	var mu sync.Mutex
	cl := dialCluster(t, c, client.WithTargetIndex(1), client.WithNodeObserver(func(nc client.NodeCall) {
		if strings.HasSuffix(nc.Method, "/Authorize") {
			mu.Lock()
			tries++
			mu.Unlock()
		}
	}))
	p := client.RetryPolicy{Attempts: 3, AttemptTimeout: time.Second, MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, ReversalTimeout: 300 * time.Millisecond}
	_, err := cl.AuthorizeWithPolicy(t.Context(), &pb.AuthorizeRequest{RequestId: "nobody-home"}, p)
	var unknown *client.OutcomeUnknownError
	if !errors.As(err, &unknown) {
		t.Fatalf("got %v, want an OutcomeUnknownError", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if tries != p.Attempts {
		t.Errorf("got %d tries of the payment, want %d", tries, p.Attempts)
	}
}

// TestNodeRefusingWhileConnectedIsSetAside: node 0 keeps its connection
// but refuses with SHUTTING_DOWN. The terminal's payment is retried on
// another node, the watch reopens there, and it stays there; once the set
// aside is over and node 0 serves again, node 0 is back in the list: the
// terminal returns to it when its new node dies.
func TestNodeRefusingWhileConnectedIsSetAside(t *testing.T) {
	c := startCluster(t, 3)
	cl := dialCluster(t, c, client.WithTargetIndex(0), client.WithSetAside(time.Second))
	if got := servedBy(t, c, cl, "before"); got != 0 {
		t.Fatalf("terminal with index 0 on node %d, want 0", got)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	watched := watchNodes(t, ctx, cl)
	if got := <-watched; got != 0 {
		t.Fatalf("watch stream on node %d, want 0", got)
	}

	c.nodes[0].setRefusing(true)
	p := client.RetryPolicy{Attempts: 4, AttemptTimeout: 5 * time.Second, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	if _, err := cl.AuthorizeWithPolicy(ctx, &pb.AuthorizeRequest{RequestId: "refused-1"}, p); err != nil {
		t.Fatalf("payment refused by node 0: %v", err)
	}
	nodes := c.nodesOf("refused-1")
	if len(nodes) != 2 || nodes[0] != 0 || nodes[1] == 0 {
		t.Fatalf("payment reached nodes %v, want node 0, then once another", nodes)
	}
	moved := nodes[1]
	select {
	case got := <-watched:
		if got != moved {
			t.Errorf("watch stream reopened on node %d, want %d", got, moved)
		}
	case <-ctx.Done():
		t.Fatal("watch stream did not reopen")
	}

	c.nodes[0].setRefusing(false)
	time.Sleep(1300 * time.Millisecond) // the set aside ends
	if got := servedBy(t, c, cl, "sticky"); got != moved {
		t.Errorf("heartbeat on node %d, want %d: the terminal stays while its node is up", got, moved)
	}
	c.nodes[moved].srv.Stop()
	if got := servedBy(t, c, cl, "home"); got != 0 {
		t.Errorf("after node %d died, heartbeat on node %d, want 0 (first in the terminal's order, back in the list)", moved, got)
	}
}

// TestFailoverFromRealServerShutdown runs three real posfleet servers and
// shuts the client's down the way a SIGTERM does (NOT_SERVING, drain,
// GOAWAY, graceful stop): the client's next calls go to another node,
// without an error. Health checks need no terminal, so each server's own
// state does not matter.
func TestFailoverFromRealServerShutdown(t *testing.T) {
	var addrs []string
	var stops []func()
	for range 3 {
		addr, stop := serveUntil(t, server.DefaultConfig(t.TempDir()))
		addrs = append(addrs, addr)
		stops = append(stops, stop)
	}
	var mu sync.Mutex // guards last
	var last client.NodeCall
	cl, err := client.Dial(strings.Join(addrs, ","), client.WithInsecure(), client.WithTargetIndex(0),
		client.WithNodeObserver(func(nc client.NodeCall) {
			mu.Lock()
			defer mu.Unlock()
			last = nc
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	check := func(want func(node string) bool, what string) {
		t.Helper()
		st, err := cl.Health(t.Context(), "")
		mu.Lock()
		defer mu.Unlock()
		if err != nil || st != healthpb.HealthCheckResponse_SERVING || !want(last.Node) {
			t.Fatalf("health: %v, %v on node %q; want SERVING on %s", st, err, last.Node, what)
		}
	}
	check(func(n string) bool { return n == addrs[0] }, "node 0")
	stops[0]()
	for i := range 5 {
		check(func(n string) bool { return n == addrs[1] || n == addrs[2] }, fmt.Sprintf("another node (call %d)", i))
	}
}

// TestSilentNodeIsSetAsideAfterTimeouts: node 0 stops answering but keeps
// its connection, as a host that lost power does until keepalive notices.
// One call running out of time does not move the terminal; two in a row
// do, and the payment's next try goes to another node.
func TestSilentNodeIsSetAsideAfterTimeouts(t *testing.T) {
	c := startCluster(t, 3)
	cl := dialCluster(t, c, client.WithTargetIndex(0))
	if got := servedBy(t, c, cl, "before"); got != 0 {
		t.Fatalf("terminal with index 0 on node %d, want 0", got)
	}
	c.nodes[0].silent.Store(true)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	_, err := cl.Heartbeat(ctx, &pb.TerminalStatus{AppVersion: "late"})
	cancel()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("heartbeat to the silent node: %v, want DeadlineExceeded", err)
	}
	c.nodes[0].silent.Store(false)
	if got := servedBy(t, c, cl, "one-late"); got != 0 {
		t.Errorf("after one late answer, heartbeat on node %d, want still 0", got)
	}

	c.nodes[0].silent.Store(true)
	// Each try on the silent node lasts AttemptTimeout; the try elsewhere
	// must not run out of time (a fresh connection on a loaded machine):
	// a second, not a fifth of one.
	p := client.RetryPolicy{Attempts: 4, AttemptTimeout: time.Second, MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
	if _, err := cl.AuthorizeWithPolicy(t.Context(), &pb.AuthorizeRequest{RequestId: "silent-1"}, p); err != nil {
		t.Fatalf("payment with node 0 silent: %v", err)
	}
	if nodes := c.nodesOf("silent-1"); len(nodes) != 3 || nodes[0] != 0 || nodes[1] != 0 || nodes[2] == 0 {
		t.Errorf("payment reached nodes %v, want node 0 twice, then another", nodes)
	}
}

// TestStandbyRefusalMovesCallToTheActiveNode: with two standbys and one
// active node, a call (a heartbeat, which is not retried) that reaches a
// standby goes on to the next node until the active one answers it; when
// the active node dies and a standby takes over, the standbys set aside
// come back and the terminal finds the new active node.
func TestStandbyRefusalMovesCallToTheActiveNode(t *testing.T) {
	c := startCluster(t, 3)
	c.nodes[0].standby.Store(true)
	c.nodes[1].standby.Store(true)
	cl := dialCluster(t, c, client.WithTargetIndex(0))
	if got := servedBy(t, c, cl, "first"); got != 2 {
		t.Fatalf("heartbeat on node %d, want 2, the active one", got)
	}

	c.nodes[2].srv.Stop()
	c.nodes[1].standby.Store(false) // node 1 takes over
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// Let the channel notice that node 2 is gone, so that the next call
	// fails before reaching any node (it has no peer): the client must
	// still leave node 2 and bring back the standbys it set aside.
	for st := cl.Conn().GetState(); st == connectivity.Ready; st = cl.Conn().GetState() {
		if !cl.Conn().WaitForStateChange(ctx, st) {
			t.Fatal("the channel stayed ready on a stopped node")
		}
	}
	var err error
	for i := range 3 {
		// The first may fail: it finds node 2's connection gone.
		tag := "after-" + strconv.Itoa(i)
		if _, err = cl.Heartbeat(ctx, &pb.TerminalStatus{AppVersion: tag}); err == nil {
			if got := c.nodesOf(tag); len(got) != 1 || got[0] != 1 {
				t.Errorf("heartbeat after the takeover reached nodes %v, want [1]", got)
			}
			return
		}
	}
	t.Fatalf("no heartbeat reached the new active node: %v", err)
}
