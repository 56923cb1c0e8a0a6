package client

import (
	"context"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// errorDomain is the ErrorInfo domain of posfleet's refusals.
const errorDomain = "posfleet.dev"

// errorInfo returns the posfleet ErrorInfo of err's status, or nil.
func errorInfo(err error) *errdetails.ErrorInfo {
	for _, d := range status.Convert(err).Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetDomain() == errorDomain {
			return ei
		}
	}
	return nil
}

// Reason returns the posfleet ErrorInfo reason of err (see pb.ErrorReason),
// or ERROR_REASON_UNSPECIFIED when err carries none or one this client
// does not know.
func Reason(err error) pb.ErrorReason {
	if err == nil {
		return pb.ErrorReason_ERROR_REASON_UNSPECIFIED
	}
	return pb.ErrorReason(pb.ErrorReason_value[errorInfo(err).GetReason()])
}

// RetryDelay returns the google.rpc.RetryInfo delay of err's status: the
// least time the server asks the client to wait before sending the request
// again. Zero when err carries none.
func RetryDelay(err error) time.Duration {
	if err == nil {
		return 0
	}
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return max(ri.GetRetryDelay().AsDuration(), 0)
		}
	}
	return 0
}

// sleepBeforeRetry waits before the next try after err: backoff (already
// jittered) or, when longer, the RetryInfo delay err carries. It returns
// false when ctx ends first, or would end before the server's delay is
// over (a try then could only be refused again).
func sleepBeforeRetry(ctx context.Context, err error, backoff time.Duration) bool {
	wait := max(backoff, RetryDelay(err))
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
		return false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
