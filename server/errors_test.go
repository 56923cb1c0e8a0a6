package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
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

func testStatusServer() *Server {
	return &Server{logger: slog.New(slog.DiscardHandler), health: health.NewServer()}
}

// TestToStatusTable pins every domain error's code and reason: they are part
// of the protocol, so a row that changes must change here too.
func TestToStatusTable(t *testing.T) {
	tests := []struct {
		err    error
		code   codes.Code
		reason string
	}{
		{audit.ErrBadPageToken, codes.InvalidArgument, "INVALID_PAGE_TOKEN"},
		{store.ErrDiskLow, codes.Unavailable, "DISK_LOW"},
		{fmt.Errorf("%w: %w", store.ErrCommit, store.ErrFenced), codes.Unavailable, "NOT_LEADER"},
		{store.ErrCommit, codes.Unavailable, "STORAGE_UNAVAILABLE"},
		{fleet.ErrMerchantExists, codes.AlreadyExists, "MERCHANT_EXISTS"},
		{fleet.ErrMerchantNotFound, codes.NotFound, "MERCHANT_NOT_FOUND"},
		{fleet.ErrStoreExists, codes.AlreadyExists, "STORE_EXISTS"},
		{fleet.ErrStoreNotFound, codes.NotFound, "STORE_NOT_FOUND"},
		{fleet.ErrTerminalNotFound, codes.NotFound, "TERMINAL_NOT_FOUND"},
		{fleet.ErrSerialInUse, codes.AlreadyExists, "SERIAL_IN_USE"},
		{fleet.ErrEnrollmentInvalid, codes.PermissionDenied, "ENROLLMENT_INVALID"},
		{fleet.ErrEnrollmentExpired, codes.FailedPrecondition, "ENROLLMENT_EXPIRED"},
		{fleet.ErrEnrollmentUsed, codes.FailedPrecondition, "ENROLLMENT_USED"},
		{fleet.ErrTerminalRetired, codes.FailedPrecondition, "TERMINAL_RETIRED"},
		{fleet.ErrTerminalSuspended, codes.PermissionDenied, "TERMINAL_SUSPENDED"},
		{fleet.ErrBadCredential, codes.Unauthenticated, "CREDENTIAL_INVALID"},
		{fleet.ErrRateLimited, codes.ResourceExhausted, "RATE_LIMITED"},
		{fleet.ErrBadPageToken, codes.InvalidArgument, "INVALID_PAGE_TOKEN"},
		{fleet.ErrSameBinding, codes.FailedPrecondition, "ALREADY_BOUND"},
		{fleet.ErrCommandNotFound, codes.NotFound, "COMMAND_NOT_FOUND"},
		{fleet.ErrCommandNotOwned, codes.PermissionDenied, "COMMAND_NOT_OWNED"},
		{fleet.ErrCommandExpired, codes.FailedPrecondition, "COMMAND_EXPIRED"},
		{fleet.ErrCommandFinished, codes.FailedPrecondition, "COMMAND_ALREADY_ACKED"},
		{fleet.ErrMerchantArchived, codes.FailedPrecondition, "MERCHANT_ARCHIVED"},
		{fleet.ErrStoreArchived, codes.FailedPrecondition, "STORE_ARCHIVED"},
		{fleet.ErrMerchantHasTerminals, codes.FailedPrecondition, "MERCHANT_HAS_TERMINALS"},
		{fleet.ErrStoreHasTerminals, codes.FailedPrecondition, "STORE_HAS_TERMINALS"},
		{fleet.ErrMerchantHasPayments, codes.FailedPrecondition, "MERCHANT_HAS_PAYMENTS"},
		{operator.ErrTokenNotFound, codes.NotFound, "TOKEN_NOT_FOUND"},
		{operator.ErrInvalidRole, codes.InvalidArgument, "INVALID_ROLE"},
		{configpush.ErrUnknownTerminal, codes.NotFound, "TERMINAL_NOT_FOUND"},
		{configpush.ErrScopeNotFound, codes.NotFound, "CONFIG_SCOPE_NOT_FOUND"},
		{configpush.ErrRolloutNotFound, codes.NotFound, "ROLLOUT_NOT_FOUND"},
		{configpush.ErrRolloutState, codes.FailedPrecondition, "ROLLOUT_STATE"},
		{configpush.ErrVersionNotIssued, codes.FailedPrecondition, "CONFIG_VERSION_UNKNOWN"},
		{configpush.ErrBadPageToken, codes.InvalidArgument, "INVALID_PAGE_TOKEN"},
		{configpush.ErrClosed, codes.Unavailable, "SHUTTING_DOWN"},
		{configpush.ErrWatchReplaced, codes.Aborted, "WATCH_REPLACED"},
		{configpush.ErrVersionNotFound, codes.NotFound, "CONFIG_VERSION_NOT_FOUND"},
		{payment.ErrUnavailable, codes.Unavailable, "PAYMENTS_UNAVAILABLE"},
		{payment.ErrClosed, codes.Unavailable, "SHUTTING_DOWN"},
		{payment.ErrRequestIDReused, codes.AlreadyExists, "REQUEST_ID_REUSED"},
		{payment.ErrBatchMismatch, codes.FailedPrecondition, "BATCH_MISMATCH"},
		{payment.ErrBadPageToken, codes.InvalidArgument, "INVALID_PAGE_TOKEN"},
		{webhook.ErrNotFound, codes.NotFound, "WEBHOOK_NOT_FOUND"},
		{webhook.ErrDeliveryNotFound, codes.NotFound, "WEBHOOK_DELIVERY_NOT_FOUND"},
		{webhook.ErrDeliveryPending, codes.FailedPrecondition, "WEBHOOK_DELIVERY_PENDING"},
		{webhook.ErrTooManyEndpoints, codes.ResourceExhausted, "TOO_MANY_WEBHOOKS"},
		{store.ErrUnsupported, codes.FailedPrecondition, "BACKUP_UNSUPPORTED"},
		{webhook.ErrBadPageToken, codes.InvalidArgument, "INVALID_PAGE_TOKEN"},
		{webhook.ErrClosed, codes.Unavailable, "SHUTTING_DOWN"},
	}
	if len(tests) != len(errorTable) {
		t.Errorf("got %d rows in errorTable, want %d: a new row needs its case here", len(errorTable), len(tests))
	}
	s := testStatusServer()
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			// Domain errors arrive wrapped with context.
			err := s.toStatus(t.Context(), fmt.Errorf("doing something: %w", tt.err))
			st := status.Convert(err)
			if st.Code() != tt.code {
				t.Errorf("got code %v, want %v", st.Code(), tt.code)
			}
			if got := reasonOf(st); got != tt.reason {
				t.Errorf("got reason %q, want %q", got, tt.reason)
			}
		})
	}
}

