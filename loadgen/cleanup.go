package loadgen

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// CleanupReport counts the terminals Cleanup retired and the stores and
// merchants it archived (those already retired or archived included).
type CleanupReport struct {
	Terminals, Stores, Merchants int
}

// Cleanup removes what the fleet created from use on the server: it retires
// every terminal it provisioned, then archives its stores and merchants
// (archived ones are hidden from lists and keep their history). It is meant
// for after Run, also an interrupted one: pass a context that is not
// cancelled. Something the run never created (NotFound) is skipped; other
// failures are returned together, after everything else was tried.
func (f *Fleet) Cleanup(ctx context.Context) (CleanupReport, error) {
	var rep CleanupReport
	conc := f.cfg.SetupConcurrency
	errs := make([]error, len(f.terms))
	retired := make([]bool, len(f.terms))
	parallel(len(f.terms), conc, func(i int) {
		t := f.terms[i]
		if t.terminalID == "" {
			return
		}
		_, err := f.admin.RetireTerminal(ctx, t.terminalID, "loadgen run "+f.cfg.RunID+" cleanup")
		switch {
		case err == nil:
			retired[i] = true
		case status.Code(err) == codes.FailedPrecondition: // already retired
		default:
			errs[i] = fmt.Errorf("retire terminal %s: %w", t.terminalID, err)
		}
	})
	for _, r := range retired {
		if r {
			rep.Terminals++
		}
	}
	if err := errors.Join(errs...); err != nil {
		return rep, fmt.Errorf("loadgen: cleanup: %w", err)
	}
	stores := make([]int, len(f.merchants))
	merchants := make([]bool, len(f.merchants))
	errs = make([]error, len(f.merchants))
	reason := "loadgen run " + f.cfg.RunID + " cleanup"
	parallel(len(f.merchants), conc, func(m int) {
		id := f.merchants[m]
		for s := range f.cfg.StoresPerMerchant {
			_, err := f.admin.Admin().ArchiveStore(ctx, &pb.ArchiveStoreRequest{MerchantId: id, StoreId: fmt.Sprintf("s%02d", s), Reason: reason})
			switch {
			case err == nil:
				stores[m]++
			case status.Code(err) != codes.NotFound:
				errs[m] = fmt.Errorf("archive store %s/s%02d: %w", id, s, err)
				return
			}
		}
		_, err := f.admin.Admin().ArchiveMerchant(ctx, &pb.ArchiveMerchantRequest{MerchantId: id, Reason: reason})
		switch {
		case err == nil:
			merchants[m] = true
		case status.Code(err) != codes.NotFound:
			errs[m] = fmt.Errorf("archive merchant %s: %w", id, err)
		}
	})
	for m := range f.merchants {
		rep.Stores += stores[m]
		if merchants[m] {
			rep.Merchants++
		}
	}
	if err := errors.Join(errs...); err != nil {
		return rep, fmt.Errorf("loadgen: cleanup: %w", err)
	}
	return rep, nil
}
