package fleet

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/posfleet/posfleet/server/store"
)

// Identity is a terminal's merchant identity, signed with the server's
// Ed25519 key.
type Identity struct {
	MerchantID  string
	LegalName   string
	DisplayName string
	MCC         string
	// Currency is the merchant's ISO 4217 currency (signed in payload v2
	// only).
	Currency        string
	StoreID         string
	StoreName       string
	StoreAddress    Address
	TerminalID      string
	IdentityVersion uint64
	// IssueTime is when it was signed, truncated to whole seconds.
	IssueTime time.Time
	// KeyID is the first 16 hex characters of the SHA-256 of PublicKey.
	KeyID     string
	PublicKey ed25519.PublicKey
	// SignedPayload is CanonicalPayload of the fields above; Signature is
	// its Ed25519 signature.
	SignedPayload []byte
	Signature     []byte
	// SignedPayloadV2 is CanonicalPayloadV2 of the fields above, which
	// covers every field; SignatureV2 is its Ed25519 signature with the
	// same key.
	SignedPayloadV2 []byte
	SignatureV2     []byte
}

// CanonicalPayload returns the bytes an identity's version 1 signature
// covers: the line "posfleet-identity-v1", then one "name=value" line per
// field (merchant_id, legal_name, display_name, mcc, store_id, store_name,
// terminal_id, identity_version, issue_time, key_id), every line ended by a
// line feed. In values a backslash becomes two backslashes and a line feed
// a backslash and 'n'; a carriage return is not escaped. issue_time is as in
// CanonicalPayloadV2. Version 1 covers neither the address nor the
// currency; it is kept unchanged for verifiers written against it.
func CanonicalPayload(id *Identity) []byte {
	var b strings.Builder
	b.WriteString("posfleet-identity-v1\n")
	line := func(name, value string) {
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(escapeValue(value))
		b.WriteByte('\n')
	}
	line("merchant_id", id.MerchantID)
	line("legal_name", id.LegalName)
	line("display_name", id.DisplayName)
	line("mcc", id.MCC)
	line("store_id", id.StoreID)
	line("store_name", id.StoreName)
	line("terminal_id", id.TerminalID)
	line("identity_version", strconv.FormatUint(id.IdentityVersion, 10))
	line("issue_time", id.IssueTime.UTC().Truncate(time.Second).Format(time.RFC3339))
	line("key_id", id.KeyID)
	return []byte(b.String())
}

var valueEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)

func escapeValue(s string) string { return valueEscaper.Replace(s) }

// PayloadV2Header is the first line of a version 2 identity payload.
const PayloadV2Header = "posfleet-identity-v2"

// CanonicalPayloadV2 returns the bytes an identity's version 2 signature
// covers: the line PayloadV2Header, then one "name=value" line per field,
// every line ended by a line feed, in this order: merchant_id, legal_name,
// display_name, mcc, currency, store_id, store_name, address_line1,
// address_line2, address_city, address_region, address_postal_code,
// address_country, terminal_id, identity_version, issue_time, key_id. In
// values, and only there, a backslash becomes two backslashes, a line feed
// a backslash and 'n', a carriage return a backslash and 'r'; nothing else
// is escaped. identity_version is in decimal; issue_time is RFC 3339 in UTC
// with a 'Z' and whole seconds (the time of signing truncated, never
// rounded up).
func CanonicalPayloadV2(id *Identity) []byte {
	var b strings.Builder
	b.WriteString(PayloadV2Header + "\n")
	for _, f := range PayloadV2Fields(id) {
		b.WriteString(f[0])
		b.WriteByte('=')
		b.WriteString(valueEscaperV2.Replace(f[1]))
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// PayloadV2Fields returns the names and unescaped values of the lines of
// id's version 2 payload, in order.
func PayloadV2Fields(id *Identity) [][2]string {
	a := id.StoreAddress
	return [][2]string{
		{"merchant_id", id.MerchantID},
		{"legal_name", id.LegalName},
		{"display_name", id.DisplayName},
		{"mcc", id.MCC},
		{"currency", id.Currency},
		{"store_id", id.StoreID},
		{"store_name", id.StoreName},
		{"address_line1", a.Line1},
		{"address_line2", a.Line2},
		{"address_city", a.City},
		{"address_region", a.Region},
		{"address_postal_code", a.PostalCode},
		{"address_country", a.Country},
		{"terminal_id", id.TerminalID},
		{"identity_version", strconv.FormatUint(id.IdentityVersion, 10)},
		{"issue_time", id.IssueTime.UTC().Truncate(time.Second).Format(time.RFC3339)},
		{"key_id", id.KeyID},
	}
}

var valueEscaperV2 = strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\r", `\r`)

// KeyID returns the key identifier of an Ed25519 public key: the first 16
// hex characters of its SHA-256 (of Fingerprint).
func KeyID(pub ed25519.PublicKey) string {
	return Fingerprint(pub)[:16]
}

// Fingerprint returns the fingerprint of an Ed25519 public key: the SHA-256
// of its 32 bytes in lower-case hex (64 characters). Operators read it out
// of band to terminals, which pin it.
func Fingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:])
}

