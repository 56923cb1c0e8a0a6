package server

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/auth"
)

// WhoAmI returns the calling admin token without its secret.
func (a *adminService) WhoAmI(ctx context.Context, _ *pb.WhoAmIRequest) (*pb.WhoAmIResponse, error) {
	p, ok := auth.FromContext(ctx)
	if !ok || p.Kind != auth.KindAdmin {
		return nil, status.Error(codes.Unauthenticated, "no admin token")
	}
	for _, t := range a.s.eng.Tokens.List() {
		if t.ID == p.TokenID {
			return &pb.WhoAmIResponse{AdminToken: tokenToPB(t)}, nil
		}
	}
	// Revoked between authentication and here: as for any stale token.
	return nil, status.Error(codes.Unauthenticated, "admin token no longer exists")
}
