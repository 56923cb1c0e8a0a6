package conformance

import (
	"crypto/sha256"
	"encoding/hex"
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

// GoawayRetryDelay is the RetryInfo delay of the Unavailable
// (SHUTTING_DOWN) that answers the call in flight when the kit recycles a
// connection.
const GoawayRetryDelay = 300 * time.Millisecond

// BadHeartbeatInterval is the heartbeat_interval of the config pushed to
// be rejected: below the protocol's minimum of 5 seconds.
const BadHeartbeatInterval = time.Second

// rejectedHeader is the receipt header of the config the kit publishes to
// be pushed with bad settings; the proxy recognises it by that.
const rejectedHeader = "Conformance lab (to be rejected)"

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
	// resp is the decoded answer of a CloseBatch that went through, or
	// the answer the kit gave in the server's place (a Refund).
	resp proto.Message
	// cred names the bearer credential the call carried (credName); empty
	// for none. issued names the credential a delivered Register or
	// RotateCredential answer handed out.
	cred, issued string
	// conn is the terminal's end of the connection the call came on.
	conn string
	// accepted says the server accepted the call: answered it without
	// error, or sent a stream's headers.
	accepted bool
	// streams is how many WatchConfig streams were open when the call
	// arrived.
	streams int
	// reason is the ErrorInfo reason of what the terminal got back;
	// meta its metadata.
	reason string
	meta   map[string]string
}

// caller is what the proxy knows of a call's sender.
type caller struct {
	bearer string // the bearer credential, never logged or reported
	conn   string // the terminal's end of the connection
}

// call is a call in flight between script.before and script.after.
type call struct {
	idx        int   // index in script.events
	err        error // the injected refusal, sent instead of forwarding
	dropAnswer bool  // forward, then replace the answer by an error
	// answer, when set, is sent instead of forwarding (the kit answers in
	// the server's place).
	answer proto.Message
	// prepare, when set, runs before the call is forwarded (the kit plays
	// the operator first).
	prepare func() error
	// goaway: forward, then recycle the connection (GOAWAY) and answer
	// Unavailable (SHUTTING_DOWN) instead.
	goaway bool
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
	"/posfleet.v1.PaymentService/GetOpenBatch":      func() proto.Message { return &pb.GetOpenBatchRequest{} },
}

