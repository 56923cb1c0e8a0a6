package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"
)

// nodesScheme is the scheme of the manual resolver that hands a
// multi-target client its list of nodes.
const nodesScheme = "posfleet-nodes"

// SplitTargets splits a comma-separated list of "host:port" targets, as
// Dial and the --target flags take it, dropping blanks. A single target,
// whatever its form (a "dns:///" URI too), comes back as it is.
func SplitTargets(target string) ([]string, error) {
	if !strings.Contains(target, ",") {
		return []string{strings.TrimSpace(target)}, nil
	}
	var out []string
	for part := range strings.SplitSeq(target, ",") {
		p := strings.TrimSpace(part)
		if p == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(p); err != nil {
			return nil, fmt.Errorf("client: target %q: want host:port in a list of several: %w", p, err)
		}
		if slices.Contains(out, p) {
			return nil, fmt.Errorf("client: target %q given twice", p)
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, errors.New("client: no target in the list")
	}
	return out, nil
}

// WithTargetKey orders the nodes of a multi-target client by key, a stable
// name of the terminal such as its serial number or terminal_id: the
// terminal tries its nodes in the order of the highest random weight of
// (key, node) (rendezvous hashing). Terminals spread evenly over the nodes
// and go back to the same node after a restart; when a node is gone, the
// terminals that were on it spread evenly over the others, and adding a
// node moves only the terminals that now rank it first. Without
// WithTargetKey or WithTargetIndex the order is shuffled at Dial.
func WithTargetKey(key string) Option {
	return func(o *options) { o.order = func(targets []string) []string { return rendezvousOrder(key, targets) } }
}

// WithTargetIndex orders the nodes of a multi-target client for the i-th
// of a set of clients that share the target list: client i starts on
// target i mod n, and when that node is gone it moves to one of the
// others in turn (client i+n to the next), so that both the first choice
// and the failover spread exactly evenly. The load generator dials its
// connections so.
func WithTargetIndex(i int) Option {
	return func(o *options) { o.order = func(targets []string) []string { return indexOrder(i, targets) } }
}

// NodeCall is one finished unary call, as a WithNodeObserver function is
// told of it.
type NodeCall struct {
	// Method is the full gRPC method name.
	Method string
	// Node is the target (an entry of the list given to Dial) that served
	// or failed the call, "" when the call reached no node.
	Node string
	// Err is the call's error, nil on success.
	Err error
}

// WithNodeObserver calls fn after every unary call (each try of the
// payment helpers' retries is one call) with the node it went to, for
// metrics and logs of which node a terminal is on. fn runs on the
// caller's goroutine, possibly concurrently; it must be quick.
func WithNodeObserver(fn func(NodeCall)) Option {
	return func(o *options) { o.observer = fn }
}

// rendezvousOrder sorts targets by the FNV-1a hash of (key, target),
// highest first.
func rendezvousOrder(key string, targets []string) []string {
	weight := func(t string) uint64 {
		h := fnv.New64a()
		h.Write([]byte(key))
		h.Write([]byte{0})
		h.Write([]byte(t))
		// FNV's low bits mix poorly on short inputs: finish with a
		// splitmix64 round.
		x := h.Sum64()
		x ^= x >> 30
		x *= 0xbf58476d1ce4e5b9
		x ^= x >> 27
		x *= 0x94d049bb133111eb
		return x ^ x>>31
	}
	out := slices.Clone(targets)
	slices.SortStableFunc(out, func(a, b string) int {
		wa, wb := weight(a), weight(b)
		switch {
		case wa > wb:
			return -1
		case wa < wb:
			return 1
		}
		return 0
	})
	return out
}

// indexOrder puts target i mod n first, then the others from the
// (i/n mod n-1)-th on, in list order, wrapping around.
func indexOrder(i int, targets []string) []string {
	n := len(targets)
	i = max(i, 0)
	first := i % n
	out := []string{targets[first]}
	rest := append(slices.Clone(targets[first+1:]), targets[:first]...)
	if len(rest) > 0 {
		shift := (i / n) % len(rest)
		out = append(out, rest[shift:]...)
		out = append(out, rest[:shift]...)
	}
	return out
}

// DefaultSetAside is how long a client of several nodes leaves out a node
// that failed a call with Unavailable (see WithSetAside).
const DefaultSetAside = 30 * time.Second

// WithSetAside sets how long a client of several nodes leaves a node out
// of its list after the node failed a call or ended a stream with
// Unavailable (a dead connection, or the node refusing as it shuts down:
// SHUTTING_DOWN), or let two calls in a row run past their deadline (a
// node that vanished without closing its connections), so that the next
// call goes to another node even while that node's connection seems open (DefaultSetAside when not given;
// zero or negative: never). The last node left is set aside only for the
// nodes set aside before it, which then come back (a standby that refused
// may have taken over from it). A node
// back in the list is used again when the client next connects.
func WithSetAside(d time.Duration) Option {
	return func(o *options) { o.setAside, o.setAsideGiven = d, true }
}

// nodeSet is the node list of a client of several nodes: a manual
// resolver hands it to the pick_first policy, shuffled by the policy
// (shuffleAddressList) or in the order an option chose. pick_first keeps
// all calls, streams too, on one node while its connection lasts; when
// the connection fails or the node says GOAWAY, the next call connects
// again from the start of the list, the node that is gone refusing, so it
// lands on the next one that is up. A node that fails calls with
// Unavailable while its connection stays up, or lets calls run out of
// time (see deadlineStrikes), is set aside: taken out of the list for a
// while, which makes pick_first leave it.
type nodeSet struct {
	r        *manual.Resolver
	order    []string // every node, in the client's order
	shuffle  bool
	asideFor time.Duration
	mu       sync.Mutex // guards aside, late and closed, and orders resolver updates
	aside    map[string]*time.Timer
	// late counts each node's calls in a row that ran out of time.
	late   map[string]int
	closed bool
}

func newNodeSet(targets []string, order func([]string) []string, asideFor time.Duration) *nodeSet {
	s := &nodeSet{
		r:        manual.NewBuilderWithScheme(nodesScheme),
		order:    targets,
		shuffle:  order == nil,
		asideFor: asideFor,
		aside:    map[string]*time.Timer{},
		late:     map[string]int{},
	}
	if order != nil {
		s.order = order(targets)
	}
	s.r.InitialState(s.stateLocked())
	return s
}

// stateLocked is the resolver state: the nodes not set aside. Called with
// s.mu held, or before s is shared.
func (s *nodeSet) stateLocked() resolver.State {
	var eps []resolver.Endpoint
	for _, t := range s.order {
		if s.aside[t] == nil {
			// ServerName: the :authority and the TLS name of each node
			// are its own, as when it is dialed alone.
			eps = append(eps, resolver.Endpoint{Addresses: []resolver.Address{{Addr: t, ServerName: t}}})
		}
	}
	return resolver.State{Endpoints: eps}
}

// dialTarget is the target to dial, of the resolver's scheme.
func (s *nodeSet) dialTarget() string { return nodesScheme + ":///" + strings.Join(s.order, ",") }

// serviceConfig adds the pick_first policy to the service config sc.
func (s *nodeSet) serviceConfig(sc string) (string, error) {
	var cfg map[string]any
	if err := json.Unmarshal([]byte(sc), &cfg); err != nil {
		return "", fmt.Errorf("client: service config: %w", err)
	}
	cfg["loadBalancingConfig"] = []any{map[string]any{"pick_first": map[string]any{"shuffleAddressList": s.shuffle}}}
	out, err := json.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("client: service config: %w", err)
	}
	return string(out), nil
}

