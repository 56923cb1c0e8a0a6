package fleet

import (
	"context"
	"crypto/rand"
	"errors"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/store"
)

const (
	idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	// codeAlphabet is Crockford's base32: no I, L, O or U, so that codes
	// read aloud or typed are hard to get wrong.
	codeAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	codeLen      = 12 // 60 bits
)

// randomFrom returns n characters drawn uniformly from alphabet.
func randomFrom(alphabet string, n int) string {
	out := make([]byte, n)
	buf := make([]byte, n*2)
	limit := 256 - 256%len(alphabet) // rejection sampling keeps it uniform
	for i := 0; i < n; {
		if _, err := rand.Read(buf); err != nil {
			panic("crypto/rand failed: " + err.Error())
		}
		for _, b := range buf {
			if int(b) < limit && i < n {
				out[i] = alphabet[int(b)%len(alphabet)]
				i++
			}
		}
	}
	return string(out)
}

// newEnrollmentCode returns a fresh code formatted for people:
// "XXXX-XXXX-XXXX".
func newEnrollmentCode() string {
	c := randomFrom(codeAlphabet, codeLen)
	return c[:4] + "-" + c[4:8] + "-" + c[8:]
}

// normalizeCode undoes formatting and common misreadings of a code typed by
// a person: case, dashes and spaces, I and L for 1, O for 0.
func normalizeCode(code string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(code) {
		switch r {
		case '-', ' ':
			continue
		case 'I', 'L':
			r = '1'
		case 'O':
			r = '0'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// enrollHash is the stored hash of an enrollment code. Codes carry 60 random
// bits and expire within days, which makes an offline search of the hash
// space impractical within a code's lifetime.
func enrollHash(code string) [32]byte { return secretHash("enroll", normalizeCode(code)) }

// credHash is the stored hash of a terminal credential.
func credHash(cred string) [32]byte { return secretHash("cred", cred) }

// ProvisionRequest describes a terminal to provision.
type ProvisionRequest struct {
	Serial     string
	MerchantID string
	StoreID    string
	Label      string
	// EnrollmentTTL is the validity of the code; zero for the default.
	EnrollmentTTL time.Duration
}

// Provisioned is the result of provisioning: the terminal and its
// enrollment code, which is shown only once.
type Provisioned struct {
	Terminal       Terminal
	EnrollmentCode string
	Expires        time.Time
}

// Provision creates a terminal bound to a merchant's store, with a new
// terminal ID and a single-use enrollment code. A serial number that a
// non-retired terminal already has is refused with ErrSerialInUse and
// audited as an identity collision.
func (f *Fleet) Provision(ctx context.Context, req ProvisionRequest, who audit.Actor) (Provisioned, error) {
	if err := ctx.Err(); err != nil {
		return Provisioned{}, err
	}
	ttl := req.EnrollmentTTL
	if ttl <= 0 {
		ttl = f.opts.EnrollmentTTL
	}
	f.mu.Lock()
	m, okM := f.merchants[req.MerchantID]
	st, okS := f.stores[storeKey{req.MerchantID, req.StoreID}]
	holder, inUse := f.serials[req.Serial]
	inUse = inUse || f.reservedSerials[req.Serial]
	archived := okM && okS && (!m.Archived.IsZero() || !st.Archived.IsZero())
	var id string
	if okM && okS && !inUse && !archived {
		for id == "" || f.terms[id] != nil || f.reservedIDs[id] {
			id = randomFrom(idAlphabet, 8)
		}
		f.reservedIDs[id], f.reservedSerials[req.Serial] = true, true
	}
	f.mu.Unlock()
	switch {
	case !okM:
		return Provisioned{}, ErrMerchantNotFound
	case !okS:
		return Provisioned{}, ErrStoreNotFound
	case !m.Archived.IsZero():
		return Provisioned{}, ErrMerchantArchived
	case !st.Archived.IsZero():
		return Provisioned{}, ErrStoreArchived
	case inUse:
		f.record(audit.Event{Type: audit.IdentityCollision, Actor: who.Name, Peer: who.Peer, TerminalID: holder,
			MerchantID: req.MerchantID, StoreID: req.StoreID,
			Message:    "serial number provisioned twice; refused",
			Attributes: map[string]string{"serial_number": req.Serial, "reason": "SERIAL_IN_USE"}})
		return Provisioned{}, ErrSerialInUse
	}

	now := f.now().UTC()
	code := newEnrollmentCode()
	h := enrollHash(code)
	r := &terminalRec{
		ID: id, Serial: req.Serial, MerchantID: req.MerchantID, StoreID: req.StoreID, Label: req.Label,
		State: StateProvisioned, IdentityOffset: 0, Created: now,
		EnrollHash: h[:], EnrollExpires: now.Add(ttl),
	}
	err := f.put(keyOf(prefixTerminal, id), r, audit.Event{Type: audit.TerminalProvisioned, Actor: who.Name, Peer: who.Peer, TerminalID: id,
		MerchantID: r.MerchantID, StoreID: r.StoreID, Message: "terminal provisioned",
		Attributes: map[string]string{"serial_number": r.Serial, "label": r.Label, "enrollment_expires": r.EnrollExpires.Format(time.RFC3339)}})
	t := &term{rec: r}
	f.mu.Lock()
	delete(f.reservedIDs, id)
	delete(f.reservedSerials, req.Serial)
	if err == nil {
		f.terms[id] = t
		f.index(t, nil, r)
	}
	f.mu.Unlock()
	if err != nil {
		return Provisioned{}, err
	}
	f.notifyChange(r)
	return Provisioned{Terminal: f.view(t), EnrollmentCode: code, Expires: r.EnrollExpires}, nil
}

// lookup returns terminal id and its current record.
func (f *Fleet) lookup(id string) (*term, *terminalRec, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t := f.terms[id]
	if t == nil {
		return nil, nil, ErrTerminalNotFound
	}
	return t, t.rec, nil
}

// errNoChange tells change that fn decided nothing needs to be written.
var errNoChange = errors.New("no change")

// change applies fn to a copy of terminal id's record and stores the result,
// serialized with every other change of the terminal, in one commit with the
// audit events that events (when not nil) makes of the old and new records.
// It returns the old and new records (equal when fn returned errNoChange).
func (f *Fleet) change(ctx context.Context, id string, fn func(r *terminalRec) error, events func(old, r *terminalRec) []audit.Event) (t *term, old, r *terminalRec, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, nil, err
	}
	t, _, err = f.lookup(id)
	if err != nil {
		return nil, nil, nil, err
	}
	t.opMu.Lock()
	defer t.opMu.Unlock()
	f.mu.RLock()
	old = t.rec
	f.mu.RUnlock()
	r = old.clone()
	if err := fn(r); err != nil {
		if errors.Is(err, errNoChange) {
			return t, old, old, nil
		}
		return nil, nil, nil, err
	}
	var evs []audit.Event
	if events != nil {
		evs = events(old, r)
	}
	if err := f.put(keyOf(prefixTerminal, id), r, evs...); err != nil {
		return nil, nil, nil, err
	}
	f.mu.Lock()
	t.rec = r
	f.index(t, old, r)
	f.mu.Unlock()
	return t, old, r, nil
}

// identityVersion returns r's identity version. f.mu is held.
func (f *Fleet) identityVersion(r *terminalRec) uint64 {
	m := f.merchants[r.MerchantID]
	if m == nil {
		return 0
	}
	return uint64(int64(m.IdentityVersion) + r.IdentityOffset)
}

// Terminal returns terminal id with its live status.
func (f *Fleet) Terminal(id string) (Terminal, error) {
	t, _, err := f.lookup(id)
	if err != nil {
		return Terminal{}, err
	}
	return f.view(t), nil
}

// view builds the operator's view of t.
func (f *Fleet) view(t *term) Terminal {
	f.mu.RLock()
	r := t.rec
	iv := f.identityVersion(r)
	f.mu.RUnlock()
	v := Terminal{
		ID: r.ID, Serial: r.Serial, MerchantID: r.MerchantID, StoreID: r.StoreID, Label: r.Label,
		State: r.State, StateReason: r.StateReason, Device: r.Device, IdentityVersion: iv,
		Created: r.Created, Registered: r.Registered,
	}
	if len(r.EnrollHash) > 0 && r.State != StateRetired {
		v.EnrollmentExpires = r.EnrollExpires
	}
	t.liveMu.Lock()
	v.LastStatus, v.LastHeartbeat, v.LastSeen = t.status, t.last, t.seen
	v.RecentFaults = append([]Fault(nil), t.faults...)
	t.liveMu.Unlock()
	v.Connectivity = connectivity(v.LastSeen, f.now(), f.interval(r.ID))
	v.DesiredConfigVersion = f.desiredVersion(r.ID)
	return v
}

// TerminalFilter selects terminals in ListTerminals; zero fields match all.
type TerminalFilter struct {
	MerchantID   string
	StoreID      string
	State        State
	Connectivity Connectivity
}

// ListTerminals returns up to limit terminals matching filter, ordered by
// terminal ID after the page token, and the next page token.
func (f *Fleet) ListTerminals(filter TerminalFilter, limit int, pageToken string) ([]Terminal, string, error) {
	after, err := decodeToken(pageToken)
	if err != nil {
		return nil, "", err
	}
	if limit <= 0 {
		limit = 100
	}
	// The terminals' records are read in key order from the token on, so
	// a page costs the terminals it passes, not a sort of the fleet.
	var out []Terminal
	next := ""
	start := keyOf(prefixTerminal, after+"\x00")
	err = f.db.View(func(tx *store.Txn) error {
		return tx.IterateKeysFrom(prefixTerminal, start, func(k []byte) error {
			t, r, err := f.lookup(string(k[len(prefixTerminal):]))
			if err != nil ||
				(filter.MerchantID != "" && r.MerchantID != filter.MerchantID) ||
				(filter.StoreID != "" && r.StoreID != filter.StoreID) ||
				(filter.State != StateUnspecified && r.State != filter.State) {
				return nil
			}
			v := f.view(t)
			if filter.Connectivity != ConnectivityUnspecified && v.Connectivity != filter.Connectivity {
				return nil
			}
			if len(out) == limit {
				next = encodeToken(out[limit-1].ID)
				return store.ErrStop
			}
			out = append(out, v)
			return nil
		})
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// Suspend suspends a terminal: its calls are refused (payments are
// declined) until Reactivate. Suspending a suspended terminal changes
// nothing.
func (f *Fleet) Suspend(ctx context.Context, id, reason string, who audit.Actor) (Terminal, error) {
	t, old, r, err := f.change(ctx, id, func(r *terminalRec) error {
		switch r.State {
		case StateRetired:
			return ErrTerminalRetired
		case StateSuspended:
			return errNoChange
		}
		r.State, r.StateReason = StateSuspended, reason
		return nil
	}, func(old, r *terminalRec) []audit.Event {
		return changeEvent(audit.TerminalSuspended, r, who, "terminal suspended", map[string]string{"reason": reason, "previous_state": old.State.String()})
	})
	if err != nil {
		return Terminal{}, err
	}
	if old != r {
		f.notifyChange(r)
	}
	return f.view(t), nil
}

// Reactivate lifts a suspension: the terminal returns to ACTIVE, or to
// PROVISIONED if it never registered.
func (f *Fleet) Reactivate(ctx context.Context, id, reason string, who audit.Actor) (Terminal, error) {
	t, old, r, err := f.change(ctx, id, func(r *terminalRec) error {
		switch r.State {
		case StateRetired:
			return ErrTerminalRetired
		case StateSuspended:
		default:
			return errNoChange
		}
		r.State, r.StateReason = StateActive, ""
		if r.Registered.IsZero() {
			r.State = StateProvisioned
		}
		return nil
	}, func(_, r *terminalRec) []audit.Event {
		return changeEvent(audit.TerminalReactivated, r, who, "terminal reactivated", map[string]string{"reason": reason})
	})
	if err != nil {
		return Terminal{}, err
	}
	if old != r {
		f.notifyChange(r)
	}
	return f.view(t), nil
}

// Retire retires a terminal for good: its credential and enrollment code
// stop working and its serial number may be provisioned again.
func (f *Fleet) Retire(ctx context.Context, id, reason string, who audit.Actor) (Terminal, error) {
	t, old, r, err := f.change(ctx, id, func(r *terminalRec) error {
		if r.State == StateRetired {
			return errNoChange
		}
		r.State, r.StateReason = StateRetired, reason
		return nil
	}, func(_, r *terminalRec) []audit.Event {
		return changeEvent(audit.TerminalRetired, r, who, "terminal retired", map[string]string{"reason": reason, "serial_number": r.Serial})
	})
	if err != nil {
		return Terminal{}, err
	}
	if old != r {
		f.notifyChange(r)
	}
	return f.view(t), nil
}

// changeEvent returns the audit event of a lifecycle change of r.
func changeEvent(typ audit.Type, r *terminalRec, who audit.Actor, msg string, attrs map[string]string) []audit.Event {
	return []audit.Event{{Type: typ, Actor: who.Name, Peer: who.Peer, TerminalID: r.ID, MerchantID: r.MerchantID,
		StoreID: r.StoreID, Message: msg, Attributes: attrs}}
}

// ReissueEnrollment replaces the terminal's enrollment code with a new one
// (the old one stops working) valid for ttl (zero: the default). Registering
// with it replaces the terminal's credential.
func (f *Fleet) ReissueEnrollment(ctx context.Context, id string, ttl time.Duration, who audit.Actor) (code string, expires time.Time, err error) {
	if ttl <= 0 {
		ttl = f.opts.EnrollmentTTL
	}
	code = newEnrollmentCode()
	h := enrollHash(code)
	_, _, r, err := f.change(ctx, id, func(r *terminalRec) error {
		if r.State == StateRetired {
			return ErrTerminalRetired
		}
		r.EnrollHash, r.EnrollExpires = h[:], f.now().UTC().Add(ttl)
		r.EnrollIssued = time.Time{} // the new code has issued nothing yet
		return nil
	}, func(_, r *terminalRec) []audit.Event {
		return changeEvent(audit.EnrollmentReissued, r, who, "enrollment code reissued",
			map[string]string{"enrollment_expires": r.EnrollExpires.Format(time.RFC3339)})
	})
	if err != nil {
		return "", time.Time{}, err
	}
	return code, r.EnrollExpires, nil
}

// Rebind moves a terminal to another store, possibly of another merchant:
// the only way a terminal's merchant changes. It bumps the terminal's
// identity version and is audited with the old and new binding.
func (f *Fleet) Rebind(ctx context.Context, id, merchantID, storeID, reason string, who audit.Actor) (Terminal, error) {
	// Serialized with archiving: a rebind that found the target store live
	// commits before an archive of that store looks for its live terminals.
	f.catalogMu.Lock()
	defer f.catalogMu.Unlock()
	var next uint64
	t, _, r, err := f.change(ctx, id, func(r *terminalRec) error {
		if r.State == StateRetired {
			return ErrTerminalRetired
		}
		if r.MerchantID == merchantID && r.StoreID == storeID {
			return ErrSameBinding
		}
		f.mu.RLock()
		defer f.mu.RUnlock()
		m := f.merchants[merchantID]
		if m == nil {
			return ErrMerchantNotFound
		}
		s := f.stores[storeKey{merchantID, storeID}]
		switch {
		case s == nil:
			return ErrStoreNotFound
		case !m.Archived.IsZero():
			return ErrMerchantArchived
		case !s.Archived.IsZero():
			return ErrStoreArchived
		}
		next = f.identityVersion(r) + 1
		r.MerchantID, r.StoreID = merchantID, storeID
		r.IdentityOffset = int64(next) - int64(m.IdentityVersion)
		return nil
	}, func(old, r *terminalRec) []audit.Event {
		attrs := map[string]string{
			"reason":           reason,
			"from_merchant_id": old.MerchantID,
			"from_store_id":    old.StoreID,
			"to_merchant_id":   r.MerchantID,
			"to_store_id":      r.StoreID,
			"identity_version": itoa(next),
			"merchant_changed": strconv.FormatBool(old.MerchantID != r.MerchantID),
		}
		evs := changeEvent(audit.TerminalRebound, r, who, "terminal rebound", attrs)
		if old.MerchantID != r.MerchantID {
			// The previous merchant's trail shows the terminal leaving too.
			evs = append(evs, audit.Event{Type: audit.TerminalRebound, Actor: who.Name, Peer: who.Peer, TerminalID: r.ID,
				MerchantID: old.MerchantID, StoreID: old.StoreID, Message: "terminal rebound away", Attributes: attrs})
		}
		return evs
	})
	if err != nil {
		return Terminal{}, err
	}
	f.notifyChange(r)
	return f.view(t), nil
}

// Terminals returns the binding of every non-retired terminal, ordered by
// terminal ID: the population config rollouts target.
func (f *Fleet) Terminals() []TerminalRef {
	f.mu.RLock()
	out := make([]TerminalRef, 0, len(f.terms))
	for _, t := range f.terms {
		r := t.rec
		if r.State == StateRetired {
			continue
		}
		out = append(out, TerminalRef{TerminalID: r.ID, MerchantID: r.MerchantID, StoreID: r.StoreID, State: r.State})
	}
	f.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].TerminalID < out[j].TerminalID })
	return out
}

// Binding returns what the payment engine needs about terminal id: merchant,
// store, state, the merchant's currency and MCC and the store's time zone.
// It reads only memory.
func (f *Fleet) Binding(id string) (Binding, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t := f.terms[id]
	if t == nil {
		return Binding{}, false
	}
	r := t.rec
	b := Binding{TerminalID: r.ID, MerchantID: r.MerchantID, StoreID: r.StoreID, State: r.State,
		IdentityVersion: f.identityVersion(r)}
	if m := f.merchants[r.MerchantID]; m != nil {
		b.Currency, b.MCC, b.CrossTerminalRefunds = m.Currency, m.MCC, m.CrossTerminalRefunds
	}
	if s := f.stores[storeKey{r.MerchantID, r.StoreID}]; s != nil {
		b.TimeZone = s.TimeZone
	}
	return b, true
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }
