package fleet

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/posfleet/posfleet/internal/recordcheck"
)

// FuzzFleetRecords feeds arbitrary bytes to the decoder of every stored
// fleet record: none may panic, what it accepts must round-trip unchanged,
// and bytes without the schema version are refused.
func FuzzFleetRecords(f *testing.F) {
	now := time.Unix(1_800_000_000, 0).UTC()
	for _, v := range []any{
		&Merchant{ID: "M1", LegalName: "M1 Ltd", MCC: "5411", Currency: "NZD"},
		&Store{MerchantID: "M1", ID: "S1", Name: "S1"},
		&terminalRec{ID: "T0000001", Serial: "SN1", MerchantID: "M1", StoreID: "S1", State: StateActive, Created: now, CredHash: []byte{1, 2}},
		&heartbeatRec{Last: now},
		&faultRec{TerminalID: "T0000001", Received: now},
		&Command{},
		&signingKeyRec{Seed: make([]byte, ed25519.SeedSize), Created: now},
	} {
		b, err := encode(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte(`{"id":"M1"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		recordcheck.RoundTripAny[Merchant](t, data, schemaV1, decode, encode)
		recordcheck.RoundTripAny[Store](t, data, schemaV1, decode, encode)
		recordcheck.RoundTripAny[terminalRec](t, data, schemaV1, decode, encode)
		recordcheck.RoundTripAny[heartbeatRec](t, data, schemaV1, decode, encode)
		recordcheck.RoundTripAny[faultRec](t, data, schemaV1, decode, encode)
		recordcheck.RoundTripAny[Command](t, data, schemaV1, decode, encode)
		recordcheck.RoundTripAny[signingKeyRec](t, data, schemaV1, decode, encode)
	})
}

// FuzzIdentity signs an identity made of fuzzed fields: it must verify, and
// changing any signed field (the fuzzer picks which and to what) must make
// it fail, as must a signature or payload that is not the signer's.
func FuzzIdentity(f *testing.F) {
	f.Add("M1", "M1 Ltd", "Shop", "5411", "S1", "Main St", "T0000001", uint64(1), int64(1_800_000_000), uint8(0), "M2", []byte(nil))
	f.Add("M\\n1", "a\nb", "", "", "", "", "", uint64(0), int64(0), uint8(3), "a\\nb", []byte("x"))
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	pub := priv.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, merchant, legal, display, mcc, store, storeName, terminal string, version uint64, issue int64,
		field uint8, other string, garbage []byte) {
		id := &Identity{MerchantID: merchant, LegalName: legal, DisplayName: display, MCC: mcc, StoreID: store, StoreName: storeName,
			TerminalID: terminal, IdentityVersion: version, IssueTime: time.Unix(issue, 0).UTC(), KeyID: KeyID(pub), PublicKey: pub}
		id.Currency, id.StoreAddress = legal, Address{Line1: storeName, Country: mcc}
		id.SignedPayload = CanonicalPayload(id)
		id.Signature = ed25519.Sign(priv, id.SignedPayload)
		id.SignedPayloadV2 = CanonicalPayloadV2(id)
		id.SignatureV2 = ed25519.Sign(priv, id.SignedPayloadV2)
		if err := VerifyIdentity(id); err != nil {
			t.Fatalf("freshly signed identity: %v", err)
		}

		changed := *id
		fields := []*string{&changed.MerchantID, &changed.LegalName, &changed.DisplayName, &changed.MCC, &changed.StoreID,
			&changed.StoreName, &changed.TerminalID, &changed.KeyID, &changed.Currency, &changed.StoreAddress.Line1,
			&changed.StoreAddress.Country}
		switch i := int(field) % (len(fields) + 2); {
		case i < len(fields):
			if *fields[i] == other {
				return
			}
			*fields[i] = other
		case i == len(fields):
			changed.IdentityVersion++
		default:
			changed.IssueTime = changed.IssueTime.Add(time.Second)
		}
		if err := VerifyIdentity(&changed); err == nil {
			t.Errorf("identity with field %d changed to %q verifies", field, other)
		}
		// Payloads re-encoded from the changed fields are not what was signed.
		changed.SignedPayload = CanonicalPayload(&changed)
		changed.SignedPayloadV2 = CanonicalPayloadV2(&changed)
		if err := VerifyIdentity(&changed); err == nil {
			t.Errorf("identity with field %d changed and its payload re-encoded verifies", field)
		}

		forged := *id
		forged.Signature = garbage
		if err := VerifyIdentity(&forged); err == nil && string(garbage) != string(id.Signature) {
			t.Errorf("identity with signature %x verifies", garbage)
		}
		forged = *id
		forged.SignedPayload = garbage
		if err := VerifyIdentity(&forged); err == nil && string(garbage) != string(id.SignedPayload) {
			t.Errorf("identity with payload %q verifies", garbage)
		}
		forged = *id
		forged.SignatureV2 = garbage
		if err := VerifyIdentity(&forged); err == nil && string(garbage) != string(id.SignatureV2) {
			t.Errorf("identity with v2 signature %x verifies", garbage)
		}
		forged = *id
		forged.SignedPayloadV2 = garbage
		if err := VerifyIdentity(&forged); err == nil && string(garbage) != string(id.SignedPayloadV2) {
			t.Errorf("identity with v2 payload %q verifies", garbage)
		}
		forged = *id
		forged.PublicKey = garbage
		if err := VerifyIdentity(&forged); err == nil && string(garbage) != string(pub) {
			t.Errorf("identity with public key %x verifies", garbage)
		}
	})
}
