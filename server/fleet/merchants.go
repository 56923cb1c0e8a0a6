package fleet

import (
	"context"
	"encoding/base64"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/store"
)

// CreateMerchant creates m. Its identity version starts at 1.
func (f *Fleet) CreateMerchant(ctx context.Context, m Merchant, who audit.Actor) (Merchant, error) {
	if err := ctx.Err(); err != nil {
		return Merchant{}, err
	}
	if m.ID == "" {
		return Merchant{}, invalid("merchant.merchant_id", "is required")
	}
	f.catalogMu.Lock()
	defer f.catalogMu.Unlock()
	f.mu.RLock()
	_, exists := f.merchants[m.ID]
	f.mu.RUnlock()
	if exists {
		return Merchant{}, ErrMerchantExists
	}
	now := f.now().UTC()
	m.IdentityVersion, m.Created, m.Updated = 1, now, now
	ev := audit.Event{Type: audit.MerchantCreated, Actor: who.Name, Peer: who.Peer, MerchantID: m.ID,
		Message: "merchant created", Attributes: map[string]string{"legal_name": m.LegalName, "mcc": m.MCC, "currency": m.Currency,
			"allow_cross_terminal_refunds": strconv.FormatBool(m.CrossTerminalRefunds)}}
	if err := f.put(keyOf(prefixMerchant, m.ID), &m, ev); err != nil {
		return Merchant{}, err
	}
	f.mu.Lock()
	stored := m
	f.merchants[m.ID] = &stored
	f.mu.Unlock()
	return m, nil
}

// put writes one record in a synced commit, together with the audit events
// that record the change.
func (f *Fleet) put(key []byte, v any, evs ...audit.Event) error {
	b, err := encode(v)
	if err != nil {
		return err
	}
	return f.commit(func(tx *store.Txn) error { return tx.Set(key, b) }, evs...)
}

// commit runs fn in a synced commit with the audit events that record its
// change (see audit.Log.Commit).
func (f *Fleet) commit(fn func(tx *store.Txn) error, evs ...audit.Event) error {
	if f.audit == nil {
		return f.db.Update(fn)
	}
	return f.audit.Commit(fn, evs...)
}

// Merchant returns the merchant with the given ID.
func (f *Fleet) Merchant(id string) (Merchant, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	m, ok := f.merchants[id]
	if !ok {
		return Merchant{}, ErrMerchantNotFound
	}
	return *m, nil
}

// UpdateMerchant changes the fields set in u and bumps the identity version:
// every terminal of the merchant gets a newly signed identity. A change of
// currency is refused with ErrMerchantHasPayments once the payment history
// (SetPaymentHistory) has payments of the merchant.
func (f *Fleet) UpdateMerchant(ctx context.Context, id string, u MerchantUpdate, who audit.Actor) (Merchant, error) {
	if err := ctx.Err(); err != nil {
		return Merchant{}, err
	}
	f.catalogMu.Lock()
	defer f.catalogMu.Unlock()
	f.mu.RLock()
	cur, ok := f.merchants[id]
	f.mu.RUnlock()
	if !ok {
		return Merchant{}, ErrMerchantNotFound
	}
	if u.Currency != nil && *u.Currency != cur.Currency {
		// Checked under catalogMu, which every merchant write holds: no
		// other update of this merchant comes between check and write.
		has, err := f.hasPayments(ctx, id)
		if err != nil {
			return Merchant{}, err
		}
		if has {
			return Merchant{}, fmt.Errorf("%w: merchant %s has payments in %s; its currency cannot change", ErrMerchantHasPayments, id, cur.Currency)
		}
	}
	m := *cur
	var changed []string
	set := func(name string, dst *string, v *string) {
		if v != nil {
			if *dst != *v {
				changed = append(changed, name)
			}
			*dst = *v
		}
	}
	set("legal_name", &m.LegalName, u.LegalName)
	set("display_name", &m.DisplayName, u.DisplayName)
	set("mcc", &m.MCC, u.MCC)
	set("currency", &m.Currency, u.Currency)
	if u.Address != nil {
		if m.Address != *u.Address {
			changed = append(changed, "address")
		}
		m.Address = *u.Address
	}
	policyChanged := false
	if p := u.CrossTerminalRefunds; p != nil && *p != m.CrossTerminalRefunds {
		changed = append(changed, "allow_cross_terminal_refunds")
		m.CrossTerminalRefunds, policyChanged = *p, true
	}
	m.IdentityVersion++
	m.Updated = f.now().UTC()
	attrs := map[string]string{"changed": strings.Join(changed, ","), "identity_version": itoa(m.IdentityVersion)}
	if policyChanged {
		// Who may refund whose sales is a money decision: the audit trail
		// says what it became.
		attrs["allow_cross_terminal_refunds"] = strconv.FormatBool(m.CrossTerminalRefunds)
	}
	ev := audit.Event{Type: audit.MerchantUpdated, Actor: who.Name, Peer: who.Peer, MerchantID: m.ID,
		Message: "merchant updated", Attributes: attrs}
	if err := f.put(keyOf(prefixMerchant, m.ID), &m, ev); err != nil {
		return Merchant{}, err
	}
	f.mu.Lock()
	stored := m
	f.merchants[m.ID] = &stored
	f.mu.Unlock()
	return m, nil
}