// VerifyIdentity checks id's signature with its public key and that the
// signed payload is the canonical encoding of its fields. The caller decides
// whether it trusts id.PublicKey (see Fleet.PublicKeys).
func VerifyIdentity(id *Identity) error {
	if len(id.PublicKey) != ed25519.PublicKeySize {
		return errors.New("fleet: identity has no valid public key")
	}
	if KeyID(id.PublicKey) != id.KeyID {
		return errors.New("fleet: identity key_id does not match its public key")
	}
	if !ed25519.Verify(id.PublicKey, id.SignedPayload, id.Signature) {
		return errors.New("fleet: identity signature invalid")
	}
	if string(CanonicalPayload(id)) != string(id.SignedPayload) {
		return errors.New("fleet: identity fields differ from the signed payload")
	}
	if id.SignedPayloadV2 == nil && id.SignatureV2 == nil {
		return nil
	}
	if !ed25519.Verify(id.PublicKey, id.SignedPayloadV2, id.SignatureV2) {
		return errors.New("fleet: identity v2 signature invalid")
	}
	if string(CanonicalPayloadV2(id)) != string(id.SignedPayloadV2) {
		return errors.New("fleet: identity fields differ from the signed v2 payload")
	}
	return nil
}

// Signing keys live under "fk/<key id>"; "fka" names the active key.
var (
	prefixSigningKey = []byte("fk/")
	keyActiveSigner  = []byte("fka")
)

// signingKeyRec is the stored form of a signing key.
type signingKeyRec struct {
	Seed    []byte    `json:"seed"`
	Created time.Time `json:"ct"`
	// Retired is when a newer key replaced it as the active one; zero while
	// it is active (and in records written before it existed).
	Retired time.Time `json:"rt,omitzero"`
	// EndorsedBy is the key that was active when this one was created, and
	// Endorsement its signature of EndorsementPayload; empty for the first
	// key.
	EndorsedBy  string `json:"eb,omitempty"`
	Endorsement []byte `json:"en,omitempty"`
}

// EndorsementHeader is the first line of a signing key endorsement payload.
const EndorsementHeader = "posfleet-signing-key-v1"

// EndorsementPayload returns the bytes the previous active key signs to
// endorse a new signing key: the line EndorsementHeader, then the lines
// "key_id=<key id>", "public_key=<32 bytes in lower-case hex>" and
// "create_time=<RFC 3339 UTC, whole seconds>", each ended by a line feed.
func EndorsementPayload(keyID string, pub ed25519.PublicKey, created time.Time) []byte {
	return []byte(EndorsementHeader + "\nkey_id=" + keyID + "\npublic_key=" + hex.EncodeToString(pub) +
		"\ncreate_time=" + created.UTC().Truncate(time.Second).Format(time.RFC3339) + "\n")
}

// signer holds the server's Ed25519 identity keys: the active one signs, the
// others (after a rotation) remain published for verification.
type signer struct {
	db *store.DB

	mu sync.RWMutex // guards the fields below
	// active signs new identities.
	active ed25519.PrivateKey
	// activeID is KeyID of active.
	activeID string
	// keys holds every known key by key ID (its seed only in active).
	keys map[string]signingKeyRec
}

