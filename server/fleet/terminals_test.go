package fleet_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/fleet"
)

func TestSerialCollisionAndReuseAfterRetire(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.merchant("MID1", "s1")
	p := e.provision("SN1", "MID1", "s1")
	_, err := e.f.Provision(ctx, fleet.ProvisionRequest{Serial: "SN1", MerchantID: "MID1", StoreID: "s1"}, admin)
	if !errors.Is(err, fleet.ErrSerialInUse) {
		t.Fatalf("second provision of SN1: %v, want ErrSerialInUse", err)
	}
	evs := e.events(audit.IdentityCollision)
	if len(evs) != 1 || evs[0].TerminalID != p.Terminal.ID || evs[0].Attributes["serial_number"] != "SN1" {
		t.Fatalf("collision events = %+v, want one naming %s and SN1", evs, p.Terminal.ID)
	}
	if _, err := e.f.Retire(ctx, p.Terminal.ID, "replaced", admin); err != nil {
		t.Fatal(err)
	}
	p2 := e.provision("SN1", "MID1", "s1")
	if p2.Terminal.ID == p.Terminal.ID {
		t.Errorf("reprovisioned serial got the retired terminal's ID %s", p.Terminal.ID)
	}
	for _, tc := range []struct {
		req  fleet.ProvisionRequest
		want error
	}{
		{fleet.ProvisionRequest{Serial: "X", MerchantID: "NOPE", StoreID: "s1"}, fleet.ErrMerchantNotFound},
		{fleet.ProvisionRequest{Serial: "X", MerchantID: "MID1", StoreID: "nope"}, fleet.ErrStoreNotFound},
	} {
		if _, err := e.f.Provision(ctx, tc.req, admin); !errors.Is(err, tc.want) {
			t.Errorf("Provision(%+v): %v, want %v", tc.req, err, tc.want)
		}
	}
}

func TestConcurrentProvisionKeepsSerialsUnique(t *testing.T) {
	e := newEnv(t)
	e.merchant("MID1", "s1")
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for range 8 {
		wg.Go(func() {
			_, err := e.f.Provision(t.Context(), fleet.ProvisionRequest{Serial: "SAME", MerchantID: "MID1", StoreID: "s1"}, admin)
			if err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			} else if !errors.Is(err, fleet.ErrSerialInUse) {
				t.Errorf("Provision: %v", err)
			}
		})
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("%d concurrent provisions of one serial succeeded, want 1", ok)
	}
}

func TestListPagination(t *testing.T) {
	e := newEnv(t)
	for i := range 5 {
		e.merchant(fmt.Sprintf("M%d", i), "a", "b")
	}
	var ids []string
	tok := ""
	for {
		page, next, err := e.f.ListMerchants(2, tok, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page {
			ids = append(ids, m.ID)
		}
		if next == "" {
			break
		}
		tok = next
	}
	if fmt.Sprint(ids) != "[M0 M1 M2 M3 M4]" {
		t.Errorf("merchants over pages = %v", ids)
	}
	var stores []string
	tok = ""
	for {
		page, next, err := e.f.ListStores("", 3, tok, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range page {
			stores = append(stores, s.MerchantID+"/"+s.ID)
		}
		if next == "" {
			break
		}
		tok = next
	}
	if len(stores) != 10 || stores[0] != "M0/a" || stores[9] != "M4/b" {
		t.Errorf("stores over pages = %v", stores)
	}
	for i := range 7 {
		e.provision(fmt.Sprintf("SN%d", i), "M1", "a")
	}
	e.provision("OTHER", "M2", "a")
	var tids []string
	tok = ""
	for {
		page, next, err := e.f.ListTerminals(fleet.TerminalFilter{MerchantID: "M1"}, 3, tok)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range page {
			tids = append(tids, v.ID)
		}
		if next == "" {
			break
		}
		tok = next
	}
	if len(tids) != 7 {
		t.Errorf("terminals of M1 over pages = %d, want 7", len(tids))
	}
	for i := 1; i < len(tids); i++ {
		if tids[i-1] >= tids[i] {
			t.Errorf("terminals out of order: %v", tids)
		}
	}
	if _, _, err := e.f.ListMerchants(2, "garbage!", false); !errors.Is(err, fleet.ErrBadPageToken) {
		t.Errorf("bad page token: %v, want ErrBadPageToken", err)
	}
}

func TestTerminalChangeHookAndRefs(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.merchant("MID1", "s1", "s2")
	var got []string
	e.f.OnTerminalChange(func(r fleet.TerminalRef) { got = append(got, r.State.String()+":"+r.StoreID) })
	p := e.provision("SN1", "MID1", "s1")
	if _, err := e.register("SN1", p.EnrollmentCode); err != nil {
		t.Fatal(err)
	}
	if _, err := e.f.Rebind(ctx, p.Terminal.ID, "MID1", "s2", "move", admin); err != nil {
		t.Fatal(err)
	}
	refs := e.f.Terminals()
	if len(refs) != 1 || refs[0].StoreID != "s2" || refs[0].State != fleet.StateActive {
		t.Errorf("Terminals() = %+v", refs)
	}
	if _, err := e.f.Retire(ctx, p.Terminal.ID, "x", admin); err != nil {
		t.Fatal(err)
	}
	if want := "[PROVISIONED:s1 ACTIVE:s1 ACTIVE:s2 RETIRED:s2]"; fmt.Sprint(got) != want {
		t.Errorf("changes = %v, want %s", got, want)
	}
	if refs := e.f.Terminals(); len(refs) != 0 {
		t.Errorf("retired terminal still listed: %+v", refs)
	}
	b, ok := e.f.Binding(p.Terminal.ID)
	if !ok || b.Currency != "NZD" || b.MCC != "5411" || b.State != fleet.StateRetired {
		t.Errorf("Binding = %+v, %v", b, ok)
	}
}
