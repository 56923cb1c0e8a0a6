package fleet

import (
	"context"

	"github.com/posfleet/posfleet/server/audit"
)

// ArchiveMerchant archives a merchant: it is left out of ListMerchants and
// ListStores by default and refuses new stores and terminals, while its
// record and history stay. It fails with ErrMerchantHasTerminals while the
// merchant has terminals that are not retired, or while any terminal is
// being provisioned (retry). Archiving an archived merchant returns it
// unchanged and records nothing.
func (f *Fleet) ArchiveMerchant(ctx context.Context, id, reason string, who audit.Actor) (Merchant, error) {
	if err := ctx.Err(); err != nil {
		return Merchant{}, err
	}
	f.catalogMu.Lock()
	defer f.catalogMu.Unlock()
	// The check and the in-memory change happen under one lock, so that no
	// provision can slip in between; the change is undone if it cannot be
	// stored.
	f.mu.Lock()
	cur, ok := f.merchants[id]
	if !ok {
		f.mu.Unlock()
		return Merchant{}, ErrMerchantNotFound
	}
	if !cur.Archived.IsZero() {
		f.mu.Unlock()
		return *cur, nil
	}
	if f.liveTerminalsLocked(func(r *terminalRec) bool { return r.MerchantID == id }) {
		f.mu.Unlock()
		return Merchant{}, ErrMerchantHasTerminals
	}
	m := *cur
	m.Archived = f.now().UTC()
	m.Updated = m.Archived
	f.merchants[id] = &m
	f.mu.Unlock()
	if err := f.put(keyOf(prefixMerchant, id), &m); err != nil {
		f.mu.Lock()
		f.merchants[id] = cur
		f.mu.Unlock()
		return Merchant{}, err
	}
	f.record(audit.Event{Type: audit.MerchantArchived, Actor: who.Name, Peer: who.Peer, MerchantID: id,
		Message: "merchant archived", Attributes: map[string]string{"reason": reason}})
	return m, nil
}

// ArchiveStore archives a store of a merchant: it is left out of ListStores
// by default and refuses new terminals and rebinds into it, while its record
// and history stay. It fails with ErrStoreHasTerminals while terminals that
// are not retired are bound to it, or while any terminal is being
// provisioned (retry). Archiving an archived store returns it unchanged and
// records nothing.
func (f *Fleet) ArchiveStore(ctx context.Context, merchantID, storeID, reason string, who audit.Actor) (Store, error) {
	if err := ctx.Err(); err != nil {
		return Store{}, err
	}
	f.catalogMu.Lock()
	defer f.catalogMu.Unlock()
	k := storeKey{merchantID, storeID}
	f.mu.Lock()
	_, okM := f.merchants[merchantID]
	cur, okS := f.stores[k]
	switch {
	case !okM:
		f.mu.Unlock()
		return Store{}, ErrMerchantNotFound
	case !okS:
		f.mu.Unlock()
		return Store{}, ErrStoreNotFound
	case !cur.Archived.IsZero():
		f.mu.Unlock()
		return *cur, nil
	}
	if f.liveTerminalsLocked(func(r *terminalRec) bool { return r.MerchantID == merchantID && r.StoreID == storeID }) {
		f.mu.Unlock()
		return Store{}, ErrStoreHasTerminals
	}
	s := *cur
	s.Archived = f.now().UTC()
	f.stores[k] = &s
	f.mu.Unlock()
	if err := f.put(keyOf(prefixStore, merchantID, storeID), &s); err != nil {
		f.mu.Lock()
		f.stores[k] = cur
		f.mu.Unlock()
		return Store{}, err
	}
	f.record(audit.Event{Type: audit.StoreArchived, Actor: who.Name, Peer: who.Peer, MerchantID: merchantID, StoreID: storeID,
		Message: "store archived", Attributes: map[string]string{"reason": reason}})
	return s, nil
}

// liveTerminalsLocked reports whether a terminal that is not retired matches
// bound, or a provision is in flight (its binding is not known yet). f.mu
// must be held.
func (f *Fleet) liveTerminalsLocked(bound func(r *terminalRec) bool) bool {
	if len(f.reservedIDs) > 0 {
		return true
	}
	for _, t := range f.terms {
		if t.rec.State != StateRetired && bound(t.rec) {
			return true
		}
	}
	return false
}