// openSigner loads the signing keys, creating the first one on first start.
func openSigner(db *store.DB, now time.Time) (*signer, error) {
	s := &signer{db: db, keys: map[string]signingKeyRec{}}
	var activeID string
	recs := map[string]signingKeyRec{}
	err := db.View(func(tx *store.Txn) error {
		v, err := tx.Get(keyActiveSigner)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return err
		default:
			activeID = string(v)
		}
		return tx.Iterate(prefixSigningKey, nil, func(k, v []byte) error {
			var r signingKeyRec
			if err := decode(v, &r); err != nil {
				return fmt.Errorf("fleet: signing key %s: %w", k, err)
			}
			if len(r.Seed) != ed25519.SeedSize {
				return fmt.Errorf("fleet: signing key %s: bad seed", k)
			}
			recs[string(k[len(prefixSigningKey):])] = r
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	for id, r := range recs {
		priv := ed25519.NewKeyFromSeed(r.Seed)
		if KeyID(priv.Public().(ed25519.PublicKey)) != id {
			return nil, fmt.Errorf("fleet: signing key %s does not match its ID", id)
		}
		if id == activeID {
			s.active, s.activeID = priv, id
		}
		s.keys[id] = r
	}
	if s.active == nil {
		if activeID != "" {
			return nil, fmt.Errorf("fleet: active signing key %s missing", activeID)
		}
		if _, err := s.rotate(func() time.Time { return now }, func(fn func(tx *store.Txn) error, _ PublicKey) error { return db.Update(fn) }); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// rotate creates a new signing key, endorsed by the active one, stores it
// through commit and makes it the active one. Older keys stay published so
// that identities they signed still verify.
// The time is read under the signer's lock, so that no identity signed
// with the old key after the rotation carries a later issue time than the
// old key's retirement.
func (s *signer) rotate(clock func() time.Time, commit func(fn func(tx *store.Txn) error, key PublicKey) error) (string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("fleet: generate signing key: %w", err)
	}
	id := KeyID(pub)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := clock().UTC().Truncate(time.Second)
	rec := signingKeyRec{Seed: priv.Seed(), Created: now}
	var prev signingKeyRec
	if s.active != nil {
		rec.EndorsedBy = s.activeID
		rec.Endorsement = ed25519.Sign(s.active, EndorsementPayload(id, pub, now))
		prev = s.keys[s.activeID]
		prev.Retired = now
	}
	err = commit(func(tx *store.Txn) error {
		if s.active != nil {
			v, err := encode(prev)
			if err != nil {
				return err
			}
			if err := tx.Set(append(append([]byte{}, prefixSigningKey...), s.activeID...), v); err != nil {
				return err
			}
		}
		v, err := encode(rec)
		if err != nil {
			return err
		}
		if err := tx.Set(append(append([]byte{}, prefixSigningKey...), id...), v); err != nil {
			return err
		}
		return tx.Set(keyActiveSigner, []byte(id))
	}, PublicKey{KeyID: id, Key: pub, Active: true, Created: now})
	if err != nil {
		return "", fmt.Errorf("fleet: store signing key: %w", err)
	}
	if s.active != nil {
		s.keys[s.activeID] = prev
	}
	s.active, s.activeID = priv, id
	s.keys[id] = rec
	return id, nil
}

// sign fills id's key fields, payloads and signatures. An issue time read
// before a rotation that made the signing key active is raised to the
// key's creation, so that every identity lies in its key's validity window
// (which verifiers check).
func (s *signer) sign(id *Identity) {
	s.mu.RLock()
	priv, keyID, created := s.active, s.activeID, s.keys[s.activeID].Created
	s.mu.RUnlock()
	id.IssueTime = id.IssueTime.UTC().Truncate(time.Second)
	if id.IssueTime.Before(created) {
		id.IssueTime = created
	}
	id.KeyID = keyID
	id.PublicKey = priv.Public().(ed25519.PublicKey)
	id.SignedPayload = CanonicalPayload(id)
	id.Signature = ed25519.Sign(priv, id.SignedPayload)
	id.SignedPayloadV2 = CanonicalPayloadV2(id)
	id.SignatureV2 = ed25519.Sign(priv, id.SignedPayloadV2)
}

// activeKeyID returns the ID of the key that signs new identities.
func (s *signer) activeKeyID() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.activeID
}

// publicKeys returns every known public key, the active one first, then the
// others newest first: down the endorsement chain (each key was endorsed by
// the one active before it, which orders keys created in the same second),
// then any key off the chain by creation.
func (s *signer) publicKeys() []PublicKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rank := make(map[string]int, len(s.keys))
	for id := s.activeID; id != ""; id = s.keys[id].EndorsedBy {
		if _, seen := rank[id]; seen {
			break
		}
		if _, ok := s.keys[id]; !ok {
			break
		}
		rank[id] = len(rank)
	}
	out := make([]PublicKey, 0, len(s.keys))
	for id, r := range s.keys {
		pub := ed25519.NewKeyFromSeed(r.Seed).Public().(ed25519.PublicKey)
		out = append(out, PublicKey{KeyID: id, Key: pub, Active: id == s.activeID, Created: r.Created,
			Retired: r.Retired, EndorsedBy: r.EndorsedBy, Endorsement: r.Endorsement})
	}
	sort.Slice(out, func(i, j int) bool {
		ri, onI := rank[out[i].KeyID]
		rj, onJ := rank[out[j].KeyID]
		switch {
		case onI && onJ:
			return ri < rj
		case onI != onJ:
			return onI
		case !out[i].Created.Equal(out[j].Created):
			return out[i].Created.After(out[j].Created)
		}
		return out[i].KeyID < out[j].KeyID
	})
	return out
}

// PublicKey is one of the server's identity signing keys.
type PublicKey struct {
	KeyID string
	Key   ed25519.PublicKey
	// Active is set for the key that signs new identities.
	Active bool
	// Created is when the key was made; Retired when a newer key replaced
	// it (zero while active, and for keys retired before it was recorded).
	Created, Retired time.Time
	// EndorsedBy is the key that was active when this one was created and
	// Endorsement its Ed25519 signature of EndorsementPayload (empty for
	// the first key): a terminal that pinned an older key can follow the
	// endorsements to trust a newer one.
	EndorsedBy  string
	Endorsement []byte
}

// Fingerprint returns the key's fingerprint (see the function Fingerprint).
func (k PublicKey) Fingerprint() string { return Fingerprint(k.Key) }

// Records are stored as a schema version byte followed by JSON.
const schemaV1 = 1

func encode(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("fleet: encode: %w", err)
	}
	return append([]byte{schemaV1}, b...), nil
}

func decode(b []byte, v any) error {
	if len(b) == 0 || b[0] != schemaV1 {
		return errors.New("unknown schema version")
	}
	return json.Unmarshal(b[1:], v)
}
