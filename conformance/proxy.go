package conformance

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// frame is one message as it travels on the wire, never decoded by gRPC:
// the proxy forwards bytes and decodes a copy only to grade it.
type frame struct{ b []byte }

// rawCodec passes frames through unchanged.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	f, ok := v.(*frame)
	if !ok {
		return nil, fmt.Errorf("conformance: cannot send %T", v)
	}
	return f.b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	f, ok := v.(*frame)
	if !ok {
		return fmt.Errorf("conformance: cannot receive into %T", v)
	}
	f.b = append(f.b[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

// serverStreams are the methods whose responses are a stream; every other
// method is unary.
var serverStreams = map[string]bool{
	"/posfleet.v1.TerminalService/WatchConfig": true,
}

// proxy forwards every call to the backend server, asking the script
// before and after each whether to inject a fault.
type proxy struct {
	backend *grpc.ClientConn
	script  *script
}

// handle is the grpc.UnknownServiceHandler of the proxy's server.
func (p *proxy) handle(_ any, ss grpc.ServerStream) error {
	method, ok := grpc.MethodFromServerStream(ss)
	if !ok {
		return status.Error(codes.Internal, "conformance: no method")
	}
	ctx := ss.Context()
	var from caller
	if pr, ok := peer.FromContext(ctx); ok && pr.Addr != nil {
		from.conn = pr.Addr.String()
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			from.bearer = strings.TrimPrefix(v[0], "Bearer ")
		}
		out := metadata.MD{}
		for k, v := range md {
			// Forward the caller's metadata (the bearer credential
			// included); transport headers are the client's own.
			if k == "authorization" || !strings.HasPrefix(k, ":") && !strings.HasPrefix(k, "grpc-") && k != "content-type" && k != "user-agent" {
				out[k] = v
			}
		}
		ctx = metadata.NewOutgoingContext(ctx, out)
	}
	var req frame
	if err := ss.RecvMsg(&req); err != nil {
		return err
	}
	if serverStreams[method] {
		return p.stream(ctx, method, &req, ss, from)
	}
	call := p.script.before(method, req.b, from)
	if call.err != nil {
		return call.err
	}
	if call.answer != nil {
		b, err := proto.Marshal(call.answer)
		if err != nil {
			return status.Errorf(codes.Internal, "conformance: %v", err)
		}
		return ss.SendMsg(&frame{b: b})
	}
	if call.prepare != nil {
		if err := call.prepare(); err != nil {
			return status.Errorf(codes.Internal, "conformance: the kit's own step before this call failed: %v", err)
		}
	}
	var resp frame
	var header, trailer metadata.MD
	err := p.backend.Invoke(ctx, method, &req, &resp, grpc.ForceCodec(rawCodec{}), grpc.Header(&header), grpc.Trailer(&trailer))
	if err := p.script.after(call, resp.b, err); err != nil {
		return err
	}
	ss.SetTrailer(trailer)
	if err != nil {
		return err
	}
	if err := ss.SendHeader(header); err != nil {
		return err
	}
	return ss.SendMsg(&resp)
}

// stream forwards a server-streaming call.
func (p *proxy) stream(ctx context.Context, method string, req *frame, ss grpc.ServerStream, from caller) error {
	call := p.script.before(method, req.b, from)
	if call.err != nil {
		return call.err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The script may end the stream in the server's place (its
	// credential was replaced); ended says with what.
	var ended atomic.Pointer[error]
	st := &openStream{end: func(err error) {
		ended.CompareAndSwap(nil, &err)
		cancel()
	}}
	defer p.script.streamOpened(st, credName(from.bearer))()
	endedWith := func(err error) error {
		if e := ended.Load(); e != nil {
			return *e
		}
		return err
	}
	cs, err := p.backend.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, method, grpc.ForceCodec(rawCodec{}))
	if err != nil {
		return endedWith(err)
	}
	if err := cs.SendMsg(req); err != nil {
		return err
	}
	if err := cs.CloseSend(); err != nil {
		return err
	}
	// The server sends headers once it has accepted the watch.
	if md, err := cs.Header(); err == nil && md != nil {
		p.script.streamAccepted(call.idx)
	}
	for {
		var msg frame
		err := cs.RecvMsg(&msg)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return endedWith(err)
		}
		out, twice := p.script.pushed(msg.b)
		msg.b = out
		if err := ss.SendMsg(&msg); err != nil {
			return err
		}
		if twice {
			if err := ss.SendMsg(&msg); err != nil {
				return err
			}
		}
	}
}