// ListMerchants returns up to limit merchants ordered by ID after the page
// token, and the token of the next page ("" on the last). Archived merchants
// are left out unless includeArchived.
func (f *Fleet) ListMerchants(limit int, pageToken string, includeArchived bool) ([]Merchant, string, error) {
	after, err := decodeToken(pageToken)
	if err != nil {
		return nil, "", err
	}
	f.mu.RLock()
	ids := make([]string, 0, len(f.merchants))
	for id, m := range f.merchants {
		if id > after && (includeArchived || m.Archived.IsZero()) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	ids, next := page(ids, limit)
	out := make([]Merchant, len(ids))
	for i, id := range ids {
		out[i] = *f.merchants[id]
	}
	f.mu.RUnlock()
	return out, next, nil
}

// page cuts sorted keys to limit and returns the next page token.
func page(keys []string, limit int) ([]string, string) {
	if limit <= 0 {
		limit = 100
	}
	if len(keys) <= limit {
		return keys, ""
	}
	keys = keys[:limit]
	return keys, encodeToken(keys[limit-1])
}

// Page tokens are the last key of the previous page, base64 encoded with a
// version prefix.
func encodeToken(last string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("p1:" + last))
}

func decodeToken(tok string) (string, error) {
	if tok == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || !strings.HasPrefix(string(b), "p1:") || len(b) == 3 {
		return "", ErrBadPageToken
	}
	return string(b[3:]), nil
}

// CreateStore creates s for its merchant.
func (f *Fleet) CreateStore(ctx context.Context, s Store, who audit.Actor) (Store, error) {
	if err := ctx.Err(); err != nil {
		return Store{}, err
	}
	if s.ID == "" {
		return Store{}, invalid("store.store_id", "is required")
	}
	f.catalogMu.Lock()
	defer f.catalogMu.Unlock()
	k := storeKey{s.MerchantID, s.ID}
	f.mu.RLock()
	m, merchant := f.merchants[s.MerchantID]
	_, exists := f.stores[k]
	f.mu.RUnlock()
	switch {
	case !merchant:
		return Store{}, ErrMerchantNotFound
	case !m.Archived.IsZero():
		return Store{}, ErrMerchantArchived
	case exists:
		return Store{}, ErrStoreExists
	}
	s.Created = f.now().UTC()
	ev := audit.Event{Type: audit.StoreCreated, Actor: who.Name, Peer: who.Peer, MerchantID: s.MerchantID, StoreID: s.ID,
		Message: "store created", Attributes: map[string]string{"name": s.Name, "time_zone": s.TimeZone}}
	if err := f.put(keyOf(prefixStore, s.MerchantID, s.ID), &s, ev); err != nil {
		return Store{}, err
	}
	f.mu.Lock()
	stored := s
	f.stores[k] = &stored
	f.mu.Unlock()
	return s, nil
}

// Store returns one store of a merchant.
func (f *Fleet) Store(merchantID, storeID string) (Store, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if _, ok := f.merchants[merchantID]; !ok {
		return Store{}, ErrMerchantNotFound
	}
	s, ok := f.stores[storeKey{merchantID, storeID}]
	if !ok {
		return Store{}, ErrStoreNotFound
	}
	return *s, nil
}

// ListStores returns up to limit stores of merchantID (all merchants when
// empty) ordered by merchant and store ID, and the next page token.
// Archived stores, and the stores of archived merchants, are left out unless
// includeArchived.
func (f *Fleet) ListStores(merchantID string, limit int, pageToken string, includeArchived bool) ([]Store, string, error) {
	after, err := decodeToken(pageToken)
	if err != nil {
		return nil, "", err
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if merchantID != "" {
		if _, ok := f.merchants[merchantID]; !ok {
			return nil, "", ErrMerchantNotFound
		}
	}
	keys := make([]string, 0)
	for k, s := range f.stores {
		if merchantID != "" && k.merchant != merchantID {
			continue
		}
		if !includeArchived && (!s.Archived.IsZero() || !f.merchants[k.merchant].Archived.IsZero()) {
			continue
		}
		// "\x00" sorts below every ID character, keeping merchants together.
		if key := k.merchant + "\x00" + k.store; key > after {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys)
	keys, next := page(keys, limit)
	out := make([]Store, len(keys))
	for i, key := range keys {
		mid, sid, _ := strings.Cut(key, "\x00")
		out[i] = *f.stores[storeKey{mid, sid}]
	}
	return out, next, nil
}
