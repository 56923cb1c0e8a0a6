package audit_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/audit"
)

// queryTrail records a trail where what most queries ask for is few and
// old: 40 merchant-mismatch alerts of terminal T0000090 (merchant M2) and
// 3 authentication failures of the busy terminal TB000001 at the busy
// merchant M1, a minute apart, then, an hour later, bulk batch closes a
// second apart, alternately of TB000000 at M1 and TB000001 at M4. It
// returns every event, newest first, and the time the bulk starts.
func queryTrail(t testing.TB, log *audit.Log, bulk int) ([]audit.Event, time.Time) {
	t.Helper()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 40 {
		log.Record(audit.Event{Type: audit.MerchantMismatch, TerminalID: "T0000090", MerchantID: "M2", Time: base.Add(time.Duration(i) * time.Minute), Message: fmt.Sprint("old-", i)})
		if i%15 == 0 {
			log.Record(audit.Event{Type: audit.AuthFailure, TerminalID: "TB000001", MerchantID: "M1", Time: base.Add(time.Duration(i)*time.Minute + time.Second), Message: fmt.Sprint("fail-", i)})
		}
	}
	bulkStart := base.Add(2 * time.Hour)
	for i := range bulk {
		log.Record(audit.Event{Type: audit.BatchClosed, TerminalID: fmt.Sprintf("TB%06d", i%2), MerchantID: []string{"M1", "M4"}[i%2], Time: bulkStart.Add(time.Duration(i) * time.Second), Message: fmt.Sprint("bulk-", i)})
	}
	if err := log.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	all := listAll(t, log, audit.Filter{}, 1000)
	if len(all) != bulk+43 {
		t.Fatalf("trail: %d events, want %d", len(all), bulk+43)
	}
	return all, bulkStart
}

// listAll lists every page of f and the number of calls it took.
func listAll(t testing.TB, log *audit.Log, f audit.Filter, pageSize int) []audit.Event {
	t.Helper()
	var out []audit.Event
	token := ""
	for range 1000 {
		p, err := log.ListPage(t.Context(), f, pageSize, token)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Events...)
		if token = p.NextPageToken; token == "" {
			return out
		}
	}
	t.Fatal("more than 1000 pages")
	return nil
}

func matchesFilter(f audit.Filter, e audit.Event) bool {
	return (f.Type == audit.TypeUnspecified || e.Type == f.Type) &&
		(f.TerminalID == "" || e.TerminalID == f.TerminalID) &&
		(f.MerchantID == "" || e.MerchantID == f.MerchantID) &&
		(f.Start.IsZero() || !e.Time.Before(f.Start)) &&
		(f.End.IsZero() || e.Time.Before(f.End))
}

// Every filter, time ranges included, returns exactly its matches across
// pages, and a page reads events in proportion to its size, not to the
// trail: a time range is found by a binary search over IDs, a terminal,
// merchant or type by its index.
func TestListCostProportionalToPage(t *testing.T) {
	const bulk, pageSize = 4000, 5
	log := openLog(t)
	all, bulkStart := queryTrail(t, log, bulk)
	old := bulkStart.Add(-2 * time.Hour)
	tests := []struct {
		name string
		f    audit.Filter
	}{
		{"terminal", audit.Filter{TerminalID: "T0000090"}},
		{"merchant", audit.Filter{MerchantID: "M2"}},
		{"type", audit.Filter{Type: audit.MerchantMismatch}},
		{"time range", audit.Filter{Start: old.Add(10 * time.Minute), End: old.Add(20 * time.Minute)}},
		{"end time", audit.Filter{End: old.Add(12 * time.Minute)}},
		{"start time", audit.Filter{Start: bulkStart.Add(time.Duration(bulk-12) * time.Second)}},
		{"terminal in a time range", audit.Filter{TerminalID: "T0000090", Start: old.Add(5 * time.Minute), End: old.Add(9 * time.Minute)}},
		{"type before a time", audit.Filter{Type: audit.AuthFailure, End: old.Add(20 * time.Minute)}},
		{"busy merchant and a rare type", audit.Filter{MerchantID: "M1", Type: audit.AuthFailure}},
		{"merchant of the bulk in a time range", audit.Filter{MerchantID: "M1", Start: bulkStart.Add(100 * time.Second), End: bulkStart.Add(117 * time.Second)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var want []string
			for _, e := range all {
				if matchesFilter(tc.f, e) {
					want = append(want, e.Message)
				}
			}
			before := log.Reads()
			pages := 0
			var got []string
			token := ""
			for {
				p, err := log.ListPage(t.Context(), tc.f, pageSize, token)
				if err != nil {
					t.Fatal(err)
				}
				if !p.SearchedFrom.IsZero() {
					t.Errorf("page %d stopped at the read budget (searched from %v)", pages, p.SearchedFrom)
				}
				pages++
				for _, e := range p.Events {
					got = append(got, e.Message)
				}
				if token = p.NextPageToken; token == "" {
					break
				}
			}
			if len(want) == 0 || !slices.Equal(got, want) {
				t.Fatalf("got %d events %v, want %d %v", len(got), got, len(want), want)
			}
			// Per page: two binary searches of at most 66 reads each, and
			// the page's events plus one.
			read := log.Reads() - before
			if limit := uint64(pages * (2*66 + pageSize + 1)); read > limit {
				t.Errorf("read %d events for %d pages of %d matches, want at most %d (the trail holds %d)", read, pages, len(want), limit, len(all))
			}
		})
	}
}

