package fleet

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strconv"

	"github.com/posfleet/posfleet/server/audit"
)

// Credential prefixes make a leaked secret easy to recognize (and to scan
// for in logs and repositories).
const credentialPrefix = "pft_"

// RegisterRequest is a terminal's first contact.
type RegisterRequest struct {
	Serial string
	// Code is the enrollment code as typed; case, dashes and spaces do not
	// matter.
	Code   string
	Device Device
	// Peer is the caller's address, for rate limiting and the audit trail.
	Peer string
}

// Registration is the result of a successful Register. Credential is shown
// only here; the fleet keeps only its hash.
type Registration struct {
	Terminal   Terminal
	Credential string
	Identity   Identity
}

// Register exchanges a serial number and enrollment code for the terminal's
// credential. The code stays usable until the credential it issued is first
// used (Authenticate): registering again with it before then issues a fresh
// credential that replaces the unused one (a lost response is recovered by
// retrying), even past the code's expiry for Options.RegisterRetryWindow
// after its first registration; after that first use the code is refused
// with ErrEnrollmentUsed. Refusals are audited and rate limited per serial, per known
// enrollment code and, for unknown codes, per peer:
//   - unknown code: ErrEnrollmentInvalid;
//   - a code of a terminal with another serial: ErrEnrollmentInvalid,
//     audited as an identity collision;
//   - a code whose credential was already used: ErrEnrollmentUsed, audited
//     as an identity collision (a second device registering as an enrolled
//     terminal);
//   - an expired code: ErrEnrollmentExpired;
//   - a retired terminal: ErrTerminalRetired; a suspended one:
//     ErrTerminalSuspended;
//   - too many attempts: ErrRateLimited.
//
// Registering again with a reissued code replaces the credential.
func (f *Fleet) Register(ctx context.Context, req RegisterRequest) (Registration, error) {
	if err := ctx.Err(); err != nil {
		return Registration{}, err
	}
	now := f.now()
	host := PeerHost(req.Peer)
	h := enrollHash(req.Code)
	f.mu.RLock()
	t := f.enrolls[h]
	f.mu.RUnlock()
	// A peer past its failure budget is refused only codes the fleet does
	// not know: a flood of bad codes from one address must not lock out a
	// legitimate terminal registering with its good code from behind the
	// same address. Known codes are limited per code instead, so that a
	// leaked code cannot be tried without bound either.
	if t == nil {
		if wait := f.peerLimit.Wait(host, now); wait > 0 {
			return Registration{}, f.refuse(req, nil, audit.RegistrationRefused, &RateLimitError{Wait: wait}, "too many refused registrations from this peer")
		}
	} else if ok, wait := f.serialLimit.Take("code|"+string(h[:]), now); !ok {
		return Registration{}, f.refuse(req, nil, audit.RegistrationRefused, &RateLimitError{Wait: wait}, "too many registration attempts with this enrollment code")
	}
	if ok, wait := f.serialLimit.Take(req.Serial, now); !ok {
		return Registration{}, f.refuse(req, nil, audit.RegistrationRefused, &RateLimitError{Wait: wait}, "too many registration attempts for this serial number")
	}
	if t == nil {
		return Registration{}, f.refuse(req, nil, audit.RegistrationRefused, ErrEnrollmentInvalid, "unknown enrollment code")
	}

	t.opMu.Lock()
	defer t.opMu.Unlock()
	f.mu.RLock()
	old := t.rec
	f.mu.RUnlock()
	pending := subtle.ConstantTimeCompare(old.EnrollHash, h[:]) == 1
	used := subtle.ConstantTimeCompare(old.UsedEnrollHash, h[:]) == 1
	// A retry is a Register with a code that already issued a credential
	// nobody has used yet: the earlier response was lost.
	retry := pending && !old.EnrollIssued.IsZero()
	expires := old.EnrollExpires
	if retry {
		expires = later(expires, old.EnrollIssued.Add(f.opts.RegisterRetryWindow))
	}
	switch {
	case old.Serial != req.Serial:
		return Registration{}, f.refuse(req, old, audit.IdentityCollision, ErrEnrollmentInvalid, "enrollment code tried from another serial number")
	case old.State == StateRetired:
		return Registration{}, f.refuse(req, old, audit.RegistrationRefused, ErrTerminalRetired, "terminal is retired")
	case used && !pending:
		return Registration{}, f.refuse(req, old, audit.IdentityCollision, ErrEnrollmentUsed, "enrollment code already used: a second device registering as an enrolled terminal")
	case !pending:
		return Registration{}, f.refuse(req, old, audit.RegistrationRefused, ErrEnrollmentInvalid, "enrollment code no longer valid")
	case !now.Before(expires):
		return Registration{}, f.refuse(req, old, audit.RegistrationRefused, ErrEnrollmentExpired, "enrollment code expired")
	case old.State == StateSuspended:
		return Registration{}, f.refuse(req, old, audit.RegistrationRefused, ErrTerminalSuspended, "terminal is suspended")
	}

	cred := f.opts.NewSecret(credentialPrefix)
	ch := credHash(cred)
	r := old.clone()
	r.State = StateActive
	r.Registered = now.UTC()
	r.Device = req.Device
	// The code stays pending until the new credential's first use (see
	// Authenticate): a terminal that lost this response registers again
	// with the same code and gets a fresh credential, which replaces this
	// one. Every credential the terminal had before stops working now.
	r.CredHash, r.NextCredHash = ch[:], nil
	if !retry {
		r.EnrollIssued = now.UTC()
	}
	ev := audit.Event{Type: audit.TerminalRegistered, Actor: "terminal:" + r.ID, Peer: req.Peer, TerminalID: r.ID,
		MerchantID: r.MerchantID, StoreID: r.StoreID, Message: "terminal registered",
		Attributes: map[string]string{
			"serial_number": r.Serial, "model": r.Device.Model, "firmware_version": r.Device.Firmware,
			"app_version": r.Device.App, "replaced_credential": strconv.FormatBool(len(old.CredHash) > 0),
			"stage": stageIssued, "retried": strconv.FormatBool(retry),
		}}
	if err := f.put(keyOf(prefixTerminal, r.ID), r, ev); err != nil {
		return Registration{}, err
	}
	f.mu.Lock()
	t.rec = r
	f.index(t, old, r)
	f.mu.Unlock()
	if old.State != r.State {
		f.notifyChange(r)
	}
	f.touch(t)
	id, err := f.Identity(r.ID)
	if err != nil {
		return Registration{}, err
	}
	return Registration{Terminal: f.view(t), Credential: cred, Identity: id}, nil
}

