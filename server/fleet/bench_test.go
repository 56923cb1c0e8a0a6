package fleet_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/posfleet/posfleet/internal/testclock"
	"github.com/posfleet/posfleet/server/fleet"
)

// benchFleet returns a fleet with n registered terminals and their
// registrations.
func benchFleet(b *testing.B, n int) (*env, []fleet.Registration) {
	b.Helper()
	e := openEnv(b, b.TempDir(), testclock.New(time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)), fleet.DefaultOptions())
	if _, err := e.f.CreateMerchant(b.Context(), fleet.Merchant{ID: "MID1", LegalName: "x", MCC: "5411", Currency: "NZD"}, admin); err != nil {
		b.Fatal(err)
	}
	if _, err := e.f.CreateStore(b.Context(), fleet.Store{MerchantID: "MID1", ID: "s1", Name: "s1"}, admin); err != nil {
		b.Fatal(err)
	}
	regs := make([]fleet.Registration, n)
	for i := range regs {
		p, err := e.f.Provision(b.Context(), fleet.ProvisionRequest{Serial: fmt.Sprintf("SN%06d", i), MerchantID: "MID1", StoreID: "s1"}, admin)
		if err != nil {
			b.Fatal(err)
		}
		regs[i], err = e.f.Register(b.Context(), fleet.RegisterRequest{Serial: p.Terminal.Serial, Code: p.EnrollmentCode, Peer: "10.0.0.1:1"})
		if err != nil {
			b.Fatal(err)
		}
	}
	return e, regs
}

// BenchmarkAuthenticate measures the per-call credential lookup.
func BenchmarkAuthenticate(b *testing.B) {
	e, regs := benchFleet(b, 100)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := e.f.Authenticate(regs[i%len(regs)].Credential); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkHeartbeat measures a heartbeat with no faults (memory only).
func BenchmarkHeartbeat(b *testing.B) {
	e, regs := benchFleet(b, 100)
	st := fleet.Status{FirmwareVersion: "fw", AppVersion: "app", ConfigVersion: 3}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := e.f.Heartbeat(regs[i%len(regs)].Terminal.ID, st, nil); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}
