package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"slices"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
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

// multiTarget builds the dial target, the resolver and the service config
// of a client of several nodes: a manual resolver hands the list to the
// pick_first policy, shuffled by it (shuffleAddressList) or in the order
// an option chose. pick_first keeps all calls, streams too, on one node
// while its connection lasts; when the connection fails or the node says
// GOAWAY, the next call connects again from the start of the list, the
// node that is gone refusing, so it lands on the next one that is up.
func multiTarget(targets []string, order func([]string) []string, sc string) (string, grpc.DialOption, string, error) {
	shuffle := order == nil
	if !shuffle {
		targets = order(targets)
	}
	eps := make([]resolver.Endpoint, len(targets))
	for i, t := range targets {
		// ServerName: the :authority and the TLS name of each node are
		// its own, as when it is dialed alone.
		eps[i] = resolver.Endpoint{Addresses: []resolver.Address{{Addr: t, ServerName: t}}}
	}
	r := manual.NewBuilderWithScheme(nodesScheme)
	r.InitialState(resolver.State{Endpoints: eps})
	var cfg map[string]any
	if err := json.Unmarshal([]byte(sc), &cfg); err != nil {
		return "", nil, "", fmt.Errorf("client: service config: %w", err)
	}
	cfg["loadBalancingConfig"] = []any{map[string]any{"pick_first": map[string]any{"shuffleAddressList": shuffle}}}
	out, err := json.Marshal(cfg)
	if err != nil {
		return "", nil, "", fmt.Errorf("client: service config: %w", err)
	}
	return nodesScheme + ":///" + strings.Join(targets, ","), grpc.WithResolvers(r), string(out), nil
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

// observe is the unary interceptor of WithNodeObserver.
func (o *options) observe(names *nodeNames) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		var p peer.Peer
		err := invoker(ctx, method, req, reply, cc, append(opts, grpc.Peer(&p))...)
		call := NodeCall{Method: method, Err: err}
		if p.Addr != nil {
			call.Node = names.name(context.WithoutCancel(ctx), p.Addr.String())
		}
		o.observer(call)
		return err
	}
}