// refuse audits a refused registration (coalescing repeats from one peer),
// takes a token from the peer's failure budget and returns err.
func (f *Fleet) refuse(req RegisterRequest, r *terminalRec, typ audit.Type, err error, why string) error {
	now := f.now()
	host := PeerHost(req.Peer)
	if !errors.Is(err, ErrRateLimited) {
		f.peerLimit.Allow(host, now)
	}
	// Repeats are grouped per address and reason, and per terminal when the
	// serial names one, so that refusals about one terminal never hide
	// those about another.
	key := "register|" + host + "|" + why
	if r != nil {
		key += "|" + r.ID
	}
	ok, suppressed := f.auditRepeat.Admit(key, now)
	if !ok {
		return err
	}
	e := audit.Event{Type: typ, Actor: "anonymous", Peer: req.Peer, Message: "registration refused: " + why,
		Attributes: map[string]string{"serial_number": req.Serial}}
	if r != nil {
		e.TerminalID, e.MerchantID, e.StoreID = r.ID, r.MerchantID, r.StoreID
		if r.Serial != req.Serial {
			e.Attributes["provisioned_serial_number"] = r.Serial
		}
	} else {
		f.mu.RLock()
		e.TerminalID = f.serials[req.Serial]
		f.mu.RUnlock()
	}
	if suppressed > 0 {
		e.Attributes["suppressed_repeats"] = strconv.FormatUint(suppressed, 10)
	}
	f.record(e)
	return err
}

// Authenticate resolves a terminal credential. It returns the terminal's
// binding, with ErrTerminalSuspended or ErrTerminalRetired for a terminal in
// that state, or ErrBadCredential. A valid credential of a terminal that is
// not retired counts as contact (Terminal.LastSeen). It reads only memory,
// except at the first accepted use of a newly issued credential, which is
// written (with its audit event) before the call is accepted: the first use
// of a registration's credential consumes its enrollment code, the first
// use of a rotated credential revokes the one it replaces.
func (f *Fleet) Authenticate(credential string) (TerminalRef, error) {
	h := credHash(credential)
	f.mu.RLock()
	t := f.creds[h]
	var r *terminalRec
	if t != nil {
		r = t.rec
	}
	f.mu.RUnlock()
	// The map lookup found the hash; comparing again in constant time keeps
	// the final decision independent of where the hashes differ.
	if r == nil {
		return TerminalRef{}, ErrBadCredential
	}
	current := subtle.ConstantTimeCompare(r.CredHash, h[:]) == 1
	next := subtle.ConstantTimeCompare(r.NextCredHash, h[:]) == 1
	if !current && !next {
		return TerminalRef{}, ErrBadCredential
	}
	ref := TerminalRef{TerminalID: r.ID, MerchantID: r.MerchantID, StoreID: r.StoreID, State: r.State}
	if r.State == StateRetired {
		return ref, ErrTerminalRetired
	}
	f.touch(t) // a suspended terminal that calls is still reachable
	if r.State == StateSuspended {
		return ref, ErrTerminalSuspended
	}
	if next || !r.EnrollIssued.IsZero() {
		if err := f.confirmCredential(t, h); err != nil {
			return TerminalRef{}, err
		}
	}
	return ref, nil
}

