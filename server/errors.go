package server

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/configpush"
	"github.com/posfleet/posfleet/server/fleet"
	"github.com/posfleet/posfleet/server/operator"
	"github.com/posfleet/posfleet/server/payment"
	"github.com/posfleet/posfleet/server/store"
	"github.com/posfleet/posfleet/server/webhook"
)

// errorDomain is the ErrorInfo domain of every posfleet error.
const errorDomain = "posfleet.dev"

// errorMapping says how a domain error becomes a gRPC status.
type errorMapping struct {
	err    error
	code   codes.Code
	reason pb.ErrorReason // ErrorInfo reason; stable, part of the protocol
}

// errorTable maps domain sentinel errors to status codes and stable
// reasons. It is the one place where domain errors meet gRPC; toStatus reads
// it top to bottom and the first row the error matches wins.
var errorTable = []errorMapping{
	// Storage and audit.
	{audit.ErrBadPageToken, codes.InvalidArgument, pb.ErrorReason_INVALID_PAGE_TOKEN},
	{store.ErrDiskLow, codes.Unavailable, pb.ErrorReason_DISK_LOW},
	{store.ErrFenced, codes.Unavailable, pb.ErrorReason_NOT_LEADER}, // before ErrCommit, which a fenced commit also is
	{store.ErrCommit, codes.Unavailable, pb.ErrorReason_STORAGE_UNAVAILABLE},
	{store.ErrUnsupported, codes.FailedPrecondition, pb.ErrorReason_BACKUP_UNSUPPORTED},

	// Fleet and admin tokens.
	{fleet.ErrMerchantExists, codes.AlreadyExists, pb.ErrorReason_MERCHANT_EXISTS},
	{fleet.ErrMerchantNotFound, codes.NotFound, pb.ErrorReason_MERCHANT_NOT_FOUND},
	{fleet.ErrStoreExists, codes.AlreadyExists, pb.ErrorReason_STORE_EXISTS},
	{fleet.ErrStoreNotFound, codes.NotFound, pb.ErrorReason_STORE_NOT_FOUND},
	{fleet.ErrTerminalNotFound, codes.NotFound, pb.ErrorReason_TERMINAL_NOT_FOUND},
	{fleet.ErrSerialInUse, codes.AlreadyExists, pb.ErrorReason_SERIAL_IN_USE},
	{fleet.ErrEnrollmentInvalid, codes.PermissionDenied, pb.ErrorReason_ENROLLMENT_INVALID},
	{fleet.ErrEnrollmentExpired, codes.FailedPrecondition, pb.ErrorReason_ENROLLMENT_EXPIRED},
	{fleet.ErrEnrollmentUsed, codes.FailedPrecondition, pb.ErrorReason_ENROLLMENT_USED},
	{fleet.ErrTerminalRetired, codes.FailedPrecondition, pb.ErrorReason_TERMINAL_RETIRED},
	{fleet.ErrTerminalSuspended, codes.PermissionDenied, pb.ErrorReason_TERMINAL_SUSPENDED},
	{fleet.ErrBadCredential, codes.Unauthenticated, pb.ErrorReason_CREDENTIAL_INVALID},
	{fleet.ErrRateLimited, codes.ResourceExhausted, pb.ErrorReason_RATE_LIMITED},
	{fleet.ErrBadPageToken, codes.InvalidArgument, pb.ErrorReason_INVALID_PAGE_TOKEN},
	{fleet.ErrSameBinding, codes.FailedPrecondition, pb.ErrorReason_ALREADY_BOUND},
	{fleet.ErrCommandNotFound, codes.NotFound, pb.ErrorReason_COMMAND_NOT_FOUND},
	{fleet.ErrCommandNotOwned, codes.PermissionDenied, pb.ErrorReason_COMMAND_NOT_OWNED},
	{fleet.ErrCommandExpired, codes.FailedPrecondition, pb.ErrorReason_COMMAND_EXPIRED},
	{fleet.ErrCommandFinished, codes.FailedPrecondition, pb.ErrorReason_COMMAND_ALREADY_ACKED},
	{fleet.ErrMerchantArchived, codes.FailedPrecondition, pb.ErrorReason_MERCHANT_ARCHIVED},
	{fleet.ErrStoreArchived, codes.FailedPrecondition, pb.ErrorReason_STORE_ARCHIVED},
	{fleet.ErrMerchantHasTerminals, codes.FailedPrecondition, pb.ErrorReason_MERCHANT_HAS_TERMINALS},
	{fleet.ErrStoreHasTerminals, codes.FailedPrecondition, pb.ErrorReason_STORE_HAS_TERMINALS},
	{fleet.ErrMerchantHasPayments, codes.FailedPrecondition, pb.ErrorReason_MERCHANT_HAS_PAYMENTS},
	{operator.ErrTokenNotFound, codes.NotFound, pb.ErrorReason_TOKEN_NOT_FOUND},
	{operator.ErrInvalidRole, codes.InvalidArgument, pb.ErrorReason_INVALID_ROLE},

	// Config push.
	{configpush.ErrUnknownTerminal, codes.NotFound, pb.ErrorReason_TERMINAL_NOT_FOUND},
	{configpush.ErrScopeNotFound, codes.NotFound, pb.ErrorReason_CONFIG_SCOPE_NOT_FOUND},
	{configpush.ErrRolloutNotFound, codes.NotFound, pb.ErrorReason_ROLLOUT_NOT_FOUND},
	{configpush.ErrRolloutState, codes.FailedPrecondition, pb.ErrorReason_ROLLOUT_STATE},
	{configpush.ErrVersionNotIssued, codes.FailedPrecondition, pb.ErrorReason_CONFIG_VERSION_UNKNOWN},
	{configpush.ErrBadPageToken, codes.InvalidArgument, pb.ErrorReason_INVALID_PAGE_TOKEN},
	{configpush.ErrClosed, codes.Unavailable, pb.ErrorReason_SHUTTING_DOWN},
	{configpush.ErrWatchReplaced, codes.Aborted, pb.ErrorReason_WATCH_REPLACED},
	{configpush.ErrVersionNotFound, codes.NotFound, pb.ErrorReason_CONFIG_VERSION_NOT_FOUND},

	// Payments.
	{payment.ErrUnavailable, codes.Unavailable, pb.ErrorReason_PAYMENTS_UNAVAILABLE},
	{payment.ErrClosed, codes.Unavailable, pb.ErrorReason_SHUTTING_DOWN},
	{payment.ErrRequestIDReused, codes.AlreadyExists, pb.ErrorReason_REQUEST_ID_REUSED},
	{payment.ErrBatchMismatch, codes.FailedPrecondition, pb.ErrorReason_BATCH_MISMATCH},
	{payment.ErrBadPageToken, codes.InvalidArgument, pb.ErrorReason_INVALID_PAGE_TOKEN},

	// Webhooks.
	{webhook.ErrNotFound, codes.NotFound, pb.ErrorReason_WEBHOOK_NOT_FOUND},
	{webhook.ErrDeliveryNotFound, codes.NotFound, pb.ErrorReason_WEBHOOK_DELIVERY_NOT_FOUND},
	{webhook.ErrDeliveryPending, codes.FailedPrecondition, pb.ErrorReason_WEBHOOK_DELIVERY_PENDING},
	{webhook.ErrTooManyEndpoints, codes.ResourceExhausted, pb.ErrorReason_TOO_MANY_WEBHOOKS},
	{webhook.ErrBadPageToken, codes.InvalidArgument, pb.ErrorReason_INVALID_PAGE_TOKEN},
	{webhook.ErrClosed, codes.Unavailable, pb.ErrorReason_SHUTTING_DOWN},
}

