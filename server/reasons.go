package server

import (
	"context"
	"errors"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/payment"
)

// retryDelays is the RetryInfo delay of the reasons that mean "temporarily
// unavailable": the least time a client waits before sending the same
// request again. The catalogue (pb.ErrorReason) documents which reasons
// carry a RetryInfo; RATE_LIMITED carries the limiter's own delay.
var retryDelays = map[pb.ErrorReason]time.Duration{
	pb.ErrorReason_SHUTTING_DOWN:        time.Second,
	pb.ErrorReason_STORAGE_UNAVAILABLE:  time.Second,
	pb.ErrorReason_PAYMENTS_UNAVAILABLE: time.Second, // the engine reopens itself (payment_recovery.go)
	pb.ErrorReason_DISK_LOW:             30 * time.Second,
	pb.ErrorReason_NOT_LEADER:           time.Second,
}

// ErrorInfo metadata keys, documented with their reasons in pb.ErrorReason.
const (
	metaQuota           = "quota"             // RATE_LIMITED: the budget that was spent
	metaRequiredRole    = "required_role"     // INSUFFICIENT_ROLE: the method's least role
	metaOpenBatchNumber = "open_batch_number" // BATCH_MISMATCH: the batch now open
)

// refusal is a failed call as the protocol describes it: a code, a message
// and an ErrorInfo reason from the catalogue, with the reason's metadata
// and retry delay. Every ErrorInfo the server sends is built by err, so
// the catalogue test can check that each reason the server uses is in
// pb.ErrorReason.
type refusal struct {
	code     codes.Code
	reason   pb.ErrorReason
	msg      string
	metadata map[string]string
	// retryAfter is the RetryInfo delay; zero uses the reason's entry in
	// retryDelays, if any.
	retryAfter time.Duration
	// pageToken adds a BadRequest field violation for "page_token".
	pageToken bool
}

// err builds the status error.
func (r refusal) err() error {
	st := status.New(r.code, r.msg)
	details := []protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: r.reason.String(), Domain: errorDomain, Metadata: r.metadata}}
	if r.pageToken {
		details = append(details, &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: "page_token", Description: "was not issued for this listing; start again without a page token"},
		}})
	}
	wait := r.retryAfter
	if wait <= 0 {
		wait = retryDelays[r.reason]
	}
	if wait > 0 {
		// Rounded up to a millisecond: a zero delay would invite a busy loop.
		wait = max(wait.Round(time.Millisecond), time.Millisecond)
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(wait)})
	}
	if d, err := st.WithDetails(details...); err == nil {
		return d.Err()
	}
	return st.Err()
}

// refusalOf builds the refusal of a domain error matched by an errorTable
// row, with the metadata and retry delay that the error carries.
func refusalOf(m errorMapping, err error) refusal {
	r := refusal{code: m.code, reason: m.reason, msg: err.Error(), pageToken: m.reason == pb.ErrorReason_INVALID_PAGE_TOKEN}
	var bm *payment.BatchMismatchError
	if errors.As(err, &bm) {
		r.metadata = map[string]string{metaOpenBatchNumber: strconv.FormatUint(bm.Open, 10)}
	}
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		r.retryAfter = ra.RetryAfter()
	}
	if m.reason == pb.ErrorReason_RATE_LIMITED {
		// The only rate-limited domain error is the fleet's, refusing
		// registrations.
		r.metadata = map[string]string{metaQuota: "registration"}
	}
	return r
}

// pushbackKey is the trailer with which gRPC's own retries (a service
// config's retryPolicy, in every language) learn how long to wait before
// the next attempt.
const pushbackKey = "grpc-retry-pushback-ms"

// pushback returns the trailer that carries err's RetryInfo delay to
// gRPC's retries, or nil when err has none. When the call's deadline
// (ctx's) ends before the delay does, it says "-1", which tells gRPC not
// to retry: a retry could only end in DeadlineExceeded, and that would
// hide a definite refusal (DISK_LOW: nothing was decided) behind an
// uncertain one.
func pushback(ctx context.Context, err error) metadata.MD {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			wait := ri.GetRetryDelay().AsDuration()
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= wait {
				return metadata.Pairs(pushbackKey, "-1")
			}
			return metadata.Pairs(pushbackKey, strconv.FormatInt(max(wait.Milliseconds(), 1), 10))
		}
	}
	return nil
}
