package fleet

import (
	"crypto/subtle"
	"time"

	"github.com/posfleet/posfleet/server/audit"
)

// Values of the "stage" attribute of TerminalRegistered and
// CredentialRotated audit events: a credential is issued (Register,
// RotateCredential), then confirmed by its first accepted use.
const (
	stageIssued    = "issued"
	stageConfirmed = "confirmed"
)

// confirmCredential records the first accepted use of the credential with
// hash h of terminal t: a rotated credential replaces the current one, and
// a registration's credential consumes the enrollment code that issued it.
// The change is written before it returns; a concurrent first use waits
// and finds it done. ErrBadCredential means the credential was replaced
// meanwhile (a retried Register or RotateCredential).
func (f *Fleet) confirmCredential(t *term, h [32]byte) error {
	t.opMu.Lock()
	defer t.opMu.Unlock()
	f.mu.RLock()
	old := t.rec
	f.mu.RUnlock()
	r := old.clone()
	var ev audit.Event
	switch {
	case subtle.ConstantTimeCompare(old.NextCredHash, h[:]) == 1:
		r.CredHash, r.NextCredHash = old.NextCredHash, nil
		ev = audit.Event{Type: audit.CredentialRotated,
			Message: "rotated credential first used; the credential it replaces is revoked"}
	case subtle.ConstantTimeCompare(old.CredHash, h[:]) != 1:
		return ErrBadCredential
	case !old.EnrollIssued.IsZero():
		r.UsedEnrollHash, r.EnrollHash, r.EnrollExpires, r.EnrollIssued = old.EnrollHash, nil, time.Time{}, time.Time{}
		ev = audit.Event{Type: audit.TerminalRegistered,
			Message: "registration credential first used; the enrollment code is consumed"}
	default:
		return nil // confirmed by a concurrent call
	}
	ev.Actor, ev.TerminalID, ev.MerchantID, ev.StoreID = "terminal:"+r.ID, r.ID, r.MerchantID, r.StoreID
	ev.Attributes = map[string]string{"stage": stageConfirmed}
	if err := f.put(keyOf(prefixTerminal, r.ID), r, ev); err != nil {
		return err
	}
	f.mu.Lock()
	t.rec = r
	f.index(t, old, r)
	f.mu.Unlock()
	return nil
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
