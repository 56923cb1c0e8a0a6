package fleet

import (
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/store"
	"github.com/posfleet/posfleet/server/store/storetest"
)

// TestSignedIdentitiesLieInTheirKeysValidity: an identity whose issue time
// was read just before a rotation, and signed just after it, carries the
// new key and an issue time no earlier than that key's creation; the old
// key retires no earlier than any issue time read before the rotation.
// Verifiers refuse identities outside their key's window.
func TestSignedIdentitiesLieInTheirKeysValidity(t *testing.T) {
	db := storetest.Open(t)
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	s, err := openSigner(db, t0)
	if err != nil {
		t.Fatal(err)
	}
	oldID := s.activeKeyID()
	issued := t0.Add(time.Second)                // the caller reads the clock...
	rotated := t0.Add(3 * time.Second)           // ...a rotation lands first...
	clock := func() time.Time { return rotated } // (read under the lock)
	commit := func(fn func(tx *store.Txn) error, _ PublicKey) error { return db.Update(fn) }
	newID, err := s.rotate(clock, commit)
	if err != nil {
		t.Fatal(err)
	}
	id := &Identity{MerchantID: "M1", TerminalID: "T0000001", IdentityVersion: 1, IssueTime: issued}
	s.sign(id) // ...and the identity is signed after it.
	if id.KeyID != newID || id.IssueTime.Before(rotated) {
		t.Errorf("signed by %s at %v; want %s at or after its creation %v", id.KeyID, id.IssueTime, newID, rotated)
	}
	if err := VerifyIdentity(id); err != nil {
		t.Errorf("identity with a raised issue time does not verify: %v", err)
	}
	for _, k := range s.publicKeys() {
		if k.KeyID == oldID && k.Retired.Before(issued) {
			t.Errorf("old key retired at %v, before an issue time %v read ahead of the rotation", k.Retired, issued)
		}
	}
}

// TestPublicKeysNewestFirstWithinOneSecond: keys rotated within the same
// second are listed newest first, each after the key it endorses.
func TestPublicKeysNewestFirstWithinOneSecond(t *testing.T) {
	db := storetest.Open(t)
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	s, err := openSigner(db, t0)
	if err != nil {
		t.Fatal(err)
	}
	commit := func(fn func(tx *store.Txn) error, _ PublicKey) error { return db.Update(fn) }
	ids := []string{s.activeKeyID()}
	for range 5 {
		id, err := s.rotate(func() time.Time { return t0 }, commit)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	keys := s.publicKeys()
	for i, k := range keys {
		if want := ids[len(ids)-1-i]; k.KeyID != want {
			t.Fatalf("key %d is %s, want %s (newest first)", i, k.KeyID, want)
		}
		if i+1 < len(keys) && k.EndorsedBy != keys[i+1].KeyID {
			t.Errorf("key %s endorsed by %s, listed before %s", k.KeyID, k.EndorsedBy, keys[i+1].KeyID)
		}
	}
}
