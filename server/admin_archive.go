package server

import (
	"context"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

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
		return nil, a.s.toStatus(ctx, err)
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
		return nil, a.s.toStatus(ctx, err)
	}
	return &pb.ArchiveStoreResponse{Store: storeToPB(s)}, nil
}