// A filter no index serves whole (a busy terminal at a busy merchant,
// where neither index is sparse) reads at most the read budget per call:
// a short page says how far back it searched, and its token goes on until
// every match is found. A combination with a sparse index reads that one.
func TestListReadBudgetSaysSearchedFrom(t *testing.T) {
	log := openLog(t)
	all, bulkStart := queryTrail(t, log, 3000)
	log.SetReadBudget(500)
	f := audit.Filter{TerminalID: "TB000001", MerchantID: "M1"}
	p, err := log.ListPage(t.Context(), f, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Events) != 0 || p.NextPageToken == "" || p.SearchedFrom.IsZero() {
		t.Fatalf("first page: %d events, token %q, searched from %v; want none, a token and a time", len(p.Events), p.NextPageToken, p.SearchedFrom)
	}
	// 500 of the terminal's or the merchant's 1500 bulk events (every
	// other one), newest first, were read.
	if !p.SearchedFrom.Equal(all[998].Time) && !p.SearchedFrom.Equal(all[999].Time) {
		t.Errorf("searched from %v, want %v or %v (the 500th newest event of the terminal or the merchant)", p.SearchedFrom, all[998].Time, all[999].Time)
	}
	if !p.SearchedFrom.After(bulkStart) {
		t.Errorf("searched from %v, before the bulk that starts at %v", p.SearchedFrom, bulkStart)
	}
	got := listAll(t, log, f, 10)
	var msgs []string
	for _, e := range got {
		msgs = append(msgs, e.Message)
	}
	if want := []string{"fail-30", "fail-15", "fail-0"}; !slices.Equal(msgs, want) {
		t.Errorf("over all pages: got %v, want %v", msgs, want)
	}

	// With the type, the sparse type index serves it: one short read.
	f.Type = audit.AuthFailure
	reads := log.Reads()
	p, err = log.ListPage(t.Context(), f, 10, "")
	if err != nil || len(p.Events) != 3 || p.NextPageToken != "" || !p.SearchedFrom.IsZero() {
		t.Fatalf("with the type: %d events, token %q, searched from %v, %v; want 3 and nothing more", len(p.Events), p.NextPageToken, p.SearchedFrom, err)
	}
	if read := log.Reads() - reads; read > 3*32+3 {
		t.Errorf("with the type: read %d entries, want at most %d", read, 3*32+3)
	}
}

// An event stamped a little before the event recorded ahead of it (a
// payment event carries its decision time and gets its ID at commit) is
// still found by a time range that holds it.
func TestListTimeRangeFindsEventsStampedEarly(t *testing.T) {
	log := openLog(t)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 100 {
		log.Record(audit.Event{Type: audit.AuthFailure, Time: base.Add(time.Duration(i) * time.Second), Message: fmt.Sprint(i)})
		if i == 50 {
			// Recorded after the event of second 50, stamped at second 48.5.
			log.Record(audit.Event{Type: audit.BatchClosed, Time: base.Add(48500 * time.Millisecond), Message: "early"})
		}
	}
	if err := log.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, f := range []audit.Filter{
		{Start: base.Add(48 * time.Second), End: base.Add(49 * time.Second)},
		{Type: audit.BatchClosed, Start: base.Add(48 * time.Second), End: base.Add(49 * time.Second)},
		{End: base.Add(49 * time.Second)},
		{Start: base.Add(48500 * time.Millisecond)},
	} {
		found := false
		for _, e := range listAll(t, log, f, 10) {
			found = found || e.Message == "early"
		}
		if !found {
			t.Errorf("%+v: the event stamped at 48.5 s, recorded after 50 s, is not listed", f)
		}
	}
}
