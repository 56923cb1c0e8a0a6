package server

import (
	"context"
	"errors"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/auth"
	"github.com/posfleet/posfleet/server/fleet"
	"github.com/posfleet/posfleet/server/operator"
)

// Stable reasons of authentication failures (ErrorInfo.reason).
const (
	reasonCredentialInvalid = pb.ErrorReason_CREDENTIAL_INVALID
	reasonRateLimited       = pb.ErrorReason_RATE_LIMITED
	reasonWrongCredential   = pb.ErrorReason_WRONG_CREDENTIAL_KIND
	reasonInsufficientRole  = pb.ErrorReason_INSUFFICIENT_ROLE
	reasonSuspended         = pb.ErrorReason_TERMINAL_SUSPENDED
	reasonRetired           = pb.ErrorReason_TERMINAL_RETIRED
)

// authenticator implements Authenticator over terminal credentials (the
// fleet) and admin tokens (the operator store). Every check is answered
// from memory.
//
// Outcomes, by the method's access entry:
//   - no bearer, an unknown secret, or a revoked or expired admin token:
//     Unauthenticated (CREDENTIAL_INVALID), audited as AUTH_FAILURE. Each
//     failure takes a token from the peer's failure budget; once it is spent,
//     failures get ResourceExhausted (RATE_LIMITED). A valid secret is never
//     rate limited, so one misbehaving device does not lock out a store's
//     other terminals behind the same address.
//   - a valid secret of the wrong kind (a terminal credential on an admin
//     method, an admin token on a terminal method): PermissionDenied
//     (WRONG_CREDENTIAL_KIND) — the caller is known but not allowed —
//     audited as PERMISSION_DENIED.
//   - an admin token whose role is below the method's: PermissionDenied
//     (INSUFFICIENT_ROLE), audited.
//   - a suspended terminal: PermissionDenied (TERMINAL_SUSPENDED), except on
//     methods marked allowSuspended (payments), which get a principal with
//     Suspended set and answer with a business decline; a retired
//     terminal: PermissionDenied (TERMINAL_RETIRED).
//
// Audit events of repeated failures are coalesced per peer (or caller) and
// kind: one per minute, carrying the count of the suppressed ones.
type authenticator struct {
	fleet   *fleet.Fleet
	tokens  *operator.Tokens
	audit   *audit.Log
	fails   *fleet.Limiter
	repeats *fleet.RepeatFilter
	now     func() time.Time
}

func newAuthenticator(f *fleet.Fleet, t *operator.Tokens, log *audit.Log) *authenticator {
	return &authenticator{
		fleet:   f,
		tokens:  t,
		audit:   log,
		fails:   fleet.NewLimiter(1, 30, 0), // 30 at once, then 1 per second per peer
		repeats: fleet.NewRepeatFilter(time.Minute, 0),
		now:     time.Now,
	}
}

// Authenticate implements Authenticator.
func (a *authenticator) Authenticate(ctx context.Context, method string, need access, bearer string) (auth.Principal, error) {
	// The peer's address is formatted only for failures: a successful call
	// (the payment hot path) does not need it.
	if bearer != "" {
		ref, terr := a.fleet.Authenticate(bearer)
		if !errors.Is(terr, fleet.ErrBadCredential) {
			p := auth.Principal{Kind: auth.KindTerminal, TerminalID: ref.TerminalID, MerchantID: ref.MerchantID, StoreID: ref.StoreID}
			return a.terminal(ctx, method, need, p, terr)
		}
		tok, oerr := a.tokens.Authenticate(bearer)
		if oerr == nil {
			p := auth.Principal{Kind: auth.KindAdmin, TokenID: tok.ID, Role: tok.Role}
			return a.admin(ctx, method, need, p)
		}
		if !errors.Is(oerr, operator.ErrUnknownToken) {
			return auth.Principal{}, a.fail(ctx, method, "admin token "+tok.ID+" "+tokenState(oerr), "admin:"+tok.ID)
		}
	}
	why := "unknown credential"
	if bearer == "" {
		why = "missing credential"
	}
	return auth.Principal{}, a.fail(ctx, method, why, "anonymous")
}

