package server_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// A terminal whose Register or RotateCredential response is lost recovers
// on its own by repeating the call, and single use still holds once the
// credential it ends up with is used.
func TestLostCredentialResponsesRecoveredOverGRPC(t *testing.T) {
	e := newFleetEnv(t)
	ctx := t.Context()
	e.merchant("MID1", "s1")
	p := e.provision("SN-1", "MID1", "s1")
	register := func() (*pb.RegisterResponse, error) {
		return e.term.Register(ctx, &pb.RegisterRequest{SerialNumber: "SN-1", EnrollmentCode: p.GetEnrollmentCode()})
	}
	heartbeat := func(cred string) error {
		_, err := e.term.Heartbeat(bearer(ctx, cred), &pb.HeartbeatRequest{})
		return err
	}
	rotate := func(cred string) string {
		t.Helper()
		r, err := e.term.RotateCredential(bearer(ctx, cred), &pb.RotateCredentialRequest{})
		if err != nil {
			t.Fatalf("RotateCredential: %v", err)
		}
		return r.GetCredential()
	}

	lostReg, err := register()
	if err != nil {
		t.Fatal(err)
	}
	reg, err := register()
	if err != nil {
		t.Fatalf("retried Register: %v", err)
	}
	if err := heartbeat(lostReg.GetCredential()); status.Code(err) != codes.Unauthenticated {
		t.Errorf("credential of the lost response: %v, want Unauthenticated", err)
	}
	if err := heartbeat(reg.GetCredential()); err != nil {
		t.Fatalf("credential of the retried Register: %v", err)
	}
	if _, err := register(); status.Code(err) != codes.FailedPrecondition || reason(err) != "ENROLLMENT_USED" {
		t.Errorf("Register after the credential's first use: %v (%s), want FailedPrecondition ENROLLMENT_USED", err, reason(err))
	}

	cred := reg.GetCredential()
	lostRot := rotate(cred)
	if err := heartbeat(cred); err != nil {
		t.Fatalf("old credential while the rotated one is unused: %v", err)
	}
	next := rotate(cred)
	if err := heartbeat(lostRot); status.Code(err) != codes.Unauthenticated {
		t.Errorf("credential of the lost rotation: %v, want Unauthenticated", err)
	}
	if err := heartbeat(next); err != nil {
		t.Fatalf("credential of the retried rotation: %v", err)
	}
	if err := heartbeat(cred); status.Code(err) != codes.Unauthenticated {
		t.Errorf("old credential after the new one's first use: %v, want Unauthenticated", err)
	}
}
