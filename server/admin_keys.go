package server

import (
	"context"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// RotateSigningKey makes a new identity signing key the active one.
func (a *adminService) RotateSigningKey(ctx context.Context, _ *pb.RotateSigningKeyRequest) (*pb.RotateSigningKeyResponse, error) {
	if _, err := a.s.eng.Fleet.RotateSigningKey(ctx, actor(ctx)); err != nil {
		return nil, a.s.toStatus(ctx, err)
	}
	return &pb.RotateSigningKeyResponse{Keys: signingKeysToPB(a.s.eng.Fleet.PublicKeys())}, nil
}