// RotateCredential issues a new credential for an active terminal. The
// current one keeps working until the new one is first used, so a terminal
// that lost the response rotates again with its current credential; that
// issues another new credential and the unused one stops working.
func (f *Fleet) RotateCredential(ctx context.Context, id string, who audit.Actor) (string, error) {
	cred := f.opts.NewSecret(credentialPrefix)
	ch := credHash(cred)
	_, _, _, err := f.change(ctx, id, func(r *terminalRec) error {
		switch r.State {
		case StateRetired:
			return ErrTerminalRetired
		case StateSuspended:
			return ErrTerminalSuspended
		}
		r.NextCredHash = ch[:]
		return nil
	}, func(old, r *terminalRec) []audit.Event {
		return []audit.Event{{Type: audit.CredentialRotated, Actor: who.Name, Peer: who.Peer, TerminalID: r.ID,
			MerchantID: r.MerchantID, StoreID: r.StoreID,
			Message: "terminal credential rotated; the current one works until the new one is first used",
			Attributes: map[string]string{
				"stage": stageIssued, "replaced_unused": strconv.FormatBool(len(old.NextCredHash) > 0),
			}}}
	})
	if err != nil {
		return "", err
	}
	return cred, nil
}

// Identity returns terminal id's merchant identity, signed with the active
// key. The signature is cached until the identity version or key changes.
func (f *Fleet) Identity(id string) (Identity, error) {
	f.mu.RLock()
	t := f.terms[id]
	if t == nil {
		f.mu.RUnlock()
		return Identity{}, ErrTerminalNotFound
	}
	r := t.rec
	m := f.merchants[r.MerchantID]
	s := f.stores[storeKey{r.MerchantID, r.StoreID}]
	iv := f.identityVersion(r)
	f.mu.RUnlock()
	if m == nil || s == nil {
		return Identity{}, ErrMerchantNotFound
	}
	keyID := f.signer.activeKeyID()
	t.liveMu.Lock()
	defer t.liveMu.Unlock()
	if c := t.ident; c != nil && c.IdentityVersion == iv && c.MerchantID == r.MerchantID && c.StoreID == r.StoreID && c.KeyID == keyID {
		return *c, nil
	}
	ident := &Identity{
		MerchantID: m.ID, LegalName: m.LegalName, DisplayName: m.DisplayName, MCC: m.MCC, Currency: m.Currency,
		StoreID: s.ID, StoreName: s.Name, StoreAddress: s.Address,
		TerminalID: r.ID, IdentityVersion: iv, IssueTime: f.now(),
	}
	f.signer.sign(ident)
	t.ident = ident
	return *ident, nil
}

// VerifyMerchant returns terminal id's signed identity and, when claimed is
// not empty, whether it equals the bound merchant. A mismatch is audited as
// a merchant-mismatch alert; repeats of the same claim by the same terminal
// within Options.AuditRepeatWindow are coalesced into the next alert's
// suppressed_repeats count. A recorded alert is on disk when VerifyMerchant
// returns; if it cannot be written, VerifyMerchant returns the store's error
// instead of an answer.
func (f *Fleet) VerifyMerchant(ctx context.Context, id, claimed string, who audit.Actor) (Identity, bool, error) {
	if err := ctx.Err(); err != nil {
		return Identity{}, false, err
	}
	ident, err := f.Identity(id)
	if err != nil {
		return Identity{}, false, err
	}
	if claimed == "" {
		return ident, false, nil
	}
	if claimed == ident.MerchantID {
		return ident, true, nil
	}
	// Repeats of one terminal's claim of one merchant are one alert per
	// window carrying the count of the coalesced ones: a terminal in a loop
	// must not bury the audit trail.
	ok, suppressed := f.auditRepeat.Admit("mismatch|"+id+"|"+claimed, f.now())
	if !ok {
		return ident, false, nil
	}
	attrs := map[string]string{"claimed_merchant_id": claimed, "bound_merchant_id": ident.MerchantID, "source": "VerifyMerchant"}
	if suppressed > 0 {
		attrs["suppressed_repeats"] = strconv.FormatUint(suppressed, 10)
	}
	ev := audit.Event{Type: audit.MerchantMismatch, Actor: who.Name, Peer: who.Peer, TerminalID: id,
		MerchantID: ident.MerchantID, StoreID: ident.StoreID,
		Message:    "terminal claimed a merchant it is not bound to",
		Attributes: attrs}
	// The alert (and so its merchant_mismatch webhook) is on disk before
	// the refusal leaves: a crash right after the answer must not lose it.
	if err := f.recordSync(ev); err != nil {
		// Unrecorded: the next claim is recorded, counting this one.
		f.auditRepeat.Retract("mismatch|"+id+"|"+claimed, suppressed+1)
		return Identity{}, false, fmt.Errorf("fleet: record merchant mismatch: %w", err)
	}
	return ident, false, nil
}
