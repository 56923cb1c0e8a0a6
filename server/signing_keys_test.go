package server_test

import (
	"testing"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// A terminal pins the fingerprint shown at provisioning, finds it in the
// key set and verifies its identity's version 2 payload against it.
func TestPinnedSigningKeyVerifiesIdentity(t *testing.T) {
	e := newFleetEnv(t)
	ctx := t.Context()
	e.merchant("MID1", "s1")
	p := e.provision("SN-1", "MID1", "s1")
	reg, err := e.term.Register(ctx, &pb.RegisterRequest{SerialNumber: "SN-1", EnrollmentCode: p.GetEnrollmentCode()})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := e.term.GetSigningKeys(bearer(ctx, reg.GetCredential()), &pb.GetSigningKeysRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(keys.GetKeys()); n != 1 {
		t.Fatalf("GetSigningKeys: %d keys, want 1", n)
	}
	k := keys.GetKeys()[0]
	if k.GetStatus() != pb.SigningKeyStatus_SIGNING_KEY_STATUS_ACTIVE || k.GetFingerprint() != p.GetSigningKeyFingerprint() ||
		k.GetKeyId() != p.GetSigningKeyId() || client.Fingerprint(k.GetPublicKey()) != k.GetFingerprint() || k.GetCreateTime() == nil {
		t.Fatalf("key %v; want the active key with the fingerprint %s shown at provisioning", k, p.GetSigningKeyFingerprint())
	}
	trusted, err := client.TrustedSigningKeys(p.GetSigningKeyFingerprint(), keys.GetKeys())
	if err != nil {
		t.Fatal(err)
	}
	id := reg.GetIdentity()
	if id.GetCurrency() != "NZD" {
		t.Errorf("identity currency %q, want NZD", id.GetCurrency())
	}
	if err := client.VerifyIdentityV2(id, trusted...); err != nil {
		t.Fatalf("VerifyIdentityV2 with the pinned key: %v", err)
	}
	if _, err := client.TrustedSigningKeys(client.Fingerprint(make([]byte, 32)), keys.GetKeys()); err == nil {
		t.Error("TrustedSigningKeys accepted a pin that is not in the key set")
	}
}
