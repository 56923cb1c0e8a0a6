package fleet_test

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/fleet"
)

func TestCanonicalPayload(t *testing.T) {
	id := &fleet.Identity{
		MerchantID: "MID1", LegalName: "Back\\slash\nLtd", DisplayName: "Kiwi", MCC: "5411",
		StoreID: "akl-01", StoreName: "Queen St", TerminalID: "AB12CD34", IdentityVersion: 7,
		IssueTime: time.Date(2025, 3, 1, 9, 30, 15, 999_000_000, time.FixedZone("NZDT", 13*3600)),
		KeyID:     "0123456789abcdef",
	}
	want := "posfleet-identity-v1\n" +
		"merchant_id=MID1\n" +
		"legal_name=Back\\\\slash\\nLtd\n" +
		"display_name=Kiwi\n" +
		"mcc=5411\n" +
		"store_id=akl-01\n" +
		"store_name=Queen St\n" +
		"terminal_id=AB12CD34\n" +
		"identity_version=7\n" +
		"issue_time=2025-02-28T20:30:15Z\n" +
		"key_id=0123456789abcdef\n"
	if got := string(fleet.CanonicalPayload(id)); got != want {
		t.Errorf("CanonicalPayload:\ngot  %q\nwant %q", got, want)
	}
}

func TestIdentityIsSignedAndVerifies(t *testing.T) {
	e := newEnv(t)
	e.merchant("MID1", "s1")
	reg := e.registered("SN1", "MID1", "s1")
	id := reg.Identity
	if err := fleet.VerifyIdentity(&id); err != nil {
		t.Fatalf("VerifyIdentity: %v", err)
	}
	keys := e.f.PublicKeys()
	if len(keys) != 1 || !keys[0].Active || keys[0].KeyID != id.KeyID || fleet.KeyID(keys[0].Key) != id.KeyID || len(id.KeyID) != 16 {
		t.Fatalf("public keys %+v, identity key %q: want one active key with the identity's 16-hex key ID", keys, id.KeyID)
	}
	tampered := id
	tampered.MerchantID = "MID2"
	if err := fleet.VerifyIdentity(&tampered); err == nil {
		t.Error("VerifyIdentity accepted an identity whose fields differ from the payload")
	}
	tampered = id
	tampered.SignedPayload = []byte(strings.Replace(string(id.SignedPayload), "MID1", "MID2", 1))
	tampered.MerchantID = "MID2"
	if err := fleet.VerifyIdentity(&tampered); err == nil {
		t.Error("VerifyIdentity accepted a payload that was changed after signing")
	}

	// Rotation: new identities name the new key; the old key stays published.
	rotated, err := e.f.RotateSigningKey(t.Context(), admin)
	newKey := rotated.KeyID
	if err != nil {
		t.Fatal(err)
	}
	id2, err := e.f.Identity(reg.Terminal.ID)
	if err != nil {
		t.Fatal(err)
	}
	if id2.KeyID != newKey || id2.KeyID == id.KeyID {
		t.Errorf("after rotation identity key = %s, want new key %s", id2.KeyID, newKey)
	}
	if err := fleet.VerifyIdentity(&id2); err != nil {
		t.Errorf("identity after rotation: %v", err)
	}
	if n := len(e.f.PublicKeys()); n != 2 {
		t.Errorf("published keys after rotation = %d, want 2", n)
	}
}

func TestIdentityVersionOnUpdateAndRebind(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.merchant("MID1", "s1", "s2")
	e.merchant("MID2", "x1")
	reg := e.registered("SN1", "MID1", "s1")
	id := reg.Terminal.ID
	version := func() uint64 {
		t.Helper()
		ident, err := e.f.Identity(id)
		if err != nil {
			t.Fatal(err)
		}
		if err := fleet.VerifyIdentity(&ident); err != nil {
			t.Fatal(err)
		}
		return ident.IdentityVersion
	}
	if v := version(); v != 1 {
		t.Fatalf("initial identity version = %d, want 1", v)
	}
	for range 3 { // MID1 at version 4
		name := "Renamed"
		if _, err := e.f.UpdateMerchant(ctx, "MID1", fleet.MerchantUpdate{DisplayName: &name}, admin); err != nil {
			t.Fatal(err)
		}
	}
	if v := version(); v != 4 {
		t.Fatalf("after three merchant updates identity version = %d, want 4", v)
	}
	ident, _ := e.f.Identity(id)
	if ident.DisplayName != "Renamed" {
		t.Errorf("identity display name = %q, want the updated Renamed", ident.DisplayName)
	}
	// MID2 is at version 1: a rebind must still move the terminal forward.
	tv, err := e.f.Rebind(ctx, id, "MID2", "x1", "sold to MID2", admin)
	if err != nil {
		t.Fatal(err)
	}
	if tv.IdentityVersion != 5 || version() != 5 {
		t.Fatalf("after rebind identity version = %d/%d, want 5", tv.IdentityVersion, version())
	}
	if ref, err := e.f.Authenticate(reg.Credential); err != nil || ref.MerchantID != "MID2" {
		t.Errorf("binding after rebind = %+v, %v; want MID2", ref, err)
	}
	if _, err := e.f.Rebind(ctx, id, "MID2", "x1", "again", admin); !errors.Is(err, fleet.ErrSameBinding) {
		t.Errorf("rebind to the same store: %v, want ErrSameBinding", err)
	}
	if _, err := e.f.Rebind(ctx, id, "MID1", "nope", "x", admin); !errors.Is(err, fleet.ErrStoreNotFound) {
		t.Errorf("rebind to a missing store: %v, want ErrStoreNotFound", err)
	}
	evs := e.events(audit.TerminalRebound)
	if len(evs) != 2 { // one on each merchant's trail
		t.Fatalf("rebind audit events = %d, want 2", len(evs))
	}
	if a := evs[0].Attributes; a["from_merchant_id"] != "MID1" || a["to_merchant_id"] != "MID2" || a["reason"] != "sold to MID2" {
		t.Errorf("rebind attributes = %v", a)
	}
	// A merchant update of the new merchant bumps it again.
	if _, err := e.f.UpdateMerchant(ctx, "MID2", fleet.MerchantUpdate{}, admin); err != nil {
		t.Fatal(err)
	}
	if v := version(); v != 6 {
		t.Errorf("after MID2 update identity version = %d, want 6", v)
	}
}

