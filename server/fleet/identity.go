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
	MerchantID      string
	LegalName       string
	DisplayName     string
	MCC             string
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
}

// CanonicalPayload returns the bytes an identity's signature covers: the
// text "posfleet-identity-v1\n" followed by one "name=value\n" line per
// field in the documented order, values escaped ('\\' → "\\\\", newline →
// "\\n"), issue_time in RFC 3339 UTC with seconds precision.
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

// KeyID returns the key identifier of an Ed25519 public key: the first 16
// hex characters of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:])[:16]
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
}

// signer holds the server's Ed25519 identity keys: the active one signs, the
// others (after a rotation) remain published for verification.
type signer struct {
	db *store.DB

	mu sync.RWMutex // guards active and public
	// active signs new identities.
	active ed25519.PrivateKey
	// activeID is KeyID of active.
	activeID string
	// public holds every known public key by key ID.
	public map[string]ed25519.PublicKey
}

// openSigner loads the signing keys, creating the first one on first start.
func openSigner(db *store.DB, now time.Time) (*signer, error) {
	s := &signer{db: db, public: map[string]ed25519.PublicKey{}}
	var activeID string
	seeds := map[string][]byte{}
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
			seeds[string(k[len(prefixSigningKey):])] = r.Seed
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	for id, seed := range seeds {
		priv := ed25519.NewKeyFromSeed(seed)
		pub := priv.Public().(ed25519.PublicKey)
		if KeyID(pub) != id {
			return nil, fmt.Errorf("fleet: signing key %s does not match its ID", id)
		}
		s.public[id] = pub
		if id == activeID {
			s.active, s.activeID = priv, id
		}
	}
	if s.active == nil {
		if activeID != "" {
			return nil, fmt.Errorf("fleet: active signing key %s missing", activeID)
		}
		if _, err := s.rotate(now); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// rotate creates a new signing key, stores it and makes it the active one.
// Older keys stay published so that identities they signed still verify.
func (s *signer) rotate(now time.Time) (string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("fleet: generate signing key: %w", err)
	}
	id := KeyID(pub)
	v, err := encode(signingKeyRec{Seed: priv.Seed(), Created: now.UTC()})
	if err != nil {
		return "", err
	}
	err = s.db.Update(func(tx *store.Txn) error {
		if err := tx.Set(append(append([]byte{}, prefixSigningKey...), id...), v); err != nil {
			return err
		}
		return tx.Set(keyActiveSigner, []byte(id))
	})
	if err != nil {
		return "", fmt.Errorf("fleet: store signing key: %w", err)
	}
	s.mu.Lock()
	s.active, s.activeID = priv, id
	s.public[id] = pub
	s.mu.Unlock()
	return id, nil
}

// sign fills id's key fields, payload and signature.
func (s *signer) sign(id *Identity) {
	s.mu.RLock()
	priv, keyID := s.active, s.activeID
	s.mu.RUnlock()
	id.IssueTime = id.IssueTime.UTC().Truncate(time.Second)
	id.KeyID = keyID
	id.PublicKey = priv.Public().(ed25519.PublicKey)
	id.SignedPayload = CanonicalPayload(id)
	id.Signature = ed25519.Sign(priv, id.SignedPayload)
}

// activeKeyID returns the ID of the key that signs new identities.
func (s *signer) activeKeyID() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.activeID
}

// publicKeys returns every known public key by key ID, sorted by ID.
func (s *signer) publicKeys() []PublicKey {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]PublicKey, 0, len(s.public))
	for id, k := range s.public {
		out = append(out, PublicKey{KeyID: id, Key: k, Active: id == s.activeID})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].KeyID < out[j].KeyID })
	return out
}

// PublicKey is one of the server's identity signing keys.
type PublicKey struct {
	KeyID string
	Key   ed25519.PublicKey
	// Active is set for the key that signs new identities.
	Active bool
}

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
