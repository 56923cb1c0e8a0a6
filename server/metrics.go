package server

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
)

// metrics counts calls per method and status code and sums their latency.
// Exposed in the Prometheus text format by Server.MetricsHandler.
type metrics struct {
	mu      sync.RWMutex // guards methods (the map; entries are updated atomically)
	methods map[string]*methodMetrics
}

type methodMetrics struct {
	calls   [17]atomic.Uint64 // per codes.Code (0-16)
	nanos   atomic.Uint64     // total latency
	maxNano atomic.Uint64
}

func newMetrics() *metrics { return &metrics{methods: map[string]*methodMetrics{}} }

func (m *metrics) observe(method string, code codes.Code, d time.Duration) {
	m.mu.RLock()
	mm := m.methods[method]
	m.mu.RUnlock()
	if mm == nil {
		m.mu.Lock()
		if mm = m.methods[method]; mm == nil {
			mm = &methodMetrics{}
			m.methods[method] = mm
		}
		m.mu.Unlock()
	}
	if int(code) < len(mm.calls) {
		mm.calls[code].Add(1)
	}
	ns := uint64(d.Nanoseconds())
	mm.nanos.Add(ns)
	for {
		cur := mm.maxNano.Load()
		if ns <= cur || mm.maxNano.CompareAndSwap(cur, ns) {
			break
		}
	}
}

// write renders the metrics in the Prometheus text exposition format.
func (m *metrics) write(w io.Writer) {
	m.mu.RLock()
	names := make([]string, 0, len(m.methods))
	for k := range m.methods {
		names = append(names, k)
	}
	m.mu.RUnlock()
	sort.Strings(names)
	fmt.Fprintln(w, "# HELP posfleet_rpc_total Finished RPCs by method and status code.")
	fmt.Fprintln(w, "# TYPE posfleet_rpc_total counter")
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, n := range names {
		mm := m.methods[n]
		for c := range mm.calls {
			if v := mm.calls[c].Load(); v > 0 {
				fmt.Fprintf(w, "posfleet_rpc_total{method=%q,code=%q} %d\n", n, codes.Code(c).String(), v)
			}
		}
	}
	fmt.Fprintln(w, "# HELP posfleet_rpc_seconds_sum Total time spent in RPCs by method.")
	fmt.Fprintln(w, "# TYPE posfleet_rpc_seconds_sum counter")
	for _, n := range names {
		fmt.Fprintf(w, "posfleet_rpc_seconds_sum{method=%q} %g\n", n, float64(m.methods[n].nanos.Load())/1e9)
	}
	fmt.Fprintln(w, "# HELP posfleet_rpc_seconds_max Slowest RPC by method since start.")
	fmt.Fprintln(w, "# TYPE posfleet_rpc_seconds_max gauge")
	for _, n := range names {
		fmt.Fprintf(w, "posfleet_rpc_seconds_max{method=%q} %g\n", n, float64(m.methods[n].maxNano.Load())/1e9)
	}
}

// MetricsHandler serves the server's metrics in the Prometheus text format.
func (s *Server) MetricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		s.metrics.write(w)
		if l := s.conns.Load(); l != nil {
			l.writeMetrics(w)
		}
	})
}
