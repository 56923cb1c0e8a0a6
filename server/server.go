package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/logsample"
)

// Server is a posfleet server: storage, domain components and the gRPC
// server in front of them. Create it with New, run it with Serve.
type Server struct {
	cfg    Config
	logger *slog.Logger
	// eng are the storage and domain engines (wire.go); the services
	// below only validate, call them and translate.
	eng     *Engines
	grpc    *grpc.Server
	health  *health.Server
	metrics *metrics
	// readyMu serializes readiness updates; serving is set by Serve once
	// health has been turned SERVING.
	readyMu sync.Mutex
	serving bool
	// draining is cancelled when shutdown starts; it ends the open streams
	// (health and config watches, reflection), which would otherwise hold
	// the graceful stop for its whole grace period.
	draining context.Context
	drain    context.CancelFunc

	// authn checks bearer credentials; nil refuses every non-public call.
	authn Authenticator
	// quotas limit each credential's calls per RPC class; nil when disabled.
	quotas *quotaLimiter
	// codec decodes requests, noting undecodable ones for the interceptors.
	codec *requestCodec
	// conns is the capped listener Serve accepts on, for the metrics; nil
	// before Serve.
	conns atomic.Pointer[limitListener]

	// role is the PostgreSQL writer role's loss, if it happens (leader.go).
	role writerRole

	closeOnce sync.Once
	closeErr  error
}

// New opens the data directory and builds a server ready to Serve.
func New(cfg Config, logger *slog.Logger) (*Server, error) {
	return NewContext(context.Background(), cfg, logger)
}

// NewContext is New with ctx bounding the opening: on PostgreSQL, a node
// waits in it as a standby while another node serves the database.
func NewContext(ctx context.Context, cfg Config, logger *slog.Logger) (_ *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// Repeated lines (a client failing the same call in a loop) are
	// sampled, with a count of those suppressed.
	logger = slog.New(logsample.New(logger.Handler(), cfg.LogSampling))
	s := &Server{cfg: cfg, logger: logger, quotas: newQuotaLimiter(cfg.Quotas), codec: newRequestCodec(), health: health.NewServer(),
		role: writerRole{lost: make(chan struct{})}}
	s.metrics = newMetrics(s)
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	if s.eng, err = openEngines(ctx, cfg, engineHooks{
		OnSpaceChange: func(bool) { s.updateReadiness() },
		OnCommit:      s.metrics.committed,
		OnLeaderLost:  s.loseWriterRole,
		// A reopened payment engine decides again: report it.
		OnPaymentsRecovered: s.paymentsRecovered,
	}, logger); err != nil {
		return nil, err
	}
	s.authn = newAuthenticator(s.eng.Fleet, s.eng.Tokens, s.eng.Audit)

	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(cfg.MaxRecvMsgSize),
		grpc.MaxSendMsgSize(cfg.MaxSendMsgSize),
		grpc.MaxConcurrentStreams(cfg.MaxConcurrentStreams),
		grpc.MaxHeaderListSize(cfg.MaxHeaderListSize),
		grpc.ForceServerCodecV2(s.codec),
		grpc.ConnectionTimeout(10 * time.Second),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:                  cfg.KeepaliveTime,
			Timeout:               cfg.KeepaliveTimeout,
			MaxConnectionIdle:     cfg.MaxConnectionIdle,
			MaxConnectionAge:      cfg.MaxConnectionAge,
			MaxConnectionAgeGrace: cfg.MaxConnectionAgeGrace,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             cfg.MinClientPingInterval,
			PermitWithoutStream: true,
		}),
		// The metrics interceptors come first so that they see the final
		// status, panics turned into Internal included.
		grpc.ChainUnaryInterceptor(s.metrics.grpc.UnaryServerInterceptor(), s.unaryInterceptor, cardNumberUnary),
		grpc.ChainStreamInterceptor(s.metrics.grpc.StreamServerInterceptor(), s.streamInterceptor, cardNumberStream),
	}
	if cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	s.grpc = grpc.NewServer(opts...)
	s.draining, s.drain = context.WithCancel(context.Background())
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	pb.RegisterTerminalServiceServer(s.grpc, &terminalService{s: s})
	pb.RegisterPaymentServiceServer(s.grpc, &paymentService{s: s})
	pb.RegisterAdminServiceServer(s.grpc, &adminService{s: s})
	s.metrics.grpc.InitializeMetrics(s.grpc)
	return s, nil
}