// script decides which faults to play and records every call. The faults,
// each played once per run and only when its scenario is selected:
//
//   - lost-register: the first Register is carried out but its answer is
//     lost (Unavailable);
//   - lost-answer: the first Authorize is decided by the server but its
//     answer is lost (Unavailable);
//   - unanswered: the next Authorize with a new request_id never reaches
//     the server: every try gets Unavailable until the terminal reverses it;
//   - goaway: the next Authorize with a new request_id is decided, then
//     its connection is recycled (GOAWAY) and the call answered
//     Unavailable (SHUTTING_DOWN) with a RetryInfo of GoawayRetryDelay;
//   - rate-limit: the first Heartbeat is rate limited (ResourceExhausted,
//     RATE_LIMITED, RetryInfo of RateLimitDelay);
//   - stream-reset: the first WatchConfig stream ends at once with
//     Unavailable (SHUTTING_DOWN), as when a server restarts;
//   - command: the first message pushed on a stream with remote commands
//     in it is delivered twice (heartbeat answers repeat a command until it
//     is acknowledged anyway);
//   - rejected-config: the config the kit publishes first is pushed with a
//     heartbeat_interval below the protocol's minimum;
//   - rotation: once a WatchConfig stream is open, the kit queues a
//     ROTATE_CREDENTIAL command (see operate); the first RotateCredential
//     is carried out but its answer is lost; once the new credential is
//     first used, streams opened with the old one end with
//     Unauthenticated (CREDENTIAL_INVALID);
//   - tombstone: the first Refund is declined with 12, the sale reversed,
//     in the server's place (repeats of its request_id get the same
//     answer, replayed);
//   - batch-mismatch: before the first CloseBatch is forwarded, the kit
//     rebinds the terminal to another store of the merchant, so that the
//     server closes the batch itself and refuses the close with
//     BATCH_MISMATCH.
type script struct {
	now func() time.Time
	// plays holds the selected scenario IDs.
	plays map[string]bool
	// running is closed when the server first accepts a call with a
	// credential: the terminal has registered and got the answer.
	running chan struct{}
	// rejectAcked is closed when the terminal acknowledges the version
	// pushed with bad settings; rotated when a credential issued by
	// RotateCredential is first used in an accepted call; watching when
	// the server first accepts a WatchConfig stream.
	rejectAcked, rotated, watching chan struct{}
	// recycle sends GOAWAY on the connection a call came on; set by Run.
	recycle func(conn string)
	// rebind reads the terminal's open batch with its credential bearer
	// and moves the terminal to another store; set by Run.
	rebind func(bearer string) error

	mu sync.Mutex // guards the fields below
	// events holds every call, in arrival order.
	events []event
	// lostRID is the Authorize whose answer was lost; heldRID the one
	// refused until reversed, and heldReleased whether it was reversed;
	// goawayRID the one answered by a connection recycling.
	lostRID, heldRID, goawayRID string
	heldReleased                bool
	// reversed holds the originals named by Reverse calls so far.
	reversed   map[string]bool
	heartbeats int
	watches    int
	// duplicated says whether a pushed message with commands was sent
	// twice yet.
	duplicated bool
	// terminalID is the terminal that registered; isRunning says whether
	// running is closed.
	terminalID string
	isRunning  bool
	// isWatching says whether watching is closed.
	isWatching bool
	// registers counts Register calls; the first one's answer is lost.
	registers int
	// rejectVersion is the version pushed with bad settings, 0 before.
	rejectVersion uint64
	// rotations counts RotateCredential calls; oldCred is the credential
	// the first one carried (oldBearer the secret itself, kept in memory
	// for the probe that it stopped working), newCreds every credential a
	// rotation issued, usedNew whether one of them was used yet.
	rotations int
	oldCred   string
	oldBearer string
	newCreds  map[string]bool
	usedNew   bool
	// streams are the WatchConfig streams open now, by the credential
	// they were opened with.
	streams map[*openStream]string
	// refundRID is the Refund declined in the server's place, refundResp
	// its answer.
	refundRID  string
	refundResp *pb.RefundResponse
	// closes counts CloseBatch calls; the first one is preceded by the
	// rebind. closedUnder is the batch the server closed after it, with
	// the server's totals, read just before.
	closes      int
	closedUnder *pb.GetOpenBatchResponse
}

// openStream is one WatchConfig stream in flight in the proxy.
type openStream struct {
	// end ends the stream with err instead of what the backend sends.
	end func(err error)
}

func newScript(now func() time.Time, ids []string) *script {
	s := &script{
		now: now, plays: map[string]bool{},
		running: make(chan struct{}), rejectAcked: make(chan struct{}), rotated: make(chan struct{}), watching: make(chan struct{}),
		reversed: map[string]bool{}, newCreds: map[string]bool{}, streams: map[*openStream]string{},
	}
	for _, id := range ids {
		s.plays[id] = true
	}
	return s
}

