package examples_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/posfleet/posfleet/client"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// vectorsFile is the shared identity test-vector file, relative to
// examples/.
const vectorsFile = "../proto/posfleet/v1/testdata/identity_vectors.json"

// rotateSigningKey makes a new identity signing key the active one, as an
// operator does with 'posfleet admin keys rotate', and records its ID.
func (s *posfleetServer) rotateSigningKey(t *testing.T) {
	t.Helper()
	keys, err := s.admin.RotateSigningKey(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 2 || keys[0].GetStatus() != pb.SigningKeyStatus_SIGNING_KEY_STATUS_ACTIVE || keys[0].GetEndorsedByKeyId() != keys[1].GetKeyId() {
		t.Fatalf("after a rotation the server publishes %v, want the new active key first, endorsed by the one before", keys)
	}
	s.rotatedKeyID = keys[0].GetKeyId()
}

// checkIdentities checks that an example which pinned the key pinned while
// the server rotated to the key rotated verified its identities with those
// two keys only, the last one (after the rotation) with the new key, which
// it trusted through the pinned key's endorsement.
func checkIdentities(t *testing.T, sum summary, pinned, rotated string) {
	t.Helper()
	if pinned == "" || rotated == "" || pinned == rotated {
		t.Fatalf("pinned key %q, rotated to %q: want two keys", pinned, rotated)
	}
	ids := sum.IdentityKeyIDs
	if len(ids) == 0 || ids[len(ids)-1] != rotated || sum.IdentityKeyID != rotated {
		t.Errorf("example verified identities of keys %v, last %q; want the last by the new key %s", ids, sum.IdentityKeyID, rotated)
	}
	for _, id := range ids {
		if id != pinned && id != rotated {
			t.Errorf("example verified an identity of key %s, neither the pinned %s nor the new %s", id, pinned, rotated)
		}
	}
	want := []string{pinned, rotated}
	slices.Sort(want)
	if !slices.Equal(sum.TrustedKeyIDs, want) {
		t.Errorf("example trusted keys %v, want %v: the pinned key and the one it endorsed", sum.TrustedKeyIDs, want)
	}
}

// vectorFile is the part of identity_vectors.json the test reads.
type vectorFile struct {
	Keys []struct {
		PublicKey   string `json:"public_key_hex"`
		Fingerprint string `json:"fingerprint"`
	} `json:"keys"`
	Identities []struct {
		Name              string          `json:"name"`
		PinnedFingerprint string          `json:"pinned_fingerprint"`
		Identity          json.RawMessage `json:"identity"`
		ValidV1           bool            `json:"valid_v1"`
		ValidV2           bool            `json:"valid_v2"`
	} `json:"identities"`
	KeySets []struct {
		Name              string            `json:"name"`
		PinnedFingerprint string            `json:"pinned_fingerprint"`
		Keys              []json.RawMessage `json:"keys"`
		TrustedKeyIDs     []string          `json:"trusted_key_ids"`
	} `json:"key_sets"`
}

// vectorsSummary is the JSON line an example's vector check prints last.
type vectorsSummary struct {
	Identities []struct {
		Name string `json:"name"`
		V1   string `json:"v1"`
		V2   string `json:"v2"`
	} `json:"identities"`
	KeySets []struct {
		Name    string   `json:"name"`
		Trusted []string `json:"trusted"`
		Result  string   `json:"result"`
	} `json:"key_sets"`
	Agreed    int `json:"agreed"`
	Disagreed int `json:"disagreed"`
}

// goReason names why the Go SDK refused an identity, in the words the
// examples use: "ok" when it did not.
func goReason(err error) string {
	if err == nil {
		return "ok"
	}
	msg := err.Error()
	for _, r := range []struct{ part, reason string }{
		{"untrusted key", "untrusted_key"},
		{"key_id does not name", "key_id"},
		{"public key missing or malformed", "key_id"},
		{"signature invalid", "signature"},
		{"differs from the structured fields", "payload"},
		{"lines beyond the last field", "payload"},
	} {
		if strings.Contains(msg, r.part) {
			return r.reason
		}
	}
	return "unclassified: " + msg
}

// goVerdicts runs the vectors through the Go SDK: per identity vector the
// version 1 and version 2 verdicts, per key-set vector the trusted key IDs.
func goVerdicts(t *testing.T, v *vectorFile) (identities [][2]string, keySets [][]string) {
	t.Helper()
	keys := map[string]ed25519.PublicKey{}
	for _, k := range v.Keys {
		pub, err := hex.DecodeString(k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		keys[k.Fingerprint] = pub
	}
	for _, vec := range v.Identities {
		var id pb.MerchantIdentity
		if err := protojson.Unmarshal(vec.Identity, &id); err != nil {
			t.Fatalf("%s: %v", vec.Name, err)
		}
		key := keys[vec.PinnedFingerprint]
		v1 := &pb.MerchantIdentity{
			MerchantId: id.GetMerchantId(), LegalName: id.GetLegalName(), DisplayName: id.GetDisplayName(), Mcc: id.GetMcc(),
			StoreId: id.GetStoreId(), StoreName: id.GetStoreName(), Address: id.GetAddress(), TerminalId: id.GetTerminalId(),
			IdentityVersion: id.GetIdentityVersion(), IssueTime: id.GetIssueTime(), KeyId: id.GetKeyId(),
			Signature: id.GetSignature(), SignedPayload: id.GetSignedPayload(), PublicKey: id.GetPublicKey(),
		}
		identities = append(identities, [2]string{goReason(client.VerifyIdentity(v1, key)), goReason(client.VerifyIdentityV2(&id, key))})
	}
	for _, vec := range v.KeySets {
		set := make([]*pb.SigningKey, len(vec.Keys))
		for i, raw := range vec.Keys {
			set[i] = new(pb.SigningKey)
			if err := protojson.Unmarshal(raw, set[i]); err != nil {
				t.Fatalf("%s: %v", vec.Name, err)
			}
		}
		trusted, _ := client.TrustedSigningKeys(vec.PinnedFingerprint, set)
		ids := []string{}
		for _, k := range trusted {
			ids = append(ids, client.Fingerprint(k)[:16])
		}
		keySets = append(keySets, ids)
	}
	return identities, keySets
}

// runVectors runs an example's vector check on path and returns its
// summary and exit error.
func runVectors(t *testing.T, ex example, path string) (vectorsSummary, error) {
	t.Helper()
	cmd := ex.vectors(path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, runErr := cmd.Output()
	var sum vectorsSummary
	if err := json.Unmarshal([]byte(lastLine(string(out))), &sum); err != nil {
		t.Fatalf("%s vectors: summary %q: %v (exit: %v)\n%s", ex.name, lastLine(string(out)), err, runErr, stderr.String())
	}
	return sum, runErr
}

// TestIdentityVectors runs the shared identity test vectors through each
// example's verifier: every vector must be judged as the file says, a
// refusal for the same reason the Go SDK gives, so that the same vectors
// pass in three languages. A copy of the file with one signature broken
// (but still marked valid) must make the check fail: it verifies, it does
// not only read the verdicts.
func TestIdentityVectors(t *testing.T) {
	raw, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	var v vectorFile
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Identities) < 10 || len(v.KeySets) < 3 {
		t.Fatalf("%d identity and %d key-set vectors; the file lost some", len(v.Identities), len(v.KeySets))
	}
	goIDs, goSets := goVerdicts(t, &v)
	for i, vec := range v.Identities {
		if (goIDs[i][0] == "ok") != vec.ValidV1 || (goIDs[i][1] == "ok") != vec.ValidV2 {
			t.Fatalf("the Go SDK judges vector %s v1 %s, v2 %s; the file says valid v1 %v, v2 %v", vec.Name, goIDs[i][0], goIDs[i][1], vec.ValidV1, vec.ValidV2)
		}
	}
	broken, brokenName := breakSignature(t, raw)

	for _, ex := range []example{pythonExample(), typescriptExample()} {
		t.Run(ex.name, func(t *testing.T) {
			ex.prepare(t)
			sum, err := runVectors(t, ex, vectorsFile)
			if err != nil {
				t.Errorf("%s vectors exit: %v", ex.name, err)
			}
			if want := 2*len(v.Identities) + len(v.KeySets); sum.Agreed != want || sum.Disagreed != 0 {
				t.Errorf("%s: %d verdicts agree and %d disagree, want %d and 0", ex.name, sum.Agreed, sum.Disagreed, want)
			}
			if len(sum.Identities) != len(v.Identities) || len(sum.KeySets) != len(v.KeySets) {
				t.Fatalf("%s judged %d identity and %d key-set vectors, want %d and %d",
					ex.name, len(sum.Identities), len(sum.KeySets), len(v.Identities), len(v.KeySets))
			}
			for i, got := range sum.Identities {
				want := goIDs[i]
				if got.Name != v.Identities[i].Name || got.V1 != want[0] || got.V2 != want[1] {
					t.Errorf("%s: vector %s: v1 %s, v2 %s; the Go SDK says %s: v1 %s, v2 %s",
						ex.name, got.Name, got.V1, got.V2, v.Identities[i].Name, want[0], want[1])
				}
			}
			for i, got := range sum.KeySets {
				want := v.KeySets[i]
				refused := got.Result == "pinned_key_missing"
				if got.Name != want.Name || !slices.Equal(got.Trusted, want.TrustedKeyIDs) || !slices.Equal(got.Trusted, goSets[i]) ||
					refused != (len(want.TrustedKeyIDs) == 0) {
					t.Errorf("%s: key set %s: trusted %v (%s); want %s: %v, as the Go SDK",
						ex.name, got.Name, got.Trusted, got.Result, want.Name, want.TrustedKeyIDs)
				}
			}

			path := filepath.Join(t.TempDir(), "broken_vectors.json")
			if err := os.WriteFile(path, broken, 0o600); err != nil {
				t.Fatal(err)
			}
			sum, err = runVectors(t, ex, path)
			if err == nil || sum.Disagreed != 1 {
				t.Errorf("%s accepted a vector whose signature_v2 is broken: exit %v, %d disagree, want 1", ex.name, err, sum.Disagreed)
			}
			for _, got := range sum.Identities {
				if got.Name == brokenName && got.V2 != "signature" {
					t.Errorf("%s: broken %s v2: %s, want signature", ex.name, got.Name, got.V2)
				}
			}
		})
	}
}

// breakSignature returns the vector file with one bit of the first valid
// version 2 signature flipped, the vector still marked valid, and that
// vector's name.
func breakSignature(t *testing.T, raw []byte) ([]byte, string) {
	t.Helper()
	var file map[string]any
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	for _, vec := range file["identities"].([]any) {
		vec := vec.(map[string]any)
		if vec["valid_v2"] != true {
			continue
		}
		id := vec["identity"].(map[string]any)
		sig, err := base64.StdEncoding.DecodeString(id["signature_v2"].(string))
		if err != nil || len(sig) == 0 {
			t.Fatalf("vector %v: signature_v2: %v", vec["name"], err)
		}
		sig[len(sig)/2] ^= 0x01
		id["signature_v2"] = base64.StdEncoding.EncodeToString(sig)
		out, err := json.Marshal(file)
		if err != nil {
			t.Fatal(err)
		}
		return out, vec["name"].(string)
	}
	t.Fatal("no valid vector to break")
	return nil, ""
}
