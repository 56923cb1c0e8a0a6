// Package auth defines who is calling: the authenticated principal that the
// server's interceptors place in a request context, and the operator roles.
// It holds no credentials and does no I/O.
package auth

import "context"

// Kind says what sort of caller a principal is.
type Kind int

const (
	// KindNone is the zero value: unauthenticated.
	KindNone Kind = iota
	// KindTerminal is a terminal authenticated by its credential.
	KindTerminal
	// KindAdmin is an operator authenticated by an admin token.
	KindAdmin
)

// Role is an operator role. Higher roles include the rights of lower ones.
type Role int

const (
	// RoleNone grants nothing.
	RoleNone Role = iota
	// RoleAuditor may read reports, listings and the audit trail.
	RoleAuditor
	// RoleOperator may also change the fleet and config.
	RoleOperator
	// RoleAdmin may do everything, including admin token management.
	RoleAdmin
)

// String returns the role's name as used in the protocol and CLI.
func (r Role) String() string {
	switch r {
	case RoleAuditor:
		return "AUDITOR"
	case RoleOperator:
		return "OPERATOR"
	case RoleAdmin:
		return "ADMIN"
	}
	return "NONE"
}

// Allows reports whether r includes the rights of need.
func (r Role) Allows(need Role) bool { return need != RoleNone && r >= need }

// Principal is an authenticated caller.
type Principal struct {
	Kind Kind

	// Terminal principals.
	TerminalID string
	MerchantID string // the merchant the terminal is bound to
	StoreID    string
	// Suspended is set for a suspended terminal that was let through to an
	// RPC that answers suspension with a business decline (payments: 57)
	// rather than an error.
	Suspended bool

	// Admin principals.
	TokenID string
	Role    Role
}

// Actor returns the principal as the audit trail names it:
// "terminal:<id>", "admin:<token id>" or "anonymous".
func (p Principal) Actor() string {
	switch p.Kind {
	case KindTerminal:
		return "terminal:" + p.TerminalID
	case KindAdmin:
		return "admin:" + p.TokenID
	}
	return "anonymous"
}

type ctxKey struct{}

// NewContext returns a copy of ctx carrying p.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the principal in ctx, if any.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok
}
