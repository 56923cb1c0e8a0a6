package operator

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/auth"
	"github.com/posfleet/posfleet/server/store"
)

// Errors of the token store.
var (
	// ErrUnknownToken: no token has that secret.
	ErrUnknownToken = errors.New("operator: unknown admin token")
	// ErrTokenRevoked: the token was revoked.
	ErrTokenRevoked = errors.New("operator: admin token revoked")
	// ErrTokenExpired: the token expired.
	ErrTokenExpired = errors.New("operator: admin token expired")
	// ErrTokenNotFound: no token has that ID.
	ErrTokenNotFound = errors.New("operator: admin token not found")
	// ErrInvalidRole: the role is not one of ADMIN, OPERATOR, AUDITOR.
	ErrInvalidRole = errors.New("operator: invalid role")
)

// BootstrapID is the token ID of the bootstrap admin token.
const BootstrapID = "bootstrap"

// Token is an admin token without its secret.
type Token struct {
	ID      string    `json:"id"`
	Name    string    `json:"n"`
	Role    auth.Role `json:"r"`
	Created time.Time `json:"ct"`
	// Expires is when it stops working; zero means never.
	Expires time.Time `json:"et,omitzero"`
	Revoked bool      `json:"rv,omitempty"`
}

// rec is the stored form of a token: its metadata and the secret's hash.
type rec struct {
	Token
	Hash []byte `json:"h"`
}

// Options configure a token store.
type Options struct {
	// NewSecret returns a random secret with 256 bits of entropy and the
	// given prefix. Required.
	NewSecret func(prefix string) string
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Audit, when set, receives the TokenCreated and TokenRevoked events,
	// committed with the change they record.
	Audit *audit.Log
}

var prefixToken = []byte("tok/") // tok/<token id>

// Tokens is the admin token store. It is safe for concurrent use.
type Tokens struct {
	db     *store.DB
	logger *slog.Logger
	opts   Options

	// writeMu serializes changes; it is held across the storage write.
	writeMu sync.Mutex

	mu sync.RWMutex // guards byID and byHash
	// byID holds every token; values are replaced, never modified.
	byID map[string]*rec
	// byHash maps secret hashes to tokens.
	byHash map[[32]byte]*rec
}

