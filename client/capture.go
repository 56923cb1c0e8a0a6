package client

import (
	"context"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// Capture completes a pre-auth (settles part or all of it, once), retrying
// transient failures with the same request. An empty req.RequestId is
// filled with a new UUID.
func (c *Client) Capture(ctx context.Context, req *pb.CaptureRequest) (*pb.CaptureResponse, error) {
	if req.GetRequestId() == "" {
		req.RequestId = NewRequestID()
	}
	return retried(ctx, func(ctx context.Context) (*pb.CaptureResponse, error) {
		return c.Payment().Capture(ctx, req)
	})
}

// OpenBatch returns the terminal's open batch: the number its next
// transaction goes into and CloseBatch must name, and the server's running
// totals. It retries transient failures; the call changes nothing a
// terminal could see twice.
func (c *Client) OpenBatch(ctx context.Context) (*pb.GetOpenBatchResponse, error) {
	return retried(ctx, func(ctx context.Context) (*pb.GetOpenBatchResponse, error) {
		return c.Payment().GetOpenBatch(ctx, &pb.GetOpenBatchRequest{})
	})
}

// retried calls fn under the default retry policy, retrying transient
// failures, and returns its last answer.
func retried[T any](ctx context.Context, fn func(ctx context.Context) (T, error)) (T, error) {
	var resp T
	err := retry(ctx, DefaultRetryPolicy(), Transient, func(ctx context.Context) error {
		var err error
		resp, err = fn(ctx)
		return err
	})
	return resp, err
}
