package loadgen

import (
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/posfleet/posfleet/client"
)

// Cluster counts a run's calls per target node and the moves of its
// connections between nodes, for a run against several nodes. Dial
// connection i with client.WithNodeObserver(c.Observer(i)) (and
// client.WithTargetIndex(i) to spread the connections in turn), and
// attach Result to the run with Run.SetCluster. It is safe for concurrent
// use.
type Cluster struct {
	targets []string
	index   map[string]int // read only after NewCluster
	// per has one entry per target and a last one for calls that reached
	// no node (or, never expected, a node not in the list).
	per []targetCounts
	// last is the index in per of the node of each connection's latest
	// call that reached one, -1 before the first.
	last  []atomic.Int64
	moves atomic.Int64
}

// targetCounts are one target's counters.
type targetCounts struct {
	requests, errors, movesIn, movesOut atomic.Int64
}

// NewCluster returns the counters of a run against targets over conns
// connections.
func NewCluster(targets []string, conns int) *Cluster {
	c := &Cluster{
		targets: targets,
		index:   make(map[string]int, len(targets)),
		per:     make([]targetCounts, len(targets)+1),
		last:    make([]atomic.Int64, max(conns, 0)),
	}
	for i, t := range targets {
		c.index[t] = i
	}
	for i := range c.last {
		c.last[i].Store(-1)
	}
	return c
}

// Observer returns the node observer of connection conn.
func (c *Cluster) Observer(conn int) func(client.NodeCall) {
	return func(nc client.NodeCall) { c.observe(conn, nc) }
}

func (c *Cluster) observe(conn int, nc client.NodeCall) {
	i, ok := c.index[nc.Node]
	if !ok {
		i = len(c.targets)
	}
	c.per[i].requests.Add(1)
	if nc.Err != nil {
		c.per[i].errors.Add(1)
	}
	if !ok || conn < 0 || conn >= len(c.last) {
		return
	}
	if prev := c.last[conn].Swap(int64(i)); prev >= 0 && prev != int64(i) {
		c.moves.Add(1)
		c.per[prev].movesOut.Add(1)
		c.per[i].movesIn.Add(1)
	}
}

// Result returns the counts so far.
func (c *Cluster) Result() *ClusterResult {
	r := &ClusterResult{Moves: c.moves.Load()}
	conns := make([]int, len(c.targets))
	for i := range c.last {
		if n := c.last[i].Load(); n >= 0 {
			conns[n]++
		}
	}
	for i, t := range c.targets {
		p := &c.per[i]
		r.Targets = append(r.Targets, TargetResult{
			Target:      t,
			Requests:    p.requests.Load(),
			Errors:      p.errors.Load(),
			MovesIn:     p.movesIn.Load(),
			MovesOut:    p.movesOut.Load(),
			Connections: conns[i],
		})
	}
	r.Unreached = c.per[len(c.targets)].requests.Load()
	return r
}

// ClusterResult is how a run against several nodes used them.
type ClusterResult struct {
	// Targets are the nodes, in the order of --target.
	Targets []TargetResult `json:"targets"`
	// Moves counts the times a connection's call landed on another node
	// than its previous call: a terminal following the cluster.
	Moves int64 `json:"moves"`
	// Unreached counts the calls that failed before reaching any node.
	Unreached int64 `json:"unreached"`
}

// TargetResult is one node's share of a run.
type TargetResult struct {
	Target string `json:"target"`
	// Requests counts the calls (each try of a retried payment) that
	// reached the node, Errors those of them that failed.
	Requests int64 `json:"requests"`
	Errors   int64 `json:"errors"`
	// MovesIn and MovesOut count the connections that moved to and away
	// from the node.
	MovesIn  int64 `json:"moves_in"`
	MovesOut int64 `json:"moves_out"`
	// Connections counts the connections whose latest call went to the
	// node.
	Connections int `json:"connections"`
}

// writeCluster writes the per-node table of the summary.
func writeCluster(b *strings.Builder, cl *ClusterResult) {
	fmt.Fprintf(b, "\ntargets: %d moves between nodes, %d calls reached no node\n", cl.Moves, cl.Unreached)
	fmt.Fprintf(b, "  %-28s %10s %8s %9s %10s %11s\n", "target", "requests", "errors", "moves_in", "moves_out", "connections")
	for _, t := range cl.Targets {
		fmt.Fprintf(b, "  %-28s %10d %8d %9d %10d %11d\n", t.Target, t.Requests, t.Errors, t.MovesIn, t.MovesOut, t.Connections)
	}
}
