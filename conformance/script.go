package conformance

import (
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// RateLimitDelay is the RetryInfo delay of the injected rate limit.
const RateLimitDelay = time.Second

// errorDomain is the ErrorInfo domain of posfleet's errors, which the
// injected ones imitate.
const errorDomain = "posfleet.dev"

// event is one call the terminal made, as the kit saw it.
type event struct {
	at     time.Time
	method string        // short name, e.g. "Authorize"
	req    proto.Message // decoded request; nil when it did not decode
	// code is what the terminal got back.
	code codes.Code
	// injected names the fault the kit played on this call; empty when the
	// call went through untouched.
	injected string
	// resp is the decoded answer of a CloseBatch that went through.
	resp proto.Message
}

// call is a call in flight between script.before and script.after.
type call struct {
	idx        int   // index in script.events
	err        error // the injected refusal, sent instead of forwarding
	dropAnswer bool  // forward, then replace the answer by an error
}

// newRequest returns an empty request message for each method the kit
// decodes, by full method name.
var newRequest = map[string]func() proto.Message{
	"/posfleet.v1.TerminalService/Register":         func() proto.Message { return &pb.RegisterRequest{} },
	"/posfleet.v1.TerminalService/Heartbeat":        func() proto.Message { return &pb.HeartbeatRequest{} },
	"/posfleet.v1.TerminalService/WatchConfig":      func() proto.Message { return &pb.WatchConfigRequest{} },
	"/posfleet.v1.TerminalService/AckConfig":        func() proto.Message { return &pb.AckConfigRequest{} },
	"/posfleet.v1.TerminalService/AckCommand":       func() proto.Message { return &pb.AckCommandRequest{} },
	"/posfleet.v1.TerminalService/VerifyMerchant":   func() proto.Message { return &pb.VerifyMerchantRequest{} },
	"/posfleet.v1.TerminalService/RotateCredential": func() proto.Message { return &pb.RotateCredentialRequest{} },
	"/posfleet.v1.PaymentService/Authorize":         func() proto.Message { return &pb.AuthorizeRequest{} },
	"/posfleet.v1.PaymentService/Reverse":           func() proto.Message { return &pb.ReverseRequest{} },
	"/posfleet.v1.PaymentService/Refund":            func() proto.Message { return &pb.RefundRequest{} },
	"/posfleet.v1.PaymentService/CloseBatch":        func() proto.Message { return &pb.CloseBatchRequest{} },
}

// script decides which faults to play and records every call. The faults,
// each played once per run:
//
//   - the first Authorize is decided by the server but its answer is lost
//     (Unavailable);
//   - the next Authorize with a new request_id never reaches the server:
//     every try gets Unavailable until the terminal reverses it;
//   - the first Heartbeat is rate limited (ResourceExhausted, RATE_LIMITED,
//     RetryInfo of RateLimitDelay);
//   - the first WatchConfig stream ends at once with Unavailable
//     (SHUTTING_DOWN), as when a server restarts;
//   - the first message pushed on a stream with remote commands in it is
//     delivered twice (heartbeat answers repeat a command until it is
//     acknowledged anyway).
type script struct {
	now func() time.Time
	// registered is closed when a Register call succeeds.
	registered chan struct{}

	mu sync.Mutex // guards the fields below
	// events holds every call, in arrival order.
	events []event
	// lostRID is the Authorize whose answer was lost; heldRID the one
	// refused until reversed, and heldReleased whether it was reversed.
	lostRID, heldRID string
	heldReleased     bool
	// reversed holds the originals named by Reverse calls so far.
	reversed   map[string]bool
	heartbeats int
	watches    int
	// duplicated says whether a pushed message with commands was sent
	// twice yet.
	duplicated bool
	// terminalID is the terminal that registered.
	terminalID string
}

func newScript(now func() time.Time) *script {
	return &script{now: now, registered: make(chan struct{}), reversed: map[string]bool{}}
}

// injected builds an error as posfleet sends it, with an ErrorInfo reason
// and, when delay > 0, a RetryInfo.
func injected(code codes.Code, reason, msg string, delay time.Duration) error {
	st := status.New(code, "conformance: "+msg)
	var d *status.Status
	var err error
	if delay > 0 {
		d, err = st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: errorDomain},
			&errdetails.RetryInfo{RetryDelay: durationpb.New(delay)})
	} else {
		d, err = st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: errorDomain})
	}
	if err == nil {
		st = d
	}
	return st.Err()
}

// before records a call and says what to do with it.
func (s *script) before(method string, body []byte) call {
	var req proto.Message
	if mk, ok := newRequest[method]; ok {
		req = mk()
		if proto.Unmarshal(body, req) != nil {
			req = nil
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := call{idx: len(s.events)}
	ev := event{at: s.now(), method: method[strings.LastIndexByte(method, '/')+1:], req: req}
	switch r := req.(type) {
	case *pb.AuthorizeRequest:
		rid := r.GetRequestId()
		switch {
		case s.lostRID == "":
			s.lostRID = rid
			c.dropAnswer = true
			ev.injected = "answer lost after the server decided"
		case s.heldRID == "" && rid != s.lostRID && !s.reversed[rid]:
			s.heldRID = rid
		}
		if rid == s.heldRID && !s.heldReleased {
			c.err = injected(codes.Unavailable, "SHUTTING_DOWN", "no answer: the request never reached the server", 0)
			ev.injected = "request lost before the server"
		}
	case *pb.ReverseRequest:
		s.reversed[r.GetOriginalRequestId()] = true
		if r.GetOriginalRequestId() == s.heldRID {
			s.heldReleased = true
		}
	case *pb.HeartbeatRequest:
		s.heartbeats++
		if s.heartbeats == 1 {
			c.err = injected(codes.ResourceExhausted, "RATE_LIMITED", "heartbeat rate limited", RateLimitDelay)
			ev.injected = "rate limited with RetryInfo"
		}
	case *pb.WatchConfigRequest:
		s.watches++
		if s.watches == 1 {
			c.err = injected(codes.Unavailable, "SHUTTING_DOWN", "stream reset: server shutting down; reconnect", 0)
			ev.injected = "stream reset"
		}
	}
	if c.err != nil {
		ev.code = status.Code(c.err)
	}
	s.events = append(s.events, ev)
	return c
}

// after records the backend's outcome of a forwarded unary call and
// returns the error to send instead of the answer, if any.
func (s *script) after(c call, resp []byte, err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ev := &s.events[c.idx]
	ev.code = status.Code(err)
	if err == nil && ev.method == "Register" && s.terminalID == "" {
		var r pb.RegisterResponse
		if proto.Unmarshal(resp, &r) == nil {
			s.terminalID = r.GetTerminalId()
			close(s.registered)
		}
	}
	if err == nil && ev.method == "CloseBatch" && !c.dropAnswer {
		var r pb.CloseBatchResponse
		if proto.Unmarshal(resp, &r) == nil {
			ev.resp = &r
		}
	}
	if c.dropAnswer && err == nil {
		ev.code = codes.Unavailable
		return injected(codes.Unavailable, "SHUTTING_DOWN", "answer lost", 0)
	}
	return nil
}

// duplicate says whether to send a pushed WatchConfig message twice: the
// first that carries commands is.
func (s *script) duplicate(msg []byte) bool {
	var r pb.WatchConfigResponse
	if proto.Unmarshal(msg, &r) != nil || len(r.GetCommands()) == 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.duplicated {
		return false
	}
	s.duplicated = true
	return true
}

// journal returns a copy of the events so far.
func (s *script) journal() []event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]event(nil), s.events...)
}