// credName names a bearer credential in the journal and the report
// without revealing it: the first 12 hex digits of its SHA-256.
func credName(bearer string) string {
	if bearer == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(bearer))
	return hex.EncodeToString(sum[:6])
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
func (s *script) before(method string, body []byte, from caller) call {
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
	ev := event{at: s.now(), method: method[strings.LastIndexByte(method, '/')+1:], req: req,
		cred: credName(from.bearer), conn: from.conn, streams: len(s.streams)}
	switch r := req.(type) {
	case *pb.AuthorizeRequest:
		s.beforeAuthorize(r.GetRequestId(), &c, &ev)
	case *pb.ReverseRequest:
		s.reversed[r.GetOriginalRequestId()] = true
		if r.GetOriginalRequestId() == s.heldRID {
			s.heldReleased = true
		}
	case *pb.HeartbeatRequest:
		s.heartbeats++
		if s.heartbeats == 1 && s.plays[IDRateLimit] {
			c.err = injected(codes.ResourceExhausted, "RATE_LIMITED", "heartbeat rate limited", RateLimitDelay)
			ev.injected = "rate limited with RetryInfo"
		}
	case *pb.WatchConfigRequest:
		s.watches++
		if s.watches == 1 && s.plays[IDStreamReset] {
			c.err = injected(codes.Unavailable, "SHUTTING_DOWN", "stream reset: server shutting down; reconnect", 0)
			ev.injected = "stream reset"
		}
	case *pb.RegisterRequest:
		s.registers++
		if s.registers == 1 && s.plays[IDLostRegister] {
			c.dropAnswer = true
			ev.injected = "answer lost after the server registered"
		}
	case *pb.RotateCredentialRequest:
		s.rotations++
		if s.rotations == 1 {
			s.oldCred, s.oldBearer = ev.cred, from.bearer
			if s.plays[IDRotation] {
				c.dropAnswer = true
				ev.injected = "answer lost after the server rotated"
			}
		}
	case *pb.RefundRequest:
		s.beforeRefund(r, &c, &ev)
	case *pb.CloseBatchRequest:
		s.closes++
		if s.closes == 1 && s.plays[IDBatchMismatch] && s.rebind != nil {
			c.prepare = func() error { return s.rebind(from.bearer) }
			ev.injected = "terminal rebound to another store first"
		}
	}
	if c.err != nil {
		ev.code = status.Code(c.err)
	}
	s.events = append(s.events, ev)
	return c
}

// beforeAuthorize picks the Authorize faults; s.mu is held.
func (s *script) beforeAuthorize(rid string, c *call, ev *event) {
	fresh := rid != s.lostRID && rid != s.heldRID && rid != s.goawayRID && !s.reversed[rid]
	switch {
	case s.plays[IDLostAnswer] && s.lostRID == "":
		s.lostRID = rid
		c.dropAnswer = true
		ev.injected = "answer lost after the server decided"
	case s.plays[IDUnanswered] && s.heldRID == "" && fresh:
		s.heldRID = rid
	case s.plays[IDGoaway] && s.goawayRID == "" && fresh && (s.heldRID != "" || !s.plays[IDUnanswered]):
		s.goawayRID = rid
		c.goaway = true
		ev.injected = "connection recycled (GOAWAY) after the server decided"
	}
	if rid == s.heldRID && !s.heldReleased {
		c.err = injected(codes.Unavailable, "SHUTTING_DOWN", "no answer: the request never reached the server", 0)
		ev.injected = "request lost before the server"
	}
}

// beforeRefund declines the first Refund in the server's place; s.mu is
// held.
func (s *script) beforeRefund(r *pb.RefundRequest, c *call, ev *event) {
	if !s.plays[IDTombstone] {
		return
	}
	switch {
	case s.refundRID == "":
		s.refundRID = r.GetRequestId()
		s.refundResp = &pb.RefundResponse{
			RefundId: "R" + strings.Repeat("0", 31) + "1", Decision: pb.Decision_DECISION_DECLINED, ResponseCode: "12",
			Message: "invalid transaction: the sale was reversed (conformance)", RemainingRefundable: proto.CloneOf(r.GetAmount()),
		}
		if m := s.refundResp.RemainingRefundable; m != nil {
			m.MinorUnits = 0
		}
		c.answer = s.refundResp
		ev.injected = "declined 12 in the server's place: the sale was reversed"
	case r.GetRequestId() == s.refundRID:
		replay := proto.CloneOf(s.refundResp)
		replay.Replayed = true
		c.answer = replay
		ev.injected = "declined 12 again (replay)"
	default:
		return
	}
	ev.resp = c.answer
}

