package server

import (
	"sync"
	"sync/atomic"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// requestCodec is the server's message codec: grpc-go's proto codec, except
// that a request that cannot be decoded is the caller's fault, not the
// server's. grpc-go turns any Unmarshal error into Internal (rpc_util.go
// recv, and the unary decode in server.go), before any interceptor runs, so
// the codec cannot return the error itself: it resets the message, notes
// the failure against it, and reports success; the interceptors then answer
// InvalidArgument with a BadRequest detail (see undecodable). It is safe for
// concurrent use.
type requestCodec struct {
	encoding.CodecV2
	// failed holds the decode error of each message the codec could not
	// fill, until an interceptor takes it.
	failed sync.Map // map[any]error
	// pending counts the entries of failed, so that the common case (no
	// failure in flight) costs one atomic load per call.
	pending atomic.Int64
}

func newRequestCodec() *requestCodec {
	return &requestCodec{CodecV2: encoding.GetCodecV2("proto")}
}

// Unmarshal implements encoding.CodecV2.
func (c *requestCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return err
	}
	proto.Reset(m)
	c.pending.Add(1)
	c.failed.Store(v, err)
	return nil
}

// undecodable returns an InvalidArgument status error when msg could not be
// decoded, and forgets it.
func (c *requestCodec) undecodable(msg any) error {
	if c == nil || msg == nil || c.pending.Load() == 0 {
		return nil
	}
	if _, ok := c.failed.LoadAndDelete(msg); !ok {
		return nil
	}
	c.pending.Add(-1)
	st, err := status.New(codes.InvalidArgument, "request message cannot be decoded").WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "request", Description: "not a valid protobuf encoding of the request message"}},
	})
	if err != nil {
		return status.Error(codes.InvalidArgument, "request message cannot be decoded")
	}
	return st.Err()
}
