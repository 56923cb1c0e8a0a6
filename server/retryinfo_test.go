package server_test

import (
	"strconv"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// quotaOf returns the "quota" metadata of err's ErrorInfo.
func quotaOf(err error) string {
	for _, d := range status.Convert(err).Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			return ei.GetMetadata()["quota"]
		}
	}
	return ""
}

// Rate-limited calls tell both kinds of client when to retry: a RetryInfo
// for clients that read details, and the grpc-retry-pushback-ms trailer
// for gRPC's own retries. Registrations refused by their limit used to
// carry neither.
func TestRateLimitsSayWhenToRetry(t *testing.T) {
	e := newFleetEnv(t)
	e.merchant("MID1", "s1")
	e.provision("SN1", "MID1", "s1")
	tests := []struct {
		name      string
		call      func(trailer *metadata.MD) error
		wantQuota string
	}{
		{"registration", func(tr *metadata.MD) error {
			_, err := e.term.Register(t.Context(), &pb.RegisterRequest{SerialNumber: "SN1", EnrollmentCode: "WRONG-CODE-0000",
				Device: &pb.DeviceInfo{Model: "A920"}}, grpc.Trailer(tr))
			return err
		}, "registration"},
		{"authentication", func(tr *metadata.MD) error {
			_, err := e.term.Heartbeat(bearer(t.Context(), "not-a-credential"), &pb.HeartbeatRequest{}, grpc.Trailer(tr))
			return err
		}, "authentication"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			var trailer metadata.MD
			for range 100 {
				trailer = nil
				if err = tt.call(&trailer); retryDelay(err) > 0 {
					break
				}
			}
			assertRateLimited(t, tt.name, err)
			if got := quotaOf(err); got != tt.wantQuota {
				t.Errorf("got quota %q, want %q", got, tt.wantQuota)
			}
			want := strconv.FormatInt(max(retryDelay(err).Milliseconds(), 1), 10)
			if got := trailer.Get("grpc-retry-pushback-ms"); len(got) != 1 || got[0] != want {
				t.Errorf("got pushback trailer %q, want [%s]", got, want)
			}
		})
	}
}
