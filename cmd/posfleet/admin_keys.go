package main

import (
	"context"
	"strings"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

func init() {
	registerAdmin("keys", "rotate", "make a new identity signing key the active one, endorsed by the current one (ADMIN)", keysRotate)
}

func keysRotate(ctx context.Context, env *adminEnv, args []string) error {
	fs := verbFlags(env, "keys", "rotate")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	keys, err := env.Client.RotateSigningKey(ctx)
	if err != nil {
		return err
	}
	rows := make([][]string, len(keys))
	for i, k := range keys {
		rows[i] = []string{k.GetKeyId(), strings.TrimPrefix(k.GetStatus().String(), "SIGNING_KEY_STATUS_"),
			k.GetFingerprint(), tsText(k.GetCreateTime()), tsText(k.GetRetireTime()), orDash(k.GetEndorsedByKeyId())}
	}
	return env.print(&pb.RotateSigningKeyResponse{Keys: keys}, []string{"KEY ID", "STATUS", "FINGERPRINT", "CREATED", "RETIRED", "ENDORSED BY"}, rows)
}
