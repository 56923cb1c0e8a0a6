package fleet_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/fleet"
)

func TestRestartKeepsEverything(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.merchant("MID1", "s1")
	e.merchant("MID2", "x1")
	name := "Kiwi Two"
	if _, err := e.f.UpdateMerchant(ctx, "MID1", fleet.MerchantUpdate{DisplayName: &name}, admin); err != nil {
		t.Fatal(err)
	}
	active := e.registered("SN1", "MID1", "s1")
	suspended := e.registered("SN2", "MID1", "s1")
	if _, err := e.f.Suspend(ctx, suspended.Terminal.ID, "review", admin); err != nil {
		t.Fatal(err)
	}
	pending := e.provision("SN3", "MID2", "x1")
	retired := e.registered("SN4", "MID1", "s1")
	if _, err := e.f.Retire(ctx, retired.Terminal.ID, "lost", admin); err != nil {
		t.Fatal(err)
	}
	if _, err := e.f.Rebind(ctx, active.Terminal.ID, "MID2", "x1", "moved", admin); err != nil {
		t.Fatal(err)
	}
	before, _ := e.f.Identity(active.Terminal.ID)
	keys := e.f.PublicKeys()

	e = e.reopen()
	m, err := e.f.Merchant("MID1")
	if err != nil || m.DisplayName != "Kiwi Two" || m.IdentityVersion != 2 {
		t.Errorf("MID1 after restart = %+v, %v", m, err)
	}
	if st, _, _ := e.f.ListStores("", 10, "", false); len(st) != 2 {
		t.Errorf("stores after restart = %v", st)
	}
	if ref, err := e.f.Authenticate(active.Credential); err != nil || ref.MerchantID != "MID2" {
		t.Errorf("active credential after restart: %+v, %v", ref, err)
	}
	if _, err := e.f.Authenticate(suspended.Credential); !errors.Is(err, fleet.ErrTerminalSuspended) {
		t.Errorf("suspended credential after restart: %v", err)
	}
	if _, err := e.f.Authenticate(retired.Credential); !errors.Is(err, fleet.ErrTerminalRetired) {
		t.Errorf("retired credential after restart: %v", err)
	}
	if _, err := e.register("SN3", pending.EnrollmentCode); err != nil {
		t.Errorf("pending enrollment after restart: %v", err)
	}
	if _, err := e.f.Provision(ctx, fleet.ProvisionRequest{Serial: "SN1", MerchantID: "MID1", StoreID: "s1"}, admin); !errors.Is(err, fleet.ErrSerialInUse) {
		t.Errorf("serial index after restart: %v, want ErrSerialInUse", err)
	}
	if _, err := e.f.Provision(ctx, fleet.ProvisionRequest{Serial: "SN4", MerchantID: "MID1", StoreID: "s1"}, admin); err != nil {
		t.Errorf("retired serial after restart: %v, want it free", err)
	}
	after, _ := e.f.Identity(active.Terminal.ID)
	if after.KeyID != before.KeyID || after.IdentityVersion != before.IdentityVersion || after.MerchantID != "MID2" {
		t.Errorf("identity after restart = key %s v%d %s, want key %s v%d MID2", after.KeyID, after.IdentityVersion, after.MerchantID, before.KeyID, before.IdentityVersion)
	}
	if got := e.f.PublicKeys(); len(got) != 1 || got[0].KeyID != keys[0].KeyID {
		t.Errorf("signing keys after restart = %v, want %v", got, keys)
	}
}

func TestConcurrentUse(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	e.merchant("MID1", "s1", "s2")
	regs := make([]fleet.Registration, 8)
	for i := range regs {
		regs[i] = e.registered(fmt.Sprintf("SN%d", i), "MID1", "s1")
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	beats := 0 // heartbeats accepted (a suspended terminal's are refused)
	for i, r := range regs {
		wg.Go(func() {
			for j := range 50 {
				_, err := e.f.Heartbeat(r.Terminal.ID, fleet.Status{ConfigVersion: uint64(j)}, []fleet.Fault{{Component: "printer", Time: e.clock.Now()}})
				if errors.Is(err, fleet.ErrTerminalSuspended) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				beats++
				mu.Unlock()
				if _, err := e.f.Authenticate(r.Credential); err != nil && !errors.Is(err, fleet.ErrTerminalSuspended) {
					t.Error(err)
					return
				}
			}
		})
		wg.Go(func() {
			if i%2 == 0 {
				if _, err := e.f.Rebind(ctx, r.Terminal.ID, "MID1", "s2", "move", admin); err != nil {
					t.Error(err)
				}
			} else if _, err := e.f.Suspend(ctx, r.Terminal.ID, "x", admin); err != nil {
				t.Error(err)
			}
			if _, err := e.f.SendCommand(ctx, r.Terminal.ID, fleet.CommandReboot, nil, 0, admin); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 20 {
			if err := e.f.Flush(ctx); err != nil {
				t.Error(err)
			}
			if _, err := e.f.Report("", ""); err != nil {
				t.Error(err)
			}
		}
	}()
	wg.Wait()
	rep, _ := e.f.Report("", "")
	if want := fmt.Sprintf("[{printer %d}]", beats); beats < 200 || fmt.Sprint(rep.FaultsByComponent) != want {
		t.Errorf("faults = %v, want %s (one per accepted heartbeat, at least the 200 of never-suspended terminals)", rep.FaultsByComponent, want)
	}
}

func TestDefaultOptionsValidate(t *testing.T) {
	o := fleet.DefaultOptions()
	if err := o.Validate(); err == nil {
		t.Error("options without NewSecret validated")
	}
	o.NewSecret = testSecret
	if err := o.Validate(); err != nil {
		t.Errorf("default options: %v", err)
	}
	bad := []func(*fleet.Options){
		func(o *fleet.Options) { o.FlushInterval = 0 },
		func(o *fleet.Options) { o.HeartbeatInterval = time.Millisecond },
		func(o *fleet.Options) { o.SerialAttempts = 0 },
		func(o *fleet.Options) { o.PeerFailuresPerMinute = 0 },
	}
	for i, mut := range bad {
		c := o
		mut(&c)
		if c.Validate() == nil {
			t.Errorf("case %d validated", i)
		}
	}
}