func reasonOf(st *status.Status) string {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

// TestToStatusFieldViolations checks that every domain's field error becomes
// InvalidArgument with one BadRequest violation per field, in order.
func TestToStatusFieldViolations(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want [][2]string
	}{
		{"fleet", &fleet.InvalidError{Field: "merchant.mcc", Reason: "is not allowed"}, [][2]string{{"merchant.mcc", "is not allowed"}}},
		{"configpush", &configpush.ValidationError{Violations: []configpush.Violation{
			{Field: "settings.daily_limit", Reason: "must be positive"},
			{Field: "rollout.stage_percents", Reason: "must rise"},
		}}, [][2]string{{"settings.daily_limit", "must be positive"}, {"rollout.stage_percents", "must rise"}}},
		{"payment", &payment.ValidationError{Field: "card.token", Reason: "is required"}, [][2]string{{"card.token", "is required"}}},
		{"wrapped", fmt.Errorf("publish: %w", &fleet.InvalidError{Field: "store_id", Reason: "is archived"}), [][2]string{{"store_id", "is archived"}}},
	}
	s := testStatusServer()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := status.Convert(s.toStatus(t.Context(), tt.err))
			if st.Code() != codes.InvalidArgument {
				t.Fatalf("got code %v, want InvalidArgument", st.Code())
			}
			var got [][2]string
			for _, d := range st.Details() {
				if br, ok := d.(*errdetails.BadRequest); ok {
					for _, v := range br.GetFieldViolations() {
						got = append(got, [2]string{v.GetField(), v.GetDescription()})
					}
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got violations %v, want %v", got, tt.want)
			}
		})
	}
}

// TestToStatusPassThrough checks context errors, status errors and unknown
// errors, and that a failed payment engine turns the payment service
// NOT_SERVING.
func TestToStatusPassThrough(t *testing.T) {
	s := testStatusServer()
	ctx := t.Context()
	tests := []struct {
		err  error
		want codes.Code
	}{
		{context.Canceled, codes.Canceled},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{status.Error(codes.Aborted, "as is"), codes.Aborted},
		{errors.New("disk on fire at /secret/path"), codes.Internal},
	}
	for _, tt := range tests {
		if got := status.Code(s.toStatus(ctx, tt.err)); got != tt.want {
			t.Errorf("toStatus(%v): got %v, want %v", tt.err, got, tt.want)
		}
	}
	if msg := status.Convert(s.toStatus(ctx, errors.New("disk on fire at /secret/path"))).Message(); msg != "internal error" {
		t.Errorf("got Internal message %q, want %q", msg, "internal error")
	}
	if s.toStatus(ctx, nil) != nil {
		t.Error("got a status for a nil error, want nil")
	}

	svc := pb.PaymentService_ServiceDesc.ServiceName
	s.health.SetServingStatus(svc, healthpb.HealthCheckResponse_SERVING)
	_ = s.toStatus(ctx, payment.ErrUnavailable)
	resp, err := s.health.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("got payment health %v after ErrUnavailable, want NOT_SERVING", resp.GetStatus())
	}
}
