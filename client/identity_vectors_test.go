package client_test

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"os"
	"slices"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// identityVectors is the part of the shared test-vector file a verifier
// reads (see proto/posfleet/v1/testdata/README.md).
type identityVectors struct {
	Keys []struct {
		Name        string `json:"name"`
		PublicKey   string `json:"public_key_hex"`
		Fingerprint string `json:"fingerprint"`
	} `json:"keys"`
	Identities []struct {
		Name              string          `json:"name"`
		PinnedFingerprint string          `json:"pinned_fingerprint"`
		ValidV1           bool            `json:"valid_v1"`
		ValidV2           bool            `json:"valid_v2"`
		Identity          json.RawMessage `json:"identity"`
		PayloadV1Text     string          `json:"signed_payload_v1_text"`
		PayloadV2Text     string          `json:"signed_payload_v2_text"`
	} `json:"identities"`
	KeySets []struct {
		Name              string            `json:"name"`
		PinnedFingerprint string            `json:"pinned_fingerprint"`
		Keys              []json.RawMessage `json:"keys"`
		TrustedKeyIDs     []string          `json:"trusted_key_ids"`
	} `json:"key_sets"`
}

// The SDK's verifier agrees with every vector the server's encoder made.
func TestIdentityVectors(t *testing.T) {
	b, err := os.ReadFile("../proto/posfleet/v1/testdata/identity_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v identityVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	pinned := func(t *testing.T, fp string) ed25519.PublicKey {
		t.Helper()
		for _, k := range v.Keys {
			if k.Fingerprint == fp {
				pub, err := hex.DecodeString(k.PublicKey)
				if err != nil || client.Fingerprint(pub) != fp {
					t.Fatalf("key %s: public key %q does not have fingerprint %s", k.Name, k.PublicKey, fp)
				}
				return pub
			}
		}
		t.Fatalf("no key with fingerprint %s", fp)
		return nil
	}
	if len(v.Identities) < 10 || len(v.KeySets) < 3 {
		t.Fatalf("%d identity and %d key set vectors; the file lost some", len(v.Identities), len(v.KeySets))
	}
	for _, tc := range v.Identities {
		t.Run(tc.Name, func(t *testing.T) {
			var id pb.MerchantIdentity
			if err := protojson.Unmarshal(tc.Identity, &id); err != nil {
				t.Fatal(err)
			}
			if string(id.GetSignedPayload()) != tc.PayloadV1Text || string(id.GetSignedPayloadV2()) != tc.PayloadV2Text {
				t.Fatal("the payload texts differ from the identity's payload bytes")
			}
			key := pinned(t, tc.PinnedFingerprint)
			if err := client.VerifyIdentityV2(&id, key); (err == nil) != tc.ValidV2 {
				t.Errorf("VerifyIdentityV2 = %v, want valid %v", err, tc.ValidV2)
			}
			// A verifier written before v2 sees only the v1 fields.
			v1 := &pb.MerchantIdentity{
				MerchantId: id.GetMerchantId(), LegalName: id.GetLegalName(), DisplayName: id.GetDisplayName(), Mcc: id.GetMcc(),
				StoreId: id.GetStoreId(), StoreName: id.GetStoreName(), Address: id.GetAddress(), TerminalId: id.GetTerminalId(),
				IdentityVersion: id.GetIdentityVersion(), IssueTime: id.GetIssueTime(), KeyId: id.GetKeyId(),
				Signature: id.GetSignature(), SignedPayload: id.GetSignedPayload(), PublicKey: id.GetPublicKey(),
			}
			if err := client.VerifyIdentity(v1, key); (err == nil) != tc.ValidV1 {
				t.Errorf("VerifyIdentity of the v1 fields = %v, want valid %v", err, tc.ValidV1)
			}
			// With both payloads, VerifyIdentity needs both to hold.
			if err := client.VerifyIdentity(&id, key); (err == nil) != (tc.ValidV1 && tc.ValidV2) {
				t.Errorf("VerifyIdentity = %v, want valid %v", err, tc.ValidV1 && tc.ValidV2)
			}
		})
	}
	for _, tc := range v.KeySets {
		t.Run("keys/"+tc.Name, func(t *testing.T) {
			keys := make([]*pb.SigningKey, len(tc.Keys))
			for i, raw := range tc.Keys {
				keys[i] = new(pb.SigningKey)
				if err := protojson.Unmarshal(raw, keys[i]); err != nil {
					t.Fatal(err)
				}
			}
			trusted, err := client.TrustedSigningKeys(tc.PinnedFingerprint, keys)
			if len(tc.TrustedKeyIDs) == 0 {
				if err == nil {
					t.Errorf("TrustedSigningKeys = %d keys, want the set refused", len(trusted))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, k := range trusted {
				got = append(got, client.Fingerprint(k)[:16])
			}
			if !slices.Equal(got, tc.TrustedKeyIDs) {
				t.Errorf("trusted keys %v, want %v", got, tc.TrustedKeyIDs)
			}
		})
	}
}
