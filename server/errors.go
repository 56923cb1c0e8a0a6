package server

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/store"
)

// errorDomain is the ErrorInfo domain of every posfleet error.
const errorDomain = "posfleet.dev"

// errorMapping says how a domain error becomes a gRPC status.
type errorMapping struct {
	err    error
	code   codes.Code
	reason string // ErrorInfo reason; stable, part of the protocol
}

// errorTable maps domain sentinel errors to status codes and stable reasons.
// It is the one place where domain errors meet gRPC. Domain packages append
// their rows in init functions of this package (one file per domain).
var errorTable = []errorMapping{
	{audit.ErrBadPageToken, codes.InvalidArgument, "INVALID_PAGE_TOKEN"},
	{store.ErrDiskLow, codes.Unavailable, "DISK_LOW"},
	{store.ErrCommit, codes.Unavailable, "STORAGE_UNAVAILABLE"},
}

// toStatus converts an error from a domain call into a gRPC status error.
// Status errors and context errors pass through; unknown errors become
// Internal without leaking their text.
func toStatus(ctx context.Context, logger *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	for _, m := range errorTable {
		if errors.Is(err, m.err) {
			return statusWithReason(m.code, m.reason, err.Error())
		}
	}
	logger.ErrorContext(ctx, "internal error", "err", err)
	return status.Error(codes.Internal, "internal error")
}

// statusWithReason builds a status error carrying an ErrorInfo detail.
func statusWithReason(code codes.Code, reason, msg string) error {
	st := status.New(code, msg)
	if reason == "" {
		return st.Err()
	}
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: errorDomain}); err == nil {
		return d.Err()
	}
	return st.Err()
}