// deadlineStrikes is how many calls in a row a node must let run past
// their deadline before it is set aside. One slow answer is not a node
// gone; but a node that vanished without closing its connections (power
// lost, network cut) answers nothing until keepalive gives up on the
// connection, some 40 seconds later.
const deadlineStrikes = 2

// called notes how a call on node ended: a node that answers Unavailable,
// or lets deadlineStrikes calls in a row run out of time, is set aside for
// s.asideFor, unless it is the last node left.
func (s *nodeSet) called(node string, err error) {
	if s.asideFor <= 0 {
		return
	}
	code := status.Code(err)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch code {
	case codes.OK:
		delete(s.late, node)
		return
	case codes.DeadlineExceeded:
		if s.late[node]++; s.late[node] < deadlineStrikes {
			return
		}
	case codes.Unavailable:
	default:
		return
	}
	delete(s.late, node)
	if s.closed || s.aside[node] != nil || !slices.Contains(s.order, node) {
		return
	}
	if len(s.order)-len(s.aside) <= 1 {
		if len(s.aside) == 0 || code != codes.Unavailable {
			return
		}
		// The last node left fails too: the nodes set aside earlier are
		// the best hope now (a standby that refused with NOT_LEADER may
		// have taken over from this one). They come back; this one goes.
		for n, t := range s.aside {
			t.Stop()
			delete(s.aside, n)
		}
	}
	s.aside[node] = time.AfterFunc(s.asideFor, func() { s.restore(node) })
	s.r.UpdateState(s.stateLocked())
}

