package server

import (
	"context"

	"google.golang.org/grpc/codes"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/fleet"
)

func init() {
	errorTable = append(errorTable,
		errorMapping{fleet.ErrMerchantArchived, codes.FailedPrecondition, "MERCHANT_ARCHIVED"},
		errorMapping{fleet.ErrStoreArchived, codes.FailedPrecondition, "STORE_ARCHIVED"},
		errorMapping{fleet.ErrMerchantHasTerminals, codes.FailedPrecondition, "MERCHANT_HAS_TERMINALS"},
		errorMapping{fleet.ErrStoreHasTerminals, codes.FailedPrecondition, "STORE_HAS_TERMINALS"},
	)
}

// ArchiveMerchant archives a merchant whose terminals are all retired.
func (a *adminService) ArchiveMerchant(ctx context.Context, req *pb.ArchiveMerchantRequest) (*pb.ArchiveMerchantResponse, error) {
	var v violations
	v.merchantID("merchant_id", req.GetMerchantId())
	v.optional("reason", req.GetReason(), maxReasonLen)
	if err := v.err(); err != nil {
		return nil, err
	}
	m, err := a.s.eng.Fleet.ArchiveMerchant(ctx, req.GetMerchantId(), req.GetReason(), actor(ctx))
	if err != nil {
		return nil, a.s.fleetStatus(ctx, err)
	}
	return &pb.ArchiveMerchantResponse{Merchant: merchantToPB(m)}, nil
}

// ArchiveStore archives a store whose terminals are all retired.
func (a *adminService) ArchiveStore(ctx context.Context, req *pb.ArchiveStoreRequest) (*pb.ArchiveStoreResponse, error) {
	var v violations
	v.merchantID("merchant_id", req.GetMerchantId())
	v.storeID("store_id", req.GetStoreId())
	v.optional("reason", req.GetReason(), maxReasonLen)
	if err := v.err(); err != nil {
		return nil, err
	}
	s, err := a.s.eng.Fleet.ArchiveStore(ctx, req.GetMerchantId(), req.GetStoreId(), req.GetReason(), actor(ctx))
	if err != nil {
		return nil, a.s.fleetStatus(ctx, err)
	}
	return &pb.ArchiveStoreResponse{Store: storeToPB(s)}, nil
}
