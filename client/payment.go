package client

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// RetryPolicy says how the payment calls retry. Every retry resends the same
// request with the same request_id, which the server answers idempotently:
// a request it already decided gets the stored answer, never a second
// decision. It replaces, for the payment RPCs, the retry policy of the
// published service config (pb.ServiceConfigJSON), whose rules it follows
// and extends with RetryInfo delays and the reversal of an unknown
// outcome: each try is one call on the wire.
type RetryPolicy struct {
	// Attempts is the most tries of one request, the first included.
	Attempts int
	// AttemptTimeout bounds each try (and the caller's deadline bounds all).
	AttemptTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between tries: it starts at
	// MinBackoff, doubles up to MaxBackoff, and each wait is drawn uniformly
	// up to the current bound (full jitter).
	MinBackoff, MaxBackoff time.Duration
	// ReversalTimeout bounds the automatic reversal that follows an
	// authorization whose outcome stayed unknown, retries included. It runs
	// even when the caller's context has ended.
	ReversalTimeout time.Duration
}

// DefaultRetryPolicy returns the policy of Authorize, Reverse, Refund and
// CloseBatch: 4 tries of at most 5s each, 50ms to 1s between them, and 30s
// for an automatic reversal.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{
		Attempts:        4,
		AttemptTimeout:  5 * time.Second,
		MinBackoff:      50 * time.Millisecond,
		MaxBackoff:      time.Second,
		ReversalTimeout: 30 * time.Second,
	}
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	d := DefaultRetryPolicy()
	if p.Attempts <= 0 {
		p.Attempts = d.Attempts
	}
	if p.AttemptTimeout <= 0 {
		p.AttemptTimeout = d.AttemptTimeout
	}
	if p.MinBackoff <= 0 {
		p.MinBackoff = d.MinBackoff
	}
	if p.MaxBackoff < p.MinBackoff {
		p.MaxBackoff = max(d.MaxBackoff, p.MinBackoff)
	}
	if p.ReversalTimeout <= 0 {
		p.ReversalTimeout = d.ReversalTimeout
	}
	return p
}

// Transient reports whether err is worth retrying with the same request:
// the server was unreachable or overloaded, or the answer did not arrive in
// time (Unavailable, DeadlineExceeded, ResourceExhausted). A caller refused
// for too many failed authentications (ResourceExhausted, reason
// RATE_LIMITED, quota "authentication") is not: retrying only spends more
// of its failure budget. A call over its credential's quota is, after the
// RetryInfo delay (see RetryDelay), which the SDK's retries wait out.
func Transient(err error) bool {
	if authRateLimited(err) {
		return false
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
		return true
	}
	return false
}

// uncertain reports whether a failed call may still have been decided by the
// server: its answer was lost, late or garbled. A rate-limited caller was
// refused at authentication, before anything was decided.
func uncertain(err error) bool {
	if rateLimited(err) {
		return false
	}
	if Transient(err) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	switch status.Code(err) {
	case codes.Canceled, codes.Unknown, codes.Internal, codes.DataLoss:
		return true
	}
	return false
}

// rateLimited reports a RATE_LIMITED refusal: a quota or a failure budget
// was spent, and the call was refused before anything was decided.
func rateLimited(err error) bool {
	return status.Code(err) == codes.ResourceExhausted && Reason(err) == pb.ErrorReason_RATE_LIMITED
}

// authRateLimited reports the server's refusal of a peer whose failed
// authentications used up its budget; a valid credential never gets it.
// Servers from before the quota metadata sent no "quota" key; their
// RATE_LIMITED is taken as this one, as it was then.
func authRateLimited(err error) bool {
	if !rateLimited(err) {
		return false
	}
	q, ok := errorInfo(err).GetMetadata()["quota"]
	return !ok || q == "authentication"
}

// OutcomeUnknownError is returned by Authorize when no answer arrived: the
// server may or may not have approved the payment. The client then reversed
// it (reason TIMEOUT), so that an approval, if there was one, is cancelled
// and a request still on its way is declined when it arrives. When the
// reversal succeeded (Reversal set), the payment must be treated as not
// made. When it failed (ReversalErr set), the outcome is still open: the
// terminal must reverse the request later (ReversalRequestID gives the
// same reversal), or learn the decision by replaying the authorization.
type OutcomeUnknownError struct {
	// RequestID is the authorization's request_id.
	RequestID string
	// Err is the last error of the authorization.
	Err error
	// Reversal is the reversal's answer, nil when it failed too (then
	// ReversalErr says why, and the terminal must reverse later).
	Reversal    *pb.ReverseResponse
	ReversalErr error
}

