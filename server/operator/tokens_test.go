package operator_test

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet/internal/testclock"
	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/auth"
	"github.com/posfleet/posfleet/server/operator"
	"github.com/posfleet/posfleet/server/store"
	"github.com/posfleet/posfleet/server/store/storetest"
)

func secret(prefix string) string {
	var b [32]byte
	rand.Read(b[:])
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

func open(t *testing.T, dir string, c *testclock.Clock) (*operator.Tokens, *store.DB) {
	t.Helper()
	db := storetest.OpenDir(t, dir)
	toks, err := operator.Open(t.Context(), db, operator.Options{NewSecret: secret, Now: c.Now}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return toks, db
}

func TestTokenLifecycleAndPersistence(t *testing.T) {
	dir := t.TempDir()
	c := testclock.New(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	toks, db := open(t, dir, c)
	ctx := t.Context()
	boot := "pfa_bootstrap-secret-abcdefghijkl"
	if err := toks.EnsureBootstrap(ctx, boot); err != nil {
		t.Fatal(err)
	}
	if tok, err := toks.Authenticate(boot); err != nil || tok.ID != operator.BootstrapID || tok.Role != auth.RoleAdmin {
		t.Fatalf("bootstrap = %+v, %v; want the ADMIN bootstrap token", tok, err)
	}
	opSecret, op, err := toks.Create(ctx, "night-shift", auth.RoleOperator, time.Hour, audit.Event{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(opSecret, "pfa_") || !strings.HasPrefix(op.ID, "tok_") {
		t.Errorf("secret %q / id %q: want pfa_ and tok_ prefixes", opSecret[:4], op.ID)
	}
	c.Advance(time.Second) // List orders by creation time
	audSecret, aud, err := toks.Create(ctx, "auditor", auth.RoleAuditor, 0, audit.Event{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := toks.Create(ctx, "x", auth.RoleNone, 0, audit.Event{}); !errors.Is(err, operator.ErrInvalidRole) {
		t.Errorf("RoleNone: %v, want ErrInvalidRole", err)
	}
	if got, err := toks.Authenticate(opSecret); err != nil || got.Role != auth.RoleOperator {
		t.Errorf("operator token = %+v, %v", got, err)
	}
	if _, err := toks.Authenticate("pfa_nope"); !errors.Is(err, operator.ErrUnknownToken) {
		t.Errorf("unknown: %v", err)
	}
	if _, err := toks.Revoke(ctx, aud.ID, audit.Event{}); err != nil {
		t.Fatal(err)
	}
	if _, err := toks.Revoke(ctx, "tok_missing", audit.Event{}); !errors.Is(err, operator.ErrTokenNotFound) {
		t.Errorf("revoke missing: %v", err)
	}
	c.Advance(2 * time.Hour)
	if _, err := toks.Authenticate(opSecret); !errors.Is(err, operator.ErrTokenExpired) {
		t.Errorf("expired token: %v, want ErrTokenExpired", err)
	}
	db.Close()

	// Everything persists; only hashes were stored.
	toks, db = open(t, dir, c)
	defer db.Close()
	if _, err := toks.Authenticate(audSecret); !errors.Is(err, operator.ErrTokenRevoked) {
		t.Errorf("revoked token after restart: %v, want ErrTokenRevoked", err)
	}
	if _, err := toks.Authenticate(boot); err != nil {
		t.Errorf("bootstrap after restart: %v", err)
	}
	list := toks.List()
	if len(list) != 3 || list[0].ID != operator.BootstrapID || list[1].ID != op.ID || !list[2].Revoked {
		t.Errorf("List = %+v, want bootstrap, operator, revoked auditor", list)
	}
	err = db.View(func(tx *store.Txn) error {
		return tx.Iterate([]byte("tok/"), nil, func(k, v []byte) error {
			for _, s := range []string{boot, opSecret, audSecret} {
				if strings.Contains(string(v), s) || strings.Contains(string(v), s[4:]) {
					t.Errorf("%s stores a secret in clear", k)
				}
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestBootstrapReplacedAndRevokedStaysRevoked(t *testing.T) {
	c := testclock.New(time.Now())
	toks, db := open(t, t.TempDir(), c)
	defer db.Close()
	ctx := t.Context()
	if err := toks.EnsureBootstrap(ctx, "pfa_first-secret-0123456789"); err != nil {
		t.Fatal(err)
	}
	if _, err := toks.Revoke(ctx, operator.BootstrapID, audit.Event{}); err != nil {
		t.Fatal(err)
	}
	// Same secret on the next start: still revoked.
	if err := toks.EnsureBootstrap(ctx, "pfa_first-secret-0123456789"); err != nil {
		t.Fatal(err)
	}
	if _, err := toks.Authenticate("pfa_first-secret-0123456789"); !errors.Is(err, operator.ErrTokenRevoked) {
		t.Errorf("revoked bootstrap revived: %v", err)
	}
	// A new secret replaces it; the old one stops working.
	if err := toks.EnsureBootstrap(ctx, "pfa_second-secret-0123456789"); err != nil {
		t.Fatal(err)
	}
	if _, err := toks.Authenticate("pfa_second-secret-0123456789"); err != nil {
		t.Errorf("new bootstrap: %v", err)
	}
	if _, err := toks.Authenticate("pfa_first-secret-0123456789"); !errors.Is(err, operator.ErrUnknownToken) {
		t.Errorf("old bootstrap: %v, want ErrUnknownToken", err)
	}
}
