package server

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/posfleet/posfleet/server/store"
)

// readinessCheck is one condition of /readyz: nil when met.
type readinessCheck struct {
	name  string
	check func() error
}

// readinessChecks are the conditions for taking traffic, in the order
// /readyz reports them.
func (s *Server) readinessChecks() []readinessCheck {
	return []readinessCheck{
		{"serving", s.checkServing},
		{"writer", s.checkWriter},
		{"storage", s.checkStorage},
		{"disk", s.checkDisk},
		{"payments", s.checkPayments},
	}
}

// checkServing is met between the start of Serve and the start of shutdown.
func (s *Server) checkServing() error {
	s.readyMu.Lock()
	serving := s.serving
	s.readyMu.Unlock()
	switch {
	case !serving:
		return errors.New("not serving yet")
	case s.draining != nil && s.draining.Err() != nil:
		return errors.New("shutting down")
	}
	return nil
}

// checkStorage is met while the database is open and its commits succeed:
// a failed payment commit means the store could not make a write durable.
func (s *Server) checkStorage() error {
	// Writes refused for want of space are the disk check's to report.
	if err := s.eng.DB.Writable(); err != nil && !errors.Is(err, store.ErrDiskLow) {
		return err
	}
	if s.eng.Payments() != nil {
		if err := s.eng.Payments().Failure(); err != nil {
			return err
		}
	}
	return nil
}

// checkDisk is met while the data directory's filesystem has more free
// space than the reserve (always for an in-memory server).
func (s *Server) checkDisk() error {
	if s.eng.Space == nil {
		return nil
	}
	if st := s.eng.Space.Status(); st.Low {
		return fmt.Errorf("free disk space %d bytes below the reserve of %d bytes; writes are refused", st.FreeBytes, st.ReserveBytes)
	}
	return nil
}

// checkPayments is met while the payment engine is open and deciding.
func (s *Server) checkPayments() error {
	if s.eng.Payments() == nil || !s.eng.Payments().Healthy() {
		return errors.New("payment engine not deciding")
	}
	return nil
}

// HealthzHandler answers 200 while the process is alive and able to answer
// HTTP: a liveness probe. It checks nothing else, so that a full disk or a
// failed store does not get the process restarted in a loop.
func (s *Server) HealthzHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintln(w, "ok")
	})
}

// ReadyzHandler answers 200 when the server should take traffic, 503
// otherwise: a readiness probe. The body lists each check as "[+]name ok"
// or "[-]name failed: reason": serving (between start and shutdown),
// storage (database open, commits succeeding), disk (free space above the
// reserve) and payments (the payment engine deciding).
func (s *Server) ReadyzHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		var b strings.Builder
		ready := true
		for _, c := range s.readinessChecks() {
			if err := c.check(); err != nil {
				ready = false
				fmt.Fprintf(&b, "[-]%s failed: %v\n", c.name, err)
			} else {
				fmt.Fprintf(&b, "[+]%s ok\n", c.name)
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if ready {
			b.WriteString("ready\n")
		} else {
			w.WriteHeader(http.StatusServiceUnavailable)
			b.WriteString("not ready\n")
		}
		fmt.Fprint(w, b.String())
	})
}

// OpsHandler serves the operations endpoints of the metrics listener:
// /metrics, /healthz and /readyz.
func (s *Server) OpsHandler() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.MetricsHandler())
	mux.Handle("GET /healthz", s.HealthzHandler())
	mux.Handle("GET /readyz", s.ReadyzHandler())
	return mux
}