// unreached notes a call that failed Unavailable without reaching any
// node: no connection could be made, so the call has no peer. With one
// node left in the list, that node is the one that failed: it is set
// aside as called would (and the nodes set aside earlier come back),
// instead of the channel trying it alone until their time is up.
func (s *nodeSet) unreached(err error) {
	if s.asideFor <= 0 || status.Code(err) != codes.Unavailable {
		return
	}
	s.mu.Lock()
	var left []string
	for _, n := range s.order {
		if s.aside[n] == nil {
			left = append(left, n)
		}
	}
	s.mu.Unlock()
	if len(left) == 1 {
		s.called(left[0], err)
	}
}

// restore puts node back in the list.
func (s *nodeSet) restore(node string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	delete(s.aside, node)
	s.r.UpdateState(s.stateLocked())
}

// close stops the timers that would put nodes back.
func (s *nodeSet) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, t := range s.aside {
		t.Stop()
	}
}

// nodeNames maps the peer address of a call back to the target it
// belongs to: a target given by IP is its own peer address; one given by
// host name is found by looking the name up, once per peer address.
type nodeNames struct {
	targets []string
	mu      sync.Mutex // guards known
	known   map[string]string
}

func newNodeNames(targets []string) *nodeNames {
	n := &nodeNames{targets: targets, known: map[string]string{}}
	for _, t := range targets {
		n.known[t] = t
	}
	return n
}

// name returns the target whose node has the address addr, or addr when
// none matches.
func (n *nodeNames) name(ctx context.Context, addr string) string {
	if len(n.targets) == 1 {
		return n.targets[0]
	}
	n.mu.Lock()
	name, ok := n.known[addr]
	n.mu.Unlock()
	if ok {
		return name
	}
	name = addr
	host, port, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err == nil && ip != nil {
	search:
		for _, t := range n.targets {
			th, tp, err := net.SplitHostPort(t)
			if err != nil || tp != port || net.ParseIP(th) != nil {
				continue
			}
			ips, err := net.DefaultResolver.LookupIPAddr(ctx, th)
			if err != nil {
				continue
			}
			for _, a := range ips {
				if a.IP.Equal(ip) {
					name = t
					break search
				}
			}
		}
	}
	n.mu.Lock()
	n.known[addr] = name
	n.mu.Unlock()
	return name
}

// nodeCalls learns the node of each call: it tells the observer, if any,
// and the node set, if any, of failures.
type nodeCalls struct {
	names    *nodeNames
	observer func(NodeCall)
	set      *nodeSet
}

// done handles a finished call or stream on peer p.
func (n *nodeCalls) done(ctx context.Context, method string, p *peer.Peer, err error) {
	call := NodeCall{Method: method, Err: err}
	switch {
	case p.Addr != nil:
		call.Node = n.names.name(context.WithoutCancel(ctx), p.Addr.String())
		if n.set != nil {
			n.set.called(call.Node, err)
		}
	case n.set != nil:
		n.set.unreached(err)
	}
	if n.observer != nil {
		n.observer(call)
	}
}

// unary runs a call; with several nodes, a call a standby refused
// (NOT_LEADER: nothing was carried out, whatever the method) goes again to
// the next node, once per node, the standby being set aside.
func (n *nodeCalls) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	for attempt := 1; ; attempt++ {
		var p peer.Peer
		err := invoker(ctx, method, req, reply, cc, append(opts, grpc.Peer(&p))...)
		n.done(ctx, method, &p, err)
		if n.set == nil || attempt > len(n.set.order) || !notLeader(err) {
			return err
		}
		// Give the channel a moment to leave the node set aside.
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt) * 20 * time.Millisecond):
		}
	}
}

// notLeader reports whether err is a standby's refusal: Unavailable with
// ErrorInfo reason NOT_LEADER.
func notLeader(err error) bool {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Unavailable {
		return false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == "NOT_LEADER" {
			return true
		}
	}
	return false
}

// stream sees a stream's end (an error from RecvMsg) as the end of a call;
// streams are not told to the observer.
func (n *nodeCalls) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if n.set == nil {
		return streamer(ctx, desc, cc, method, opts...)
	}
	p := new(peer.Peer)
	cs, err := streamer(ctx, desc, cc, method, append(opts, grpc.Peer(p))...)
	if err != nil {
		return nil, err
	}
	return &nodeStream{ClientStream: cs, end: func(err error) {
		if p.Addr != nil {
			n.set.called(n.names.name(context.WithoutCancel(ctx), p.Addr.String()), err)
		}
	}}, nil
}

// nodeStream reports the error that ends a stream, once.
type nodeStream struct {
	grpc.ClientStream
	end  func(error)
	once sync.Once
}

func (s *nodeStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil && err != io.EOF {
		s.once.Do(func() { s.end(err) })
	}
	return err
}