// fieldViolation is a domain error about one input field that the
// transport's format checks cannot see (fleet.InvalidError,
// configpush.Violation, payment.ValidationError, webhook.Violation). toStatus turns it into
// InvalidArgument with a google.rpc.BadRequest field violation.
type fieldViolation interface {
	FieldViolation() (field, description string)
}

// fieldViolations collects the field violations in err's tree, in order:
// an error joining several (configpush.ValidationError) gives one each.
func fieldViolations(v *violations, err error) {
	if fv, ok := err.(fieldViolation); ok {
		field, desc := fv.FieldViolation()
		v.add(field, "%s", desc)
		return
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		if e := u.Unwrap(); e != nil {
			fieldViolations(v, e)
		}
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			fieldViolations(v, e)
		}
	}
}

// toStatus converts an error from a domain call into a gRPC status error.
// Status errors and context errors pass through; field violations become
// InvalidArgument with a BadRequest; the rest go through errorTable (a
// failed payment engine also turns the payment service NOT_SERVING);
// unknown errors become Internal without leaking their text.
func (s *Server) toStatus(ctx context.Context, err error) error {
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
	var v violations
	if fieldViolations(&v, err); len(v.list) > 0 {
		return v.err()
	}
	if errors.Is(err, payment.ErrUnavailable) && s.health != nil {
		s.health.SetServingStatus(pb.PaymentService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	for _, m := range errorTable {
		if errors.Is(err, m.err) {
			return refusalOf(m, err).err()
		}
	}
	s.logger.ErrorContext(ctx, "internal error", "err", err)
	return status.Error(codes.Internal, "internal error")
}

// statusWithReason builds a status error carrying an ErrorInfo detail (and
// the reason's RetryInfo, if it has one).
func statusWithReason(code codes.Code, reason pb.ErrorReason, msg string) error {
	return refusal{code: code, reason: reason, msg: msg}.err()
}
