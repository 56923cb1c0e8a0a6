package fleet_test

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posfleet/posfleet/internal/testclock"
	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/fleet"
	"github.com/posfleet/posfleet/server/store"
	"github.com/posfleet/posfleet/server/store/storetest"
)

// Archiving takes merchants and stores out of lists and out of use, once
// their terminals are retired, and keeps them readable; it survives a
// restart and is audited.
func TestArchiveMerchantAndStore(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.merchant("MIDA", "s1", "s2")
	e.merchant("MIDB", "s1")
	p := e.provision("SN-A1", "MIDA", "s1")

	if _, err := e.f.ArchiveStore(ctx, "MIDA", "s1", "done", admin); !errors.Is(err, fleet.ErrStoreHasTerminals) {
		t.Fatalf("ArchiveStore with a live terminal: %v, want ErrStoreHasTerminals", err)
	}
	if _, err := e.f.ArchiveMerchant(ctx, "MIDA", "done", admin); !errors.Is(err, fleet.ErrMerchantHasTerminals) {
		t.Fatalf("ArchiveMerchant with a live terminal: %v, want ErrMerchantHasTerminals", err)
	}
	if _, err := e.f.Retire(ctx, p.Terminal.ID, "done", admin); err != nil {
		t.Fatal(err)
	}
	st, err := e.f.ArchiveStore(ctx, "MIDA", "s1", "done", admin)
	if err != nil || st.Archived.IsZero() {
		t.Fatalf("ArchiveStore: %+v, %v; want an archive time", st, err)
	}
	if _, err := e.f.Provision(ctx, fleet.ProvisionRequest{Serial: "SN-A2", MerchantID: "MIDA", StoreID: "s1"}, admin); !errors.Is(err, fleet.ErrStoreArchived) {
		t.Errorf("Provision into an archived store: %v, want ErrStoreArchived", err)
	}
	q := e.provision("SN-B1", "MIDB", "s1")
	if _, err := e.f.Rebind(ctx, q.Terminal.ID, "MIDA", "s1", "move", admin); !errors.Is(err, fleet.ErrStoreArchived) {
		t.Errorf("Rebind into an archived store: %v, want ErrStoreArchived", err)
	}
	if got, _, _ := e.f.ListStores("MIDA", 10, "", false); len(got) != 1 || got[0].ID != "s2" {
		t.Errorf("ListStores(MIDA) = %+v, want only s2", got)
	}

	m, err := e.f.ArchiveMerchant(ctx, "MIDA", "done", admin)
	if err != nil || m.Archived.IsZero() {
		t.Fatalf("ArchiveMerchant: %+v, %v", m, err)
	}
	again, err := e.f.ArchiveMerchant(ctx, "MIDA", "again", admin)
	if err != nil || !again.Archived.Equal(m.Archived) {
		t.Errorf("second ArchiveMerchant: %+v, %v; want it unchanged", again, err)
	}
	if _, err := e.f.CreateStore(ctx, fleet.Store{MerchantID: "MIDA", ID: "s3", Name: "Three"}, admin); !errors.Is(err, fleet.ErrMerchantArchived) {
		t.Errorf("CreateStore of an archived merchant: %v, want ErrMerchantArchived", err)
	}
	if _, err := e.f.Provision(ctx, fleet.ProvisionRequest{Serial: "SN-A3", MerchantID: "MIDA", StoreID: "s2"}, admin); !errors.Is(err, fleet.ErrMerchantArchived) {
		t.Errorf("Provision for an archived merchant: %v, want ErrMerchantArchived", err)
	}

	e = e.reopen()
	for _, tc := range []struct {
		include bool
		want    int
	}{{false, 1}, {true, 2}} {
		if got, _, _ := e.f.ListMerchants(10, "", tc.include); len(got) != tc.want {
			t.Errorf("after restart, ListMerchants(include archived %v) = %d merchants, want %d", tc.include, len(got), tc.want)
		}
	}
	if got, _, _ := e.f.ListStores("", 10, "", false); len(got) != 1 || got[0].MerchantID != "MIDB" {
		t.Errorf("after restart, ListStores = %+v, want only MIDB's store", got)
	}
	if got, _, _ := e.f.ListStores("MIDA", 10, "", true); len(got) != 2 {
		t.Errorf("after restart, ListStores(MIDA, archived) = %d stores, want 2", len(got))
	}
	if m, err := e.f.Merchant("MIDA"); err != nil || m.Archived.IsZero() {
		t.Errorf("after restart, Merchant(MIDA) = %+v, %v; want it archived and readable", m, err)
	}
	if n := len(e.events(audit.MerchantArchived)); n != 1 {
		t.Errorf("%d MERCHANT_ARCHIVED events, want 1", n)
	}
	if n := len(e.events(audit.StoreArchived)); n != 1 {
		t.Errorf("%d STORE_ARCHIVED events, want 1", n)
	}
}

// A rebind into a store racing with that store's archiving never leaves a
// live terminal in an archived store: one of the two is refused. The
// rebind's commit is slowed (a store failpoint) so that the archive runs
// between the rebind's checks and its commit.
func TestRebindRacingArchive(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	var slow atomic.Bool
	sopts := store.DefaultOptions(dir)
	sopts.CommitFault = func() error {
		if slow.CompareAndSwap(true, false) {
			time.Sleep(100 * time.Millisecond)
		}
		return nil
	}
	db := storetest.OpenWith(t, sopts)
	log, err := audit.Open(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := testclock.New(time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC))
	opts := fleet.DefaultOptions()
	opts.NewSecret, opts.Now = testSecret, c.Now
	f, err := fleet.Open(ctx, db, log, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, db: db, audit: log, f: f, clock: c, opts: opts}
	t.Cleanup(e.close)
	e.merchant("MIDA", "s1")
	e.merchant("MIDB", "s1")
	p := e.provision("SN-R1", "MIDB", "s1")

	slow.Store(true)
	done := make(chan error, 1)
	go func() {
		_, err := e.f.Rebind(ctx, p.Terminal.ID, "MIDA", "s1", "move", admin)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond) // the rebind is in its slowed commit
	_, archErr := e.f.ArchiveStore(ctx, "MIDA", "s1", "closed", admin)
	rebindErr := <-done
	// Either may win (the archive, when the rebind is slow to start);
	// never both.
	if archErr == nil && rebindErr == nil {
		t.Fatal("both the archive and the rebind into the archived store succeeded")
	}
}
