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

	// After a rotation the terminal still trusts the server through the
	// endorsement of the new key by the pinned one.
	rot, err := e.admin.RotateSigningKey(e.adminCtx(), &pb.RotateSigningKeyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rot.GetKeys()); n != 2 || rot.GetKeys()[1].GetKeyId() != p.GetSigningKeyId() ||
		rot.GetKeys()[1].GetStatus() != pb.SigningKeyStatus_SIGNING_KEY_STATUS_RETIRED {
		t.Fatalf("RotateSigningKey = %v; want the new key, then the pinned one retired", rot.GetKeys())
	}
	vm, err := e.term.VerifyMerchant(bearer(ctx, reg.GetCredential()), &pb.VerifyMerchantRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if vm.GetIdentity().GetKeyId() != rot.GetKeys()[0].GetKeyId() {
		t.Fatalf("identity after rotation signed by %s, want the new key %s", vm.GetIdentity().GetKeyId(), rot.GetKeys()[0].GetKeyId())
	}
	keys, err = e.term.GetSigningKeys(bearer(ctx, reg.GetCredential()), &pb.GetSigningKeysRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if trusted, err = client.TrustedSigningKeys(p.GetSigningKeyFingerprint(), keys.GetKeys()); err != nil || len(trusted) != 2 {
		t.Fatalf("TrustedSigningKeys after rotation = %d keys, %v; want both", len(trusted), err)
	}
	if err := client.VerifyIdentityV2(vm.GetIdentity(), trusted...); err != nil {
		t.Errorf("identity signed by the new key: %v", err)
	}
	if err := client.VerifyIdentityV2(vm.GetIdentity(), trusted[1:]...); err == nil {
		t.Error("identity signed by the new key verified with only the old key trusted")
	}
}
