package server

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/posfleet/posfleet/server/fleet"
)

var updateVectors = flag.Bool("update-vectors", false, "rewrite proto/posfleet/v1/testdata/identity_vectors.json instead of failing on drift")

// vectorsFile holds the identity test vectors every client checks.
const vectorsFile = "../proto/posfleet/v1/testdata/identity_vectors.json"

// The vectors are made by the server's own encoder and the key IDs and
// fingerprints of fleet, with fixed test keys, so the file shows exactly
// what the server signs; CI fails when the encoding drifts from the file.
// The Go SDK's verifier checks every vector (client/identity_vectors_test.go).
func TestIdentityVectorsUpToDate(t *testing.T) {
	got := buildIdentityVectors(t)
	if *updateVectors {
		if err := os.WriteFile(vectorsFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(vectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from what the server's encoder makes: run go test ./server/ -run TestIdentityVectorsUpToDate -update-vectors and review the diff", vectorsFile)
	}
}

type vectorKey struct {
	Name        string `json:"name"`
	SeedHex     string `json:"seed_hex"`
	PublicKey   string `json:"public_key_hex"`
	KeyID       string `json:"key_id"`
	Fingerprint string `json:"fingerprint"`
	priv        ed25519.PrivateKey
}

type identityVector struct {
	Name              string          `json:"name"`
	Description       string          `json:"description"`
	PinnedFingerprint string          `json:"pinned_fingerprint"`
	ValidV1           bool            `json:"valid_v1"`
	ValidV2           bool            `json:"valid_v2"`
	Identity          json.RawMessage `json:"identity"`
	PayloadV1Text     string          `json:"signed_payload_v1_text"`
	PayloadV2Text     string          `json:"signed_payload_v2_text"`
}

type keySetVector struct {
	Name              string            `json:"name"`
	Description       string            `json:"description"`
	PinnedFingerprint string            `json:"pinned_fingerprint"`
	Keys              []json.RawMessage `json:"keys"`
	// TrustedKeyIDs are the keys a terminal that pinned PinnedFingerprint
	// trusts; empty when the set must be refused.
	TrustedKeyIDs []string `json:"trusted_key_ids"`
}

type vectorFile struct {
	About      []string         `json:"about"`
	Keys       []vectorKey      `json:"keys"`
	Identities []identityVector `json:"identities"`
	KeySets    []keySetVector   `json:"key_sets"`
}

func testVectorKey(name string) vectorKey {
	seed := sha256.Sum256([]byte("posfleet identity test vector key " + name))
	priv := ed25519.NewKeyFromSeed(seed[:])
	pub := priv.Public().(ed25519.PublicKey)
	return vectorKey{Name: name, SeedHex: hex.EncodeToString(seed[:]), PublicKey: hex.EncodeToString(pub),
		KeyID: fleet.KeyID(pub), Fingerprint: fleet.Fingerprint(pub), priv: priv}
}

// compactProto is m as protojson with the .proto field names, whitespace
// normalized (protojson varies it on purpose).
func compactProto(t *testing.T, m proto.Message) json.RawMessage {
	t.Helper()
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func buildIdentityVectors(t *testing.T) []byte {
	k1, k2, k3, k4 := testVectorKey("k1"), testVectorKey("k2"), testVectorKey("k3"), testVectorKey("k4")
	base := fleet.Identity{
		MerchantID: "ACME01", LegalName: "Acme Foods Ltd", DisplayName: "Acme", MCC: "5411", Currency: "NZD",
		StoreID: "akl-01", StoreName: "Auckland CBD",
		StoreAddress: fleet.Address{Line1: "1 Queen Street", Line2: "Level 2", City: "Auckland", Region: "Auckland", PostalCode: "1010", Country: "NZ"},
		TerminalID:   "AB12CD34", IdentityVersion: 3, IssueTime: time.Date(2026, 1, 31, 8, 5, 9, 0, time.UTC),
	}
	// sign signs id with k as the server does; edit, when given, changes the
	// identity after signing (the structured fields a verifier compares).
	sign := func(id fleet.Identity, k vectorKey) *fleet.Identity {
		id.IssueTime = id.IssueTime.UTC()
		id.PublicKey = k.priv.Public().(ed25519.PublicKey)
		id.KeyID = fleet.KeyID(id.PublicKey)
		trunc := id
		trunc.IssueTime = id.IssueTime.Truncate(time.Second)
		id.SignedPayload = fleet.CanonicalPayload(&trunc)
		id.Signature = ed25519.Sign(k.priv, id.SignedPayload)
		id.SignedPayloadV2 = fleet.CanonicalPayloadV2(&trunc)
		id.SignatureV2 = ed25519.Sign(k.priv, id.SignedPayloadV2)
		return &id
	}
	with := func(edit func(*fleet.Identity)) fleet.Identity {
		id := base
		edit(&id)
		return id
	}
	resignV2 := func(id *fleet.Identity, k vectorKey, payload string) *fleet.Identity {
		id.SignedPayloadV2 = []byte(payload)
		id.SignatureV2 = ed25519.Sign(k.priv, id.SignedPayloadV2)
		return id
	}
	var ids []identityVector
	add := func(name, desc string, v1, v2 bool, id *fleet.Identity) {
		ids = append(ids, identityVector{Name: name, Description: desc, PinnedFingerprint: k1.Fingerprint,
			ValidV1: v1, ValidV2: v2, Identity: compactProto(t, identityToPB(*id)),
			PayloadV1Text: string(id.SignedPayload), PayloadV2Text: string(id.SignedPayloadV2)})
	}

	add("basic", "Every field set, plain ASCII.", true, true, sign(base, k1))
	add("escaping", "Backslashes, a line feed, a carriage return, a literal backslash-n and backslash-r, "+
		"an equals sign, a tab, non-ASCII text and empty fields. In v1 the carriage return is not escaped.", true, true,
		sign(with(func(i *fleet.Identity) {
			i.LegalName = `Back\slash "Quoted" Ltd`
			i.DisplayName = "Line one\nLine two"
			i.StoreName = "Carriage\rreturn"
			i.StoreAddress.Line1 = `C:\new\road` + "\t=tab"
			i.StoreAddress.Line2 = ""
			i.StoreAddress.City = "Café 北京 🍜"
			i.StoreAddress.Region = `ends with a backslash\`
		}), k1))
	add("issue_time_truncated", "issue_time has a fraction of a second: the payload truncates it (never rounds up).", true, true,
		sign(with(func(i *fleet.Identity) { i.IssueTime = i.IssueTime.Add(999_999_999 * time.Nanosecond) }), k1))
	add("max_identity_version", "identity_version is the largest uint64, written in decimal.", true, true,
		sign(with(func(i *fleet.Identity) { i.IdentityVersion = 1<<64 - 1 }), k1))
	add("no_address", "The store has no address: every address line is empty.", true, true,
		sign(with(func(i *fleet.Identity) { i.StoreAddress = fleet.Address{} }), k1))

	tampered := func(edit func(*fleet.Identity)) *fleet.Identity {
		id := sign(base, k1)
		edit(id)
		return id
	}
	add("tampered_address", "The address was changed after signing: v1 does not cover it, v2 does.", true, false,
		tampered(func(i *fleet.Identity) { i.StoreAddress.Line1 = "9 Fake Road" }))
	add("tampered_currency", "The currency was changed after signing: only v2 covers it.", true, false,
		tampered(func(i *fleet.Identity) { i.Currency = "AUD" }))
	add("tampered_merchant", "merchant_id was changed after signing.", false, false,
		tampered(func(i *fleet.Identity) { i.MerchantID = "EVIL01" }))
	add("issue_time_rounded_up", "Both payloads say 08:05:10Z for an issue_time of 08:05:09.6: rounding up is wrong.", false, false,
		func() *fleet.Identity {
			id := sign(with(func(i *fleet.Identity) { i.IssueTime = i.IssueTime.Add(time.Second) }), k1)
			id.IssueTime = base.IssueTime.Add(600 * time.Millisecond)
			return id
		}())
	add("raw_carriage_return_in_v2", "The v2 payload holds a raw carriage return where the escape \\r belongs; the key signed it, but it is not the canonical encoding.", true, false,
		func() *fleet.Identity {
			id := sign(with(func(i *fleet.Identity) { i.StoreName = "Carriage\rreturn" }), k1)
			return resignV2(id, k1, strings.Replace(string(id.SignedPayloadV2), `Carriage\rreturn`, "Carriage\rreturn", 1))
		}())
	add("lines_out_of_order", "The v2 payload has the mcc and currency lines swapped, validly signed.", true, false,
		func() *fleet.Identity {
			id := sign(base, k1)
			return resignV2(id, k1, strings.Replace(string(id.SignedPayloadV2), "mcc=5411\ncurrency=NZD\n", "currency=NZD\nmcc=5411\n", 1))
		}())
	add("bad_signature_v2", "signature_v2 has one bit flipped.", true, false,
		func() *fleet.Identity {
			id := sign(base, k1)
			id.SignatureV2 = append([]byte(nil), id.SignatureV2...)
			id.SignatureV2[10] ^= 0x01
			return id
		}())
	add("untrusted_key", "Correctly signed, but by a key other than the pinned one (a forged server).", false, false, sign(base, k3))
	add("key_id_mismatch", "key_id (in the fields and both payloads) names another key than public_key.", false, false,
		func() *fleet.Identity {
			id := base
			id.PublicKey = k1.priv.Public().(ed25519.PublicKey)
			id.KeyID = k2.KeyID
			id.SignedPayload = fleet.CanonicalPayload(&id)
			id.Signature = ed25519.Sign(k1.priv, id.SignedPayload)
			id.SignedPayloadV2 = fleet.CanonicalPayloadV2(&id)
			id.SignatureV2 = ed25519.Sign(k1.priv, id.SignedPayloadV2)
			return &id
		}())

	created := func(d int) time.Time { return time.Date(2026, 1, d, 0, 0, 0, 0, time.UTC) }
	key := func(k vectorKey, by *vectorKey, signer vectorKey, made, retired time.Time) json.RawMessage {
		pub := k.priv.Public().(ed25519.PublicKey)
		pk := fleet.PublicKey{KeyID: k.KeyID, Key: pub, Active: retired.IsZero(), Created: made, Retired: retired}
		if by != nil {
			pk.EndorsedBy = by.KeyID
			pk.Endorsement = ed25519.Sign(signer.priv, fleet.EndorsementPayload(k.KeyID, pub, made))
		}
		return compactProto(t, signingKeyToPB(pk))
	}
	sets := []keySetVector{
		{Name: "rotation_chain", Description: "k1 was pinned; k2 was endorsed by k1 and k3 (active) by k2: all three are trusted.",
			PinnedFingerprint: k1.Fingerprint,
			Keys: []json.RawMessage{
				key(k3, &k2, k2, created(20), time.Time{}),
				key(k2, &k1, k1, created(10), created(20)),
				key(k1, nil, k1, created(1), created(10)),
			},
			TrustedKeyIDs: []string{k3.KeyID, k2.KeyID, k1.KeyID}},
		{Name: "forged_endorsement", Description: "k4 claims an endorsement by k1 but signed it itself: only k1 is trusted.",
			PinnedFingerprint: k1.Fingerprint,
			Keys: []json.RawMessage{
				key(k4, &k1, k4, created(20), time.Time{}),
				key(k1, nil, k1, created(1), created(20)),
			},
			TrustedKeyIDs: []string{k1.KeyID}},
		{Name: "pinned_key_missing", Description: "The pinned key is not in the set (k2 names it as endorser, but k1 itself is absent): refuse the set.",
			PinnedFingerprint: k1.Fingerprint,
			Keys:              []json.RawMessage{key(k2, &k1, k1, created(10), time.Time{})},
			TrustedKeyIDs:     []string{}},
	}

	doc := vectorFile{
		About: []string{
			"posfleet identity test vectors. Format: see README.md in this directory.",
			"Test keys only, made from published seeds: never trust them in production.",
			"Generated by the server's encoder: go test ./server/ -run TestIdentityVectorsUpToDate -update-vectors",
		},
		Keys: []vectorKey{k1, k2, k3, k4}, Identities: ids, KeySets: sets,
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}
