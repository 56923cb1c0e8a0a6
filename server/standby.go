package server

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// Standby answers gRPC on a node that waits, as a hot standby, for the
// writer role of its PostgreSQL database (Config.OnStandby): health is
// NOT_SERVING, and every other call is refused with Unavailable, reason
// NOT_LEADER and a RetryInfo, so that terminals move to the serving node
// (the Go SDK sets a node answering Unavailable aside). Once the role is
// taken, Stop it and Serve the real server on the same Handoff.
type Standby struct {
	grpc *grpc.Server
	done chan struct{}
}

// errStandby is the refusal of every call to a standby.
var errStandby = statusWithReason(codes.Unavailable, pb.ErrorReason_NOT_LEADER,
	"this node is a standby: another node serves this database; try another node")

// StartStandby serves lis as a standby until Stop. cfg gives the TLS
// settings and message limits.
func StartStandby(lis net.Listener, cfg Config, logger *slog.Logger) *Standby {
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(cfg.MaxRecvMsgSize),
		grpc.MaxConcurrentStreams(cfg.MaxConcurrentStreams),
		grpc.UnknownServiceHandler(func(any, grpc.ServerStream) error { return errStandby }),
	}
	if cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	sb := &Standby{grpc: grpc.NewServer(opts...), done: make(chan struct{})}
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	for _, name := range serviceNames {
		hs.SetServingStatus(name, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	healthpb.RegisterHealthServer(sb.grpc, hs)
	go func() {
		defer close(sb.done)
		if err := sb.grpc.Serve(lis); err != nil {
			logger.Warn("standby gRPC server stopped", "err", err)
		}
	}()
	logger.Info("answering as a standby", "addr", lis.Addr().String())
	return sb
}

// Stop closes the standby's connections (clients reconnect, to this node
// or another) and returns when it stopped.
func (sb *Standby) Stop() {
	sb.grpc.Stop()
	<-sb.done
}

// StandbyOpsHandler serves the operations endpoints while the node waits
// as a standby: /healthz answers 200 (the process is alive: no restart),
// /readyz and /metrics 503 (take no traffic).
func StandbyOpsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	notReady := func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, "[-]writer failed: standby: another node serves this database\nnot ready\n")
	}
	mux.HandleFunc("GET /readyz", notReady)
	mux.HandleFunc("GET /metrics", notReady)
	return mux
}

// Handoff shares one listener between the servers that answer on it in
// turn (a Standby, then the Server): each Listener view accepts from it
// until the view is closed, which leaves the listener open for the next.
// Close closes the listener itself.
type Handoff struct {
	lis   net.Listener
	conns chan net.Conn
	stop  chan struct{}
	done  chan struct{} // closed when accepting failed (err) or Close
	err   error
	once  sync.Once
}

// NewHandoff starts accepting on lis.
func NewHandoff(lis net.Listener) *Handoff {
	h := &Handoff{lis: lis, conns: make(chan net.Conn), stop: make(chan struct{}), done: make(chan struct{})}
	go h.accept()
	return h
}

func (h *Handoff) accept() {
	defer close(h.done)
	for {
		c, err := h.lis.Accept()
		if err != nil {
			h.err = err
			return
		}
		select {
		case h.conns <- c:
		case <-h.stop:
			c.Close()
			h.err = net.ErrClosed
			return
		}
	}
}

// Listener returns a new view of the listener.
func (h *Handoff) Listener() net.Listener {
	return &handoffView{h: h, closed: make(chan struct{})}
}

// Close closes the listener and every view's accepting.
func (h *Handoff) Close() error {
	var err error
	h.once.Do(func() {
		close(h.stop)
		err = h.lis.Close()
		<-h.done
	})
	return err
}

// handoffView is one server's view of a Handoff.
type handoffView struct {
	h      *Handoff
	closed chan struct{}
	once   sync.Once
}

func (v *handoffView) Accept() (net.Conn, error) {
	select {
	case c := <-v.h.conns:
		return c, nil
	case <-v.closed:
		return nil, net.ErrClosed
	case <-v.h.done:
		return nil, v.h.err
	}
}

func (v *handoffView) Close() error {
	v.once.Do(func() { close(v.closed) })
	return nil
}

func (v *handoffView) Addr() net.Addr { return v.h.lis.Addr() }