func tokenState(err error) string {
	if errors.Is(err, operator.ErrTokenRevoked) {
		return "revoked"
	}
	return "expired"
}

// terminal checks a terminal principal against the method.
func (a *authenticator) terminal(ctx context.Context, method string, need access, p auth.Principal, stateErr error) (auth.Principal, error) {
	if !need.terminal {
		return auth.Principal{}, a.deny(ctx, method, p, reasonWrongCredential, "terminal credentials may not call operator methods")
	}
	switch {
	case errors.Is(stateErr, fleet.ErrTerminalRetired):
		return auth.Principal{}, a.deny(ctx, method, p, reasonRetired, "terminal is retired")
	case errors.Is(stateErr, fleet.ErrTerminalSuspended):
		if !need.allowSuspended {
			return auth.Principal{}, a.deny(ctx, method, p, reasonSuspended, "terminal is suspended")
		}
		p.Suspended = true
	case stateErr != nil:
		return auth.Principal{}, stateErr
	}
	return p, nil
}

// admin checks an operator principal against the method.
func (a *authenticator) admin(ctx context.Context, method string, need access, p auth.Principal) (auth.Principal, error) {
	if need.terminal {
		return auth.Principal{}, a.deny(ctx, method, p, reasonWrongCredential, "admin tokens may not call terminal methods")
	}
	if !p.Role.Allows(need.role) {
		return auth.Principal{}, a.deny(ctx, method, p, reasonInsufficientRole,
			"role "+p.Role.String()+" may not call this method (needs "+need.role.String()+")",
			metaRequiredRole, need.role.String())
	}
	return p, nil
}

// fail audits a failed authentication and spends the peer's failure budget.
func (a *authenticator) fail(ctx context.Context, method, why, actor string) error {
	now := a.now()
	peer := peerAddr(ctx)
	host := fleet.PeerHost(peer)
	allowed, wait := a.fails.Take(host, now)
	limited := !allowed
	// Repeats are grouped per address, caller and reason, so that one kind
	// of failure never hides another (a revoked token after a missing one).
	if ok, suppressed := a.repeats.Admit("authn|"+host+"|"+actor+"|"+why, now); ok {
		attrs := map[string]string{"method": method, "reason": why}
		if suppressed > 0 {
			attrs["suppressed_repeats"] = strconv.FormatUint(suppressed, 10)
		}
		if limited {
			attrs["rate_limited"] = "true"
		}
		a.audit.Record(audit.Event{Type: audit.AuthFailure, Actor: actor, Peer: peer, Message: "authentication failed: " + why, Attributes: attrs})
	}
	if limited {
		return rateLimited("too many failed authentications from this address; retry later", "authentication", wait)
	}
	return statusWithReason(codes.Unauthenticated, reasonCredentialInvalid, "missing or invalid credential")
}

// deny audits a refused call of a known caller. metadata are ErrorInfo
// metadata key and value pairs.
func (a *authenticator) deny(ctx context.Context, method string, p auth.Principal, reason pb.ErrorReason, msg string, metadata ...string) error {
	peer := peerAddr(ctx)
	if ok, suppressed := a.repeats.Admit("deny|"+p.Actor()+"|"+reason.String(), a.now()); ok {
		attrs := map[string]string{"method": method, "reason": reason.String()}
		if suppressed > 0 {
			attrs["suppressed_repeats"] = strconv.FormatUint(suppressed, 10)
		}
		if p.Kind == auth.KindAdmin {
			attrs["role"] = p.Role.String()
		}
		a.audit.Record(audit.Event{Type: audit.PermissionDenied, Actor: p.Actor(), Peer: peer, TerminalID: p.TerminalID,
			MerchantID: p.MerchantID, StoreID: p.StoreID, Message: "permission denied: " + msg, Attributes: attrs})
	}
	r := refusal{code: codes.PermissionDenied, reason: reason, msg: msg}
	for i := 0; i+1 < len(metadata); i += 2 {
		if r.metadata == nil {
			r.metadata = map[string]string{}
		}
		r.metadata[metadata[i]] = metadata[i+1]
	}
	return r.err()
}