// Open loads the token store from db.
func Open(ctx context.Context, db *store.DB, opts Options, logger *slog.Logger) (*Tokens, error) {
	if opts.NewSecret == nil {
		return nil, errors.New("operator: Options.NewSecret is required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := &Tokens{db: db, logger: logger, opts: opts, byID: map[string]*rec{}, byHash: map[[32]byte]*rec{}}
	err := db.View(func(tx *store.Txn) error {
		return tx.Iterate(prefixToken, nil, func(k, v []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			r, err := decodeRec(v)
			if err != nil {
				return fmt.Errorf("operator: %s: %w", k, err)
			}
			t.apply(nil, r)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// hashSecret returns the stored hash of a secret.
func hashSecret(secret string) [32]byte { return sha256.Sum256([]byte("admin-token\x00" + secret)) }

// apply replaces old (nil for a new token) with r in memory.
func (t *Tokens) apply(old, r *rec) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old != nil {
		var h [32]byte
		copy(h[:], old.Hash)
		delete(t.byHash, h)
	}
	t.byID[r.ID] = r
	var h [32]byte
	copy(h[:], r.Hash)
	t.byHash[h] = r
}

// schemaV1 is the version byte that starts every stored token record,
// followed by JSON.
const schemaV1 = 1

func encodeRec(r *rec) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("operator: encode: %w", err)
	}
	return append([]byte{schemaV1}, b...), nil
}

func decodeRec(v []byte) (*rec, error) {
	if len(v) == 0 || v[0] != schemaV1 {
		return nil, errors.New("unknown schema version")
	}
	r := new(rec)
	if err := json.Unmarshal(v[1:], r); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return r, nil
}

// put stores r in a synced commit, with the audit events that record the
// change when the store has an audit trail.
func (t *Tokens) put(r *rec, evs ...audit.Event) error {
	v, err := encodeRec(r)
	if err != nil {
		return err
	}
	set := func(tx *store.Txn) error {
		return tx.Set(append(append([]byte{}, prefixToken...), r.ID...), v)
	}
	if t.opts.Audit == nil {
		return t.db.Update(set)
	}
	return t.opts.Audit.Commit(set, evs...)
}

// tokenEvent completes who (its Actor and Peer) into the event of a change
// of tok.
func tokenEvent(who audit.Event, typ audit.Type, msg string, tok Token) audit.Event {
	attrs := map[string]string{"token_id": tok.ID, "name": tok.Name, "role": tok.Role.String()}
	if !tok.Expires.IsZero() && typ == audit.TokenCreated {
		attrs["expires"] = tok.Expires.Format(time.RFC3339)
	}
	who.Type, who.Message, who.Attributes = typ, msg, attrs
	return who
}

// EnsureBootstrap makes secret the bootstrap ADMIN token. It is called on
// every start: when the secret is the stored one nothing changes (a revoked
// bootstrap token stays revoked); a different secret replaces it, so that an
// operator locked out can start the server with a new bootstrap token.
func (t *Tokens) EnsureBootstrap(ctx context.Context, secret string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h := hashSecret(secret)
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	t.mu.RLock()
	old := t.byID[BootstrapID]
	t.mu.RUnlock()
	if old != nil && subtle.ConstantTimeCompare(old.Hash, h[:]) == 1 {
		if old.Revoked {
			t.logger.Warn("the bootstrap admin token is revoked; give a new one to use it again")
		}
		return nil
	}
	r := &rec{Token: Token{ID: BootstrapID, Name: "bootstrap", Role: auth.RoleAdmin, Created: t.opts.Now().UTC()}, Hash: h[:]}
	if err := t.put(r); err != nil {
		return err
	}
	t.apply(old, r)
	if old != nil {
		t.logger.Info("bootstrap admin token replaced")
	}
	return nil
}

// Create makes a new token with a role and an optional lifetime (zero: no
// expiry). The secret is returned only here. who names the actor (Actor,
// Peer) of the audit event.
func (t *Tokens) Create(ctx context.Context, name string, role auth.Role, ttl time.Duration, who audit.Event) (string, Token, error) {
	if err := ctx.Err(); err != nil {
		return "", Token{}, err
	}
	if role < auth.RoleAuditor || role > auth.RoleAdmin {
		return "", Token{}, ErrInvalidRole
	}
	secret := t.opts.NewSecret("pfa_")
	h := hashSecret(secret)
	var idb [6]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return "", Token{}, fmt.Errorf("operator: token id: %w", err)
	}
	now := t.opts.Now().UTC()
	r := &rec{Token: Token{ID: "tok_" + hex.EncodeToString(idb[:]), Name: name, Role: role, Created: now}, Hash: h[:]}
	if ttl > 0 {
		r.Expires = now.Add(ttl)
	}
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	if err := t.put(r, tokenEvent(who, audit.TokenCreated, "admin token created", r.Token)); err != nil {
		return "", Token{}, err
	}
	t.apply(nil, r)
	return secret, r.Token, nil
}

// Revoke revokes token id; revoking it again changes nothing. who names the
// actor (Actor, Peer) of the audit event.
func (t *Tokens) Revoke(ctx context.Context, id string, who audit.Event) (Token, error) {
	if err := ctx.Err(); err != nil {
		return Token{}, err
	}
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	t.mu.RLock()
	old := t.byID[id]
	t.mu.RUnlock()
	if old == nil {
		return Token{}, ErrTokenNotFound
	}
	if old.Revoked {
		return old.Token, nil
	}
	r := *old
	r.Revoked = true
	if err := t.put(&r, tokenEvent(who, audit.TokenRevoked, "admin token revoked", r.Token)); err != nil {
		return Token{}, err
	}
	t.apply(old, &r)
	return r.Token, nil
}

// List returns every token, oldest first.
func (t *Tokens) List() []Token {
	t.mu.RLock()
	out := make([]Token, 0, len(t.byID))
	for _, r := range t.byID {
		out = append(out, r.Token)
	}
	t.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Authenticate resolves a secret to its token: ErrUnknownToken,
// ErrTokenRevoked or ErrTokenExpired when it may not be used (the token is
// returned with the last two, for the audit trail). It reads only memory.
func (t *Tokens) Authenticate(secret string) (Token, error) {
	h := hashSecret(secret)
	t.mu.RLock()
	r := t.byHash[h]
	t.mu.RUnlock()
	if r == nil || subtle.ConstantTimeCompare(r.Hash, h[:]) != 1 {
		return Token{}, ErrUnknownToken
	}
	switch {
	case r.Revoked:
		return r.Token, ErrTokenRevoked
	case !r.Expires.IsZero() && !t.opts.Now().Before(r.Expires):
		return r.Token, ErrTokenExpired
	}
	return r.Token, nil
}
