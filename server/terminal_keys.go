package server

import (
	"context"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/fleet"
)

// GetSigningKeys returns the identity signing keys, the active one first.
func (t *terminalService) GetSigningKeys(ctx context.Context, _ *pb.GetSigningKeysRequest) (*pb.GetSigningKeysResponse, error) {
	if _, err := terminalPrincipal(ctx); err != nil {
		return nil, err
	}
	return &pb.GetSigningKeysResponse{Keys: signingKeysToPB(t.s.eng.Fleet.PublicKeys())}, nil
}

func signingKeysToPB(keys []fleet.PublicKey) []*pb.SigningKey {
	out := make([]*pb.SigningKey, len(keys))
	for i, k := range keys {
		out[i] = signingKeyToPB(k)
	}
	return out
}

func signingKeyToPB(k fleet.PublicKey) *pb.SigningKey {
	st := pb.SigningKeyStatus_SIGNING_KEY_STATUS_RETIRED
	if k.Active {
		st = pb.SigningKeyStatus_SIGNING_KEY_STATUS_ACTIVE
	}
	return &pb.SigningKey{
		KeyId: k.KeyID, PublicKey: k.Key, Fingerprint: k.Fingerprint(), Status: st,
		CreateTime: timestampOrNil(k.Created), RetireTime: timestampOrNil(k.Retired),
		EndorsedByKeyId: k.EndorsedBy, Endorsement: k.Endorsement,
	}
}