// AdminTokenPath returns the file holding the generated bootstrap admin
// token, or "" when the token came from the configuration.
func (s *Server) AdminTokenPath() string { return s.eng.adminTokenPath }

// Engines returns the server's storage and domain engines, for front ends
// beside the gRPC services (an operator console). They are closed with the
// server.
func (s *Server) Engines() *Engines { return s.eng }

// serviceNames are the services whose health is reported.
var serviceNames = []string{
	pb.TerminalService_ServiceDesc.ServiceName,
	pb.PaymentService_ServiceDesc.ServiceName,
	pb.AdminService_ServiceDesc.ServiceName,
}

// Serve serves gRPC on lis, within the configured connection caps, until
// ctx is cancelled, then shuts down: health
// turns NOT_SERVING, new calls are refused, in-flight calls get
// Config.ShutdownGrace to finish, and storage is flushed and closed. It
// returns nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for _, name := range serviceNames {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	ll := newLimitListener(lis, s.cfg.MaxConnections, s.cfg.MaxConnectionsPerPeer, s.logger)
	s.conns.Store(ll)
	lis = ll
	s.readyMu.Lock()
	s.serving = true
	s.readyMu.Unlock()
	s.updateReadiness()
	errc := make(chan error, 1)
	go func() { errc <- s.grpc.Serve(lis) }()
	s.logger.Info("serving", "addr", lis.Addr().String(), "tls", s.cfg.TLS != nil)

	var serveErr error
	select {
	case <-ctx.Done():
		s.shutdownGRPC()
		<-errc
	case <-s.role.lost:
		s.shutdownGRPC()
		<-errc
		serveErr = s.role.err
	case serveErr = <-errc:
		if errors.Is(serveErr, grpc.ErrServerStopped) {
			serveErr = nil
		}
		s.shutdownGRPC()
	}
	return errors.Join(serveErr, s.Close())
}

// updateReadiness reports the overall and payment health from the disk
// space: NOT_SERVING while writes are refused for want of space, SERVING
// again once it returns (for payments, only if the engine is healthy).
func (s *Server) updateReadiness() {
	s.readyMu.Lock()
	defer s.readyMu.Unlock()
	if !s.serving || s.eng.Space == nil {
		return
	}
	status := healthpb.HealthCheckResponse_SERVING
	if s.eng.Space.Status().Low {
		status = healthpb.HealthCheckResponse_NOT_SERVING
	}
	s.health.SetServingStatus("", status)
	if status == healthpb.HealthCheckResponse_SERVING && !s.eng.Payments().Healthy() {
		status = healthpb.HealthCheckResponse_NOT_SERVING
	}
	s.health.SetServingStatus(pb.PaymentService_ServiceDesc.ServiceName, status)
}

// privateDir creates dir, or makes an existing one, private to its owner:
// the database files in it hold the server's identity signing key and
// Badger creates them readable by everyone, so only the directory's mode
// keeps them private. MkdirAll leaves an existing directory's mode alone
// (one made by hand, or a mounted volume).
func privateDir(dir string, logger *slog.Logger) error {
	if err := mkdirDurable(dir, 0o700); err != nil {
		return fmt.Errorf("server: create data dir: %w", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("server: data dir: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("server: data dir %s is readable by others (%v) and cannot be made private: %w", dir, st.Mode().Perm(), err)
		}
		logger.Warn("data dir was readable by others; made it private to its owner", "dir", dir, "was", st.Mode().Perm().String())
	}
	return nil
}

// shutdownGRPC stops the gRPC server: NOT_SERVING, graceful stop, and a hard
// stop when the grace period runs out.
func (s *Server) shutdownGRPC() {
	s.logger.Info("shutting down", "grace", s.cfg.ShutdownGrace)
	s.health.Shutdown() // tells health watchers NOT_SERVING first
	s.drain()
	// Config watch streams live until the terminal leaves; end them so
	// that the graceful stop below waits only for ordinary calls.
	s.eng.Config.CloseWatches()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	t := time.NewTimer(s.cfg.ShutdownGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.logger.Warn("grace period over, cutting off remaining calls")
		s.grpc.Stop()
		<-done
	}
}

// Close releases the domain components, the audit trail and the database. It
// is called by Serve; call it directly only for a server that never served.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if s.grpc != nil {
			s.grpc.Stop()
		}
		if s.eng != nil {
			s.closeErr = s.eng.Close()
		}
		if s.closeErr == nil {
			s.logger.Info("storage closed")
		}
	})
	return s.closeErr
}
