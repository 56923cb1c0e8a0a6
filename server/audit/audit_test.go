package audit_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/store/storetest"
)

func TestRecordListFilterPageReopen(t *testing.T) {
	dir := t.TempDir()
	db := storetest.OpenDir(t, dir)
	log, err := audit.Open(t.Context(), db, nil)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for i := range 25 {
		typ := audit.AuthFailure
		tid := ""
		if i%5 == 0 {
			typ, tid = audit.MerchantMismatch, fmt.Sprintf("T%07d", i%2)
		}
		log.Record(audit.Event{Type: typ, TerminalID: tid, MerchantID: "M1", Time: base.Add(time.Duration(i) * time.Second), Message: fmt.Sprint(i)})
	}
	if err := log.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}

	all, next, err := log.List(t.Context(), audit.Filter{}, 10, "")
	if err != nil || len(all) != 10 || next == "" {
		t.Fatalf("first page: %d events, next %q, err %v; want 10 and a token", len(all), next, err)
	}
	if all[0].Message != "24" || all[9].Message != "15" {
		t.Fatalf("first page runs %s..%s, want newest first 24..15", all[0].Message, all[9].Message)
	}
	seen := len(all)
	for next != "" {
		var page []audit.Event
		page, next, err = log.List(t.Context(), audit.Filter{}, 10, next)
		if err != nil {
			t.Fatal(err)
		}
		seen += len(page)
	}
	if seen != 25 {
		t.Fatalf("paged through %d events, want 25", seen)
	}

	mm, _, err := log.List(t.Context(), audit.Filter{Type: audit.MerchantMismatch}, 100, "")
	if err != nil || len(mm) != 5 {
		t.Fatalf("mismatch filter: %d events, err %v; want 5", len(mm), err)
	}
	byT, _, _ := log.List(t.Context(), audit.Filter{TerminalID: "T0000000"}, 100, "")
	if len(byT) != 3 { // i = 0, 10, 20
		t.Fatalf("terminal filter: %d events, want 3", len(byT))
	}
	win, _, _ := log.List(t.Context(), audit.Filter{Start: base.Add(5 * time.Second), End: base.Add(10 * time.Second)}, 100, "")
	if len(win) != 5 {
		t.Fatalf("time window [5s,10s): %d events, want 5", len(win))
	}
	if _, _, err := log.List(t.Context(), audit.Filter{}, 10, "garbage!"); !errors.Is(err, audit.ErrBadPageToken) {
		t.Fatalf("bad token err = %v, want ErrBadPageToken", err)
	}

	log.Close()
	db.Close()
	db = storetest.OpenDir(t, dir)
	defer db.Close()
	log, err = audit.Open(t.Context(), db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	if got := log.Count(audit.MerchantMismatch); got != 5 {
		t.Fatalf("after reopen Count(MerchantMismatch) = %d, want 5", got)
	}
	if got := log.MismatchesByTerminal()["T0000001"]; got != 2 {
		t.Fatalf("after reopen mismatches of T0000001 = %d, want 2", got)
	}
	log.Record(audit.Event{Type: audit.TokenCreated})
	log.Flush(t.Context())
	newest, _, _ := log.List(t.Context(), audit.Filter{}, 1, "")
	if len(newest) != 1 || newest[0].Type != audit.TokenCreated {
		t.Fatalf("event recorded after reopen is not the newest: %+v", newest)
	}
	// Counts from before Open (read from disk) and since add up, each
	// event counted once.
	log.Record(audit.Event{Type: audit.MerchantMismatch, TerminalID: "T0000001"})
	log.Flush(t.Context())
	if got := log.Count(audit.MerchantMismatch); got != 6 {
		t.Errorf("after one more Count(MerchantMismatch) = %d, want 6", got)
	}
	if got := log.MismatchesByTerminal()["T0000001"]; got != 3 {
		t.Errorf("after one more mismatches of T0000001 = %d, want 3", got)
	}
	if got := log.Count(audit.AuthFailure); got != 20 {
		t.Errorf("after reopen Count(AuthFailure) = %d, want 20", got)
	}
}