func (e *OutcomeUnknownError) Error() string {
	if e.Reversal != nil {
		return fmt.Sprintf("client: authorization %s outcome unknown (%v); reversed: %s", e.RequestID, e.Err, e.Reversal.GetStatus())
	}
	return fmt.Sprintf("client: authorization %s outcome unknown (%v); reversal failed: %v", e.RequestID, e.Err, e.ReversalErr)
}

// Unwrap returns the authorization's last error.
func (e *OutcomeUnknownError) Unwrap() error { return e.Err }

// NewRequestID returns a random UUID (version 4) for a request_id.
func NewRequestID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("client: no randomness: " + err.Error())
	}
	return formatUUID(b, 4)
}

// ReversalRequestID returns the request_id the client uses to reverse the
// authorization with request_id original: derived from it, so that any
// retry of the reversal, even by a restarted terminal, is the same request.
// It is a UUID (version 8, from SHA-256 of original): the server refuses an
// ID whose digits could be a card number, which random hex can be by chance
// but a UUID in canonical form never is.
func ReversalRequestID(original string) string {
	sum := sha256.Sum256([]byte("posfleet reversal\x00" + original))
	return formatUUID([16]byte(sum[:16]), 8)
}

// formatUUID sets the version and the RFC 9562 variant bits in b and
// returns it in canonical form.
func formatUUID(b [16]byte, version byte) string {
	b[6] = b[6]&0x0f | version<<4
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// Authorize authorizes a payment with DefaultRetryPolicy. See
// AuthorizeWithPolicy.
func (c *Client) Authorize(ctx context.Context, req *pb.AuthorizeRequest) (*pb.AuthorizeResponse, error) {
	return c.AuthorizeWithPolicy(ctx, req, DefaultRetryPolicy())
}

// AuthorizeWithPolicy authorizes a payment (a sale, or a pre-auth when
// req.Capture is false). An empty req.RequestId is filled with a new UUID.
// Transient failures are retried with the same request_id. When no answer
// arrives — the tries are used up, the caller's context ends, or a try
// failed in a way that leaves the outcome open, even if a later try was
// refused outright — the client reverses the authorization (reason
// TIMEOUT) and returns an *OutcomeUnknownError. Should the reversal find
// the authorization decided and beyond reversal (its batch closed in the
// meantime), the client fetches the stored decision by replaying the
// request and returns it, replayed = true, as if it had arrived in time.
// Declines are answers, not errors.
func (c *Client) AuthorizeWithPolicy(ctx context.Context, req *pb.AuthorizeRequest, p RetryPolicy) (*pb.AuthorizeResponse, error) {
	p = p.withDefaults()
	if req.GetRequestId() == "" {
		req.RequestId = NewRequestID()
	}
	if err := ctx.Err(); err != nil {
		return nil, status.FromContextError(err).Err() // nothing was sent
	}
	var resp *pb.AuthorizeResponse
	// maybeDecided stays set once a try may have been decided: a later try
	// refused outright (a credential rotated meanwhile, say) does not undo
	// an approval whose answer was lost.
	maybeDecided := false
	err := retry(ctx, p, Transient, func(ctx context.Context) error {
		var err error
		resp, err = c.Payment().Authorize(ctx, req)
		if err != nil && uncertain(err) {
			maybeDecided = true
		}
		return err
	})
	if err == nil {
		return resp, nil
	}
	if !maybeDecided {
		return nil, err
	}
	if _, merr := proto.Marshal(req); merr != nil {
		// Every try failed to encode the request: nothing was sent.
		return nil, status.Errorf(codes.InvalidArgument, "client: authorization request cannot be encoded: %v", merr)
	}
	// Reverse even if the caller gave up: an approval nobody knows about
	// must not stand. The reversal is idempotent, so it retries every
	// failure that may leave its own outcome open, until ReversalTimeout.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.ReversalTimeout)
	defer cancel()
	rp := p
	rp.Attempts = 1 << 30 // until ReversalTimeout
	rev, rerr := c.reverse(rctx, &pb.ReverseRequest{
		RequestId:         ReversalRequestID(req.GetRequestId()),
		OriginalRequestId: req.GetRequestId(),
		Reason:            pb.ReversalReason_REVERSAL_REASON_TIMEOUT,
	}, rp, uncertain)
	if rev.GetStatus() == pb.ReverseStatus_REVERSE_STATUS_NOT_REVERSIBLE {
		// The authorization was decided and can no longer be reversed:
		// its replay returns the decision, which stands.
		var orig *pb.AuthorizeResponse
		if rerr = retry(rctx, rp, uncertain, func(ctx context.Context) error {
			var err error
			orig, err = c.Payment().Authorize(ctx, req)
			return err
		}); rerr == nil {
			return orig, nil
		}
	}
	return nil, &OutcomeUnknownError{RequestID: req.GetRequestId(), Err: err, Reversal: rev, ReversalErr: rerr}
}

// Reverse cancels an authorization by its request_id, retrying transient
// failures with the same request. An empty req.RequestId is filled with a
// new UUID.
func (c *Client) Reverse(ctx context.Context, req *pb.ReverseRequest) (*pb.ReverseResponse, error) {
	return c.ReverseWithPolicy(ctx, req, DefaultRetryPolicy())
}

// ReverseWithPolicy is Reverse with the retries of p (Attempts,
// AttemptTimeout and the backoff; ReversalTimeout does not apply).
func (c *Client) ReverseWithPolicy(ctx context.Context, req *pb.ReverseRequest, p RetryPolicy) (*pb.ReverseResponse, error) {
	if req.GetRequestId() == "" {
		req.RequestId = NewRequestID()
	}
	return c.reverse(ctx, req, p, Transient)
}

// reverse sends req, retrying the failures retryable accepts.
func (c *Client) reverse(ctx context.Context, req *pb.ReverseRequest, p RetryPolicy, retryable func(error) bool) (*pb.ReverseResponse, error) {
	var resp *pb.ReverseResponse
	err := retry(ctx, p.withDefaults(), retryable, func(ctx context.Context) error {
		var err error
		resp, err = c.Payment().Reverse(ctx, req)
		return err
	})
	return resp, err
}

// Refund refunds part or all of an approved sale, retrying transient
// failures with the same request. An empty req.RequestId is filled with a
// new UUID.
func (c *Client) Refund(ctx context.Context, req *pb.RefundRequest) (*pb.RefundResponse, error) {
	return c.RefundWithPolicy(ctx, req, DefaultRetryPolicy())
}

// RefundWithPolicy is Refund with the retries of p (Attempts,
// AttemptTimeout and the backoff; ReversalTimeout does not apply).
func (c *Client) RefundWithPolicy(ctx context.Context, req *pb.RefundRequest, p RetryPolicy) (*pb.RefundResponse, error) {
	if req.GetRequestId() == "" {
		req.RequestId = NewRequestID()
	}
	var resp *pb.RefundResponse
	err := retry(ctx, p.withDefaults(), Transient, func(ctx context.Context) error {
		var err error
		resp, err = c.Payment().Refund(ctx, req)
		return err
	})
	return resp, err
}

// CloseBatch closes the terminal's open batch with its own totals, retrying
// transient failures with the same request. An empty req.RequestId is
// filled with a new UUID.
func (c *Client) CloseBatch(ctx context.Context, req *pb.CloseBatchRequest) (*pb.CloseBatchResponse, error) {
	return c.CloseBatchWithPolicy(ctx, req, DefaultRetryPolicy())
}

// CloseBatchWithPolicy is CloseBatch with the retries of p (Attempts,
// AttemptTimeout and the backoff; ReversalTimeout does not apply).
func (c *Client) CloseBatchWithPolicy(ctx context.Context, req *pb.CloseBatchRequest, p RetryPolicy) (*pb.CloseBatchResponse, error) {
	if req.GetRequestId() == "" {
		req.RequestId = NewRequestID()
	}
	var resp *pb.CloseBatchResponse
	err := retry(ctx, p.withDefaults(), Transient, func(ctx context.Context) error {
		var err error
		resp, err = c.Payment().CloseBatch(ctx, req)
		return err
	})
	return resp, err
}

// retry calls fn until it succeeds, fails with an error retryable does not
// accept, the tries are used up or ctx ends; it returns the last error.
// Between tries it waits the jittered backoff or the failure's RetryInfo
// delay, whichever is longer.
func retry(ctx context.Context, p RetryPolicy, retryable func(error) bool, fn func(ctx context.Context) error) error {
	backoff := p.MinBackoff
	var err error
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, p.AttemptTimeout)
		err = fn(actx)
		cancel()
		if err == nil || !retryable(err) || attempt >= p.Attempts || ctx.Err() != nil {
			return err
		}
		if !sleepBeforeRetry(ctx, err, time.Duration(mrand.Int64N(int64(backoff))+1)) {
			return err
		}
		backoff = min(2*backoff, p.MaxBackoff)
	}
}
