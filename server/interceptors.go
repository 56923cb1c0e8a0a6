package server

import (
	"context"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/auth"
)

// access says who may call a method.
type access struct {
	// public methods need no credential.
	public bool
	// terminal methods need a terminal credential.
	terminal bool
	// allowSuspended lets a suspended terminal through (the handler answers
	// with a business decline instead of an error).
	allowSuspended bool
	// role is the least admin role for admin methods.
	role auth.Role
}

const (
	terminalSvc = "/posfleet.v1.TerminalService/"
	paymentSvc  = "/posfleet.v1.PaymentService/"
	adminSvc    = "/posfleet.v1.AdminService/"
)

// Authenticator checks bearer secrets. The server's fleet and token stores
// implement it.
type Authenticator interface {
	// Authenticate resolves a bearer secret presented to method into a
	// principal. It returns a status error: Unauthenticated for an unknown
	// or missing secret, PermissionDenied for a known caller that may not
	// call method, ResourceExhausted when the peer is rate limited.
	Authenticate(ctx context.Context, method string, need access, bearer string) (auth.Principal, error)
}

// bearerToken returns the credential in the "authorization: Bearer <x>"
// metadata, or "".
func bearerToken(ctx context.Context) string {
	// ValueFromIncomingContext reads the one key without copying the whole
	// metadata map, which matters on the payment hot path.
	for _, v := range metadata.ValueFromIncomingContext(ctx, "authorization") {
		if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
			return strings.TrimSpace(v[7:])
		}
	}
	return ""
}

// peerAddr returns the caller's address for logs and the audit trail.
func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		if _, in := p.Addr.(inProcessAddr); in {
			return forwardedPeer(ctx)
		}
		return p.Addr.String()
	}
	return ""
}

// authorize runs the access table, the authenticator and the caller's
// quota for one call.
func (s *Server) authorize(ctx context.Context, method string) (context.Context, error) {
	need, ok := methodAccess[method]
	if !ok {
		return nil, status.Error(codes.PermissionDenied, "method not permitted")
	}
	if need.public {
		return ctx, nil
	}
	if s.authn == nil {
		return nil, status.Error(codes.Unauthenticated, "authentication unavailable")
	}
	p, err := s.authn.Authenticate(ctx, method, need, bearerToken(ctx))
	if err != nil {
		if status.Code(err) == codes.ResourceExhausted {
			s.metrics.rateLimited(limitAuthFailures)
		}
		// A credential's first use is written before the call goes on; a
		// storage failure there is a status like any other.
		return nil, s.toStatus(ctx, err)
	}
	ctx = auth.NewContext(ctx, p)
	if err := s.quotas.take(ctx, method); err != nil {
		s.metrics.rateLimited("quota_" + string(classOf(method)))
		return nil, err
	}
	return ctx, nil
}

// unaryInterceptor recovers panics, caps deadlines, authenticates, and logs
// each call.
func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	// The pushback is measured against the caller's own deadline, not the
	// server's cap below: a client without a deadline may wait out any
	// RetryInfo delay.
	callerCtx := ctx
	defer func() {
		if r := recover(); r != nil {
			s.logger.ErrorContext(ctx, "panic in handler", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
			resp, err = nil, status.Error(codes.Internal, "internal error")
		}
		if md := pushback(callerCtx, err); md != nil {
			_ = grpc.SetTrailer(ctx, md) // best effort: the RetryInfo says it too
		}
		s.logCall(ctx, info.FullMethod, start, err)
	}()
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > s.cfg.MaxCallTimeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.MaxCallTimeout)
		defer cancel()
	}
	// Taken before authorization so that the codec's note never outlives
	// the call.
	bad := s.codec.undecodable(req)
	// Keep ctx for the deferred log when authorization fails (it returns nil).
	actx, err := s.authorize(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	if bad != nil {
		return nil, bad
	}
	ctx = actx
	return handler(ctx, req)
}

// streamInterceptor recovers panics, authenticates, and logs each stream.
func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	start := time.Now()
	ctx := ss.Context()
	defer func() {
		if r := recover(); r != nil {
			s.logger.ErrorContext(ctx, "panic in stream handler", "method", info.FullMethod, "panic", r, "stack", string(debug.Stack()))
			err = status.Error(codes.Internal, "internal error")
		}
		if md := pushback(ctx, err); md != nil {
			ss.SetTrailer(md)
		}
		s.logCall(ctx, info.FullMethod, start, err)
	}()
	actx, err := s.authorize(ctx, info.FullMethod)
	if err != nil {
		return err
	}
	// Streams end when shutdown starts (see Server.draining), with
	// Unavailable so that clients reconnect elsewhere or later.
	ctx, cancel := context.WithCancel(actx)
	defer cancel()
	defer context.AfterFunc(s.draining, cancel)()
	err = handler(srv, &wrappedStream{ServerStream: ss, ctx: ctx, codec: s.codec})
	if err != nil && s.draining.Err() != nil && ss.Context().Err() == nil {
		err = statusWithReason(codes.Unavailable, pb.ErrorReason_SHUTTING_DOWN, "server is shutting down; reconnect")
	}
	return err
}

// wrappedStream carries the authenticated context into stream handlers and
// reports undecodable messages as InvalidArgument.
type wrappedStream struct {
	grpc.ServerStream
	ctx   context.Context
	codec *requestCodec
}

func (w *wrappedStream) Context() context.Context { return w.ctx }

// RecvMsg receives a message; one the codec could not decode is an
// InvalidArgument error.
func (w *wrappedStream) RecvMsg(m any) error {
	if err := w.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return w.codec.undecodable(m)
}

// logCall logs a finished call: debug for successes, info for client errors,
// warn for server errors.
func (s *Server) logCall(ctx context.Context, method string, start time.Time, err error) {
	code := status.Code(err)
	s.metrics.refusedCall(method, err)
	level := slog.LevelDebug
	switch code {
	case codes.OK, codes.Canceled:
	case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unavailable:
		level = slog.LevelWarn
	default:
		level = slog.LevelInfo
	}
	if !s.logger.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("method", method),
		slog.String("code", code.String()),
		slog.Duration("elapsed", time.Since(start)),
		slog.String("peer", peerAddr(ctx)),
	}
	if p, ok := auth.FromContext(ctx); ok {
		attrs = append(attrs, slog.String("actor", p.Actor()))
	}
	if err != nil {
		attrs = append(attrs, slog.String("err", status.Convert(err).Message()))
	}
	s.logger.LogAttrs(ctx, level, "rpc", attrs...)
}
