package server

import (
	"errors"
	"sync"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// writerRole records the loss of the PostgreSQL database's writer role.
// On PostgreSQL one node at a time serves a database (store.OpenPostgres
// takes its writer role, fenced by an epoch). A node that loses the role
// for good (another node took over, or its lock connection stayed lost
// past the grace) must not serve again from its in-memory state: it turns
// NOT_SERVING at once, its writes fail with NOT_LEADER, and Serve shuts
// down and returns an error wrapping store.ErrFenced, so that the process
// exits non-zero and its supervisor restarts it, as a standby.
type writerRole struct {
	once sync.Once
	lost chan struct{} // closed when the role is lost
	err  error         // why; set before lost is closed
}

// loseWriterRole is the store's OnLeaderLost: the node stops serving.
func (s *Server) loseWriterRole(err error) {
	s.role.once.Do(func() {
		s.role.err = err
		s.logger.Error("this node lost the writer role of the database to another node; stopping", "err", err)
		s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
		for _, name := range serviceNames {
			s.health.SetServingStatus(name, healthpb.HealthCheckResponse_NOT_SERVING)
		}
		close(s.role.lost)
	})
}

// checkWriter is met unless the node lost the database's writer role.
func (s *Server) checkWriter() error {
	select {
	case <-s.role.lost:
		return errors.New("lost the database's writer role to another node; stopping")
	default:
		return nil
	}
}