// Payload v2 signs what v1 left out: the store address and the merchant's
// currency. Tampering with either fails verification.
func TestIdentityV2SignsAddressAndCurrency(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	if _, err := e.f.CreateMerchant(ctx, fleet.Merchant{ID: "MID1", LegalName: "L", MCC: "5411", Currency: "NZD"}, admin); err != nil {
		t.Fatal(err)
	}
	if _, err := e.f.CreateStore(ctx, fleet.Store{MerchantID: "MID1", ID: "s1", Name: "One",
		Address: fleet.Address{Line1: "1 Queen St\r", City: "Auckland", Country: "NZ"}}, admin); err != nil {
		t.Fatal(err)
	}
	reg, err := e.register("SN1", e.provision("SN1", "MID1", "s1").EnrollmentCode)
	if err != nil {
		t.Fatal(err)
	}
	id := reg.Identity
	if id.Currency != "NZD" || !strings.Contains(string(id.SignedPayloadV2), "\naddress_line1=1 Queen St\\r\n") {
		t.Fatalf("identity currency %q, v2 payload %q; want NZD and the escaped address", id.Currency, id.SignedPayloadV2)
	}
	if err := fleet.VerifyIdentity(&id); err != nil {
		t.Fatalf("VerifyIdentity: %v", err)
	}
	for name, tamper := range map[string]func(*fleet.Identity){
		"address":  func(i *fleet.Identity) { i.StoreAddress.Line1 = "9 Fake Rd" },
		"country":  func(i *fleet.Identity) { i.StoreAddress.Country = "AU" },
		"currency": func(i *fleet.Identity) { i.Currency = "AUD" },
	} {
		tampered := id
		tamper(&tampered)
		if string(fleet.CanonicalPayload(&tampered)) != string(id.SignedPayload) {
			t.Fatalf("%s: v1 payload changed; it must stay as verifiers of v1 know it", name)
		}
		if err := fleet.VerifyIdentity(&tampered); err == nil {
			t.Errorf("VerifyIdentity accepted a tampered %s", name)
		}
	}
}

// A rotation keeps the old key published as retired, endorses the new key
// with the old one, is audited and survives a restart.
func TestSigningKeyRotationEndorsesAndRetires(t *testing.T) {
	e := newEnv(t)
	old := e.f.ActiveSigningKey()
	e.clock.Advance(time.Hour)
	k, err := e.f.RotateSigningKey(t.Context(), admin)
	if err != nil {
		t.Fatal(err)
	}
	e = e.reopen()
	keys := e.f.PublicKeys()
	if len(keys) != 2 || keys[0].KeyID != k.KeyID || !keys[0].Active || keys[1].KeyID != old.KeyID || keys[1].Active {
		t.Fatalf("keys after rotation and restart = %+v; want the new key active first, then %s", keys, old.KeyID)
	}
	if !keys[1].Retired.Equal(keys[0].Created) || keys[0].Created.IsZero() {
		t.Errorf("old key retired %v, new key created %v; want equal and set", keys[1].Retired, keys[0].Created)
	}
	if keys[0].EndorsedBy != old.KeyID || !ed25519.Verify(old.Key, fleet.EndorsementPayload(k.KeyID, k.Key, k.Created), keys[0].Endorsement) {
		t.Errorf("new key endorsed by %q with %x; want a valid endorsement by %s", keys[0].EndorsedBy, keys[0].Endorsement, old.KeyID)
	}
	evs := e.events(audit.SigningKeyRotated)
	if len(evs) != 1 || evs[0].Attributes["key_id"] != k.KeyID || evs[0].Attributes["previous_key_id"] != old.KeyID ||
		evs[0].Attributes["fingerprint"] != k.Fingerprint() {
		t.Errorf("rotation audit events = %+v; want one naming %s after %s", evs, k.KeyID, old.KeyID)
	}
}