// after records the backend's outcome of a forwarded unary call and
// returns the error to send instead of the answer, if any.
func (s *script) after(c call, resp []byte, err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ev := &s.events[c.idx]
	ev.code = status.Code(err)
	if ei := errorInfoOf(err); ei != nil {
		ev.reason, ev.meta = ei.GetReason(), ei.GetMetadata()
	}
	if err == nil && ev.method == "Register" {
		var r pb.RegisterResponse
		if proto.Unmarshal(resp, &r) == nil {
			ev.issued = credName(r.GetCredential())
			s.terminalID = r.GetTerminalId()
		}
	}
	if err == nil && ev.method == "RotateCredential" {
		var r pb.RotateCredentialResponse
		if proto.Unmarshal(resp, &r) == nil {
			ev.issued = credName(r.GetCredential())
			if !c.dropAnswer {
				s.newCreds[ev.issued] = true
			}
		}
	}
	if err == nil {
		s.accepted(ev)
	}
	if err == nil && !c.dropAnswer && (ev.method == "CloseBatch" || ev.method == "Refund") {
		var r proto.Message = &pb.CloseBatchResponse{}
		if ev.method == "Refund" {
			r = &pb.RefundResponse{}
		}
		if proto.Unmarshal(resp, r) == nil {
			ev.resp = r
		}
	}
	if err == nil && ev.method == "AckConfig" && s.rejectVersion != 0 {
		if a, ok := ev.req.(*pb.AckConfigRequest); ok && a.GetVersion() == s.rejectVersion {
			select {
			case <-s.rejectAcked:
			default:
				close(s.rejectAcked)
			}
		}
	}
	if c.dropAnswer && err == nil {
		ev.code, ev.reason = codes.Unavailable, "SHUTTING_DOWN"
		return injected(codes.Unavailable, "SHUTTING_DOWN", "answer lost", 0)
	}
	if c.goaway && err == nil {
		ev.code, ev.reason = codes.Unavailable, "SHUTTING_DOWN"
		if s.recycle != nil {
			s.recycle(ev.conn)
		}
		return injected(codes.Unavailable, "SHUTTING_DOWN", "server draining: reconnect and retry", GoawayRetryDelay)
	}
	return nil
}

// accepted notes that the server accepted the call ev; s.mu is held. The
// first accepted call with a rotated credential revokes the old one:
// streams opened with it end, as the server ends them.
func (s *script) accepted(ev *event) {
	ev.accepted = true
	if ev.cred != "" && !s.isRunning {
		s.isRunning = true
		close(s.running)
	}
	if ev.cred == "" || !s.newCreds[ev.cred] || s.usedNew {
		return
	}
	s.usedNew = true
	for st, cred := range s.streams {
		if cred != ev.cred {
			st.end(injected(codes.Unauthenticated, "CREDENTIAL_INVALID", "the credential this stream was opened with was replaced", 0))
		}
	}
	close(s.rotated)
}

// streamAccepted notes that the server accepted the WatchConfig call
// journaled at idx (it sent its headers).
func (s *script) streamAccepted(idx int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.isWatching {
		s.isWatching = true
		close(s.watching)
	}
	s.accepted(&s.events[idx])
}

// errorInfoOf returns the ErrorInfo of err's status, or nil.
func errorInfoOf(err error) *errdetails.ErrorInfo {
	for _, d := range status.Convert(err).Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			return ei
		}
	}
	return nil
}

// streamOpened records a WatchConfig stream carrying credential cred;
// the returned function records its end.
func (s *script) streamOpened(st *openStream, cred string) (closed func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.streams[st] = cred
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.streams, st)
	}
}

// pushed returns a pushed WatchConfig message as the kit sends it on,
// and whether to send it twice: the first that carries commands is
// (heartbeat answers repeat a command until it is acknowledged anyway);
// the config the kit published to be rejected gets a heartbeat_interval
// below the protocol's minimum.
func (s *script) pushed(msg []byte) (out []byte, twice bool) {
	var r pb.WatchConfigResponse
	if proto.Unmarshal(msg, &r) != nil {
		return msg, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out = msg
	if s.plays[IDRejected] && r.GetSettings().GetReceiptHeader() == rejectedHeader {
		r.Settings.HeartbeatInterval = durationpb.New(BadHeartbeatInterval)
		if b, err := proto.Marshal(&r); err == nil {
			out = b
			s.rejectVersion = r.GetVersion()
		}
	}
	if len(r.GetCommands()) == 0 || s.duplicated || !s.plays[IDCommand] {
		return out, false
	}
	s.duplicated = true
	return out, true
}

// journal returns a copy of the events so far.
func (s *script) journal() []event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]event(nil), s.events...)
}
