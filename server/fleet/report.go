package fleet

import (
	"sort"
	"strconv"
	"time"

	"github.com/posfleet/posfleet/server/audit"
)

// Count is a number of terminals or events per key.
type Count struct {
	Key   string
	Count uint64
}

// FaultCount is the number of faults of one store and component.
type FaultCount struct {
	MerchantID string
	StoreID    string
	Component  string
	Count      uint64
}

// Report is the fleet's health for a merchant, a store or the whole fleet.
type Report struct {
	Generated time.Time
	// Total counts non-retired terminals.
	Total          uint64
	ByConnectivity []Count
	ByState        []Count
	// Faults and FaultsByComponent count faults received within the
	// retention period, most first.
	Faults            []FaultCount
	FaultsByComponent []Count
	// FirmwareVersions, AppVersions and ConfigVersions count terminals that
	// reported a status, most first.
	FirmwareVersions []Count
	AppVersions      []Count
	ConfigVersions   []Count
	// MismatchAlerts counts the merchant-mismatch alerts of the scope's
	// terminals, retired ones included (of every terminal ever, for the
	// whole fleet); MismatchTerminals counts them per terminal, most first.
	MismatchAlerts    uint64
	MismatchTerminals []Count
	// FaultsDropped counts faults over their terminal's budget since the
	// server started (see Options.FaultBurst); they are in no other count.
	FaultsDropped uint64
}

// ReportTop is how many entries each list of a report holds at most: the
// biggest ones, and one more, keyed OtherComponent, summing the rest. A
// report stays small however many terminals, versions or fault components
// the fleet has.
const ReportTop = 100

// TopCounts returns the first n of cs (sorted most first) and, when there
// are more, an OtherComponent entry summing them.
func TopCounts(cs []Count, n int) []Count {
	if len(cs) <= n {
		return cs
	}
	other := Count{Key: OtherComponent}
	for _, c := range cs[n:] {
		other.Count += c.Count
	}
	return append(cs[:n:n], other)
}

// Report computes the fleet report for merchantID and storeID (empty:
// everything). It reads only memory. Its lists are aggregated to at most
// ReportTop entries plus one summing the rest.
func (f *Fleet) Report(merchantID, storeID string) (Report, error) {
	now := f.now()
	f.mu.RLock()
	if merchantID != "" {
		if _, ok := f.merchants[merchantID]; !ok {
			f.mu.RUnlock()
			return Report{}, ErrMerchantNotFound
		}
		if storeID != "" {
			if _, ok := f.stores[storeKey{merchantID, storeID}]; !ok {
				f.mu.RUnlock()
				return Report{}, ErrStoreNotFound
			}
		}
	}
	type member struct {
		t *term
		r *terminalRec
	}
	var members []member
	for _, t := range f.terms {
		r := t.rec
		if (merchantID != "" && r.MerchantID != merchantID) || (storeID != "" && r.StoreID != storeID) {
			continue
		}
		members = append(members, member{t, r})
	}
	f.mu.RUnlock()

	rep := Report{Generated: now.UTC()}
	conn := map[string]uint64{}
	state := map[string]uint64{}
	fw, app, cfg := map[string]uint64{}, map[string]uint64{}, map[string]uint64{}
	ids := make([]string, 0, len(members))
	for _, m := range members {
		ids = append(ids, m.r.ID)
		if m.r.State == StateRetired {
			continue
		}
		rep.Total++
		state[m.r.State.String()]++
		m.t.liveMu.Lock()
		st, last, seen := m.t.status, m.t.last, m.t.seen
		m.t.liveMu.Unlock()
		conn[connectivity(seen, now, f.interval(m.r.ID)).String()]++
		if last.IsZero() {
			continue
		}
		fw[orUnknown(st.FirmwareVersion)]++
		app[orUnknown(st.AppVersion)]++
		cfg[strconv.FormatUint(st.ConfigVersion, 10)]++
	}
	rep.MismatchAlerts, rep.MismatchTerminals = f.mismatches(merchantID, ids)
	rep.ByConnectivity = counts(conn)
	rep.ByState = counts(state)
	rep.FirmwareVersions, rep.AppVersions, rep.ConfigVersions = counts(fw), counts(app), counts(cfg)
	rep.FaultsDropped = f.faultsDropped.Load()

	byComp := map[string]uint64{}
	f.pendMu.Lock()
	for k, n := range f.faultCounts {
		if n == 0 || (merchantID != "" && k.merchant != merchantID) || (storeID != "" && k.store != storeID) {
			continue
		}
		rep.Faults = append(rep.Faults, FaultCount{MerchantID: k.merchant, StoreID: k.store, Component: k.component, Count: n})
		byComp[k.component] += n
	}
	f.pendMu.Unlock()
	sort.Slice(rep.Faults, func(i, j int) bool {
		a, b := rep.Faults[i], rep.Faults[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		if a.MerchantID != b.MerchantID {
			return a.MerchantID < b.MerchantID
		}
		if a.StoreID != b.StoreID {
			return a.StoreID < b.StoreID
		}
		return a.Component < b.Component
	})
	rep.FaultsByComponent = counts(byComp)
	if len(rep.Faults) > ReportTop {
		other := FaultCount{Component: OtherComponent}
		for _, x := range rep.Faults[ReportTop:] {
			other.Count += x.Count
		}
		rep.Faults = append(rep.Faults[:ReportTop:ReportTop], other)
	}
	return rep, nil
}

// mismatches counts the merchant-mismatch alerts of the terminals ids, all
// of them and per terminal; for the whole fleet (merchantID ""), every alert
// the audit trail has counted, of terminals since deleted too. Without an
// audit trail there are none.
func (f *Fleet) mismatches(merchantID string, ids []string) (total uint64, byTerminal []Count) {
	if f.audit == nil {
		return 0, counts(nil)
	}
	all := f.audit.MismatchesByTerminal()
	if merchantID == "" {
		return f.audit.Count(audit.MerchantMismatch), counts(all)
	}
	mine := map[string]uint64{}
	for _, id := range ids {
		if n := all[id]; n > 0 {
			mine[id] = n
			total += n
		}
	}
	return total, counts(mine)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// counts turns a map into counts, most first, ties by key, cut to
// ReportTop entries and the sum of the rest.
func counts(m map[string]uint64) []Count {
	return TopCounts(sortCounts(m), ReportTop)
}

// sortCounts turns a map into counts, most first, ties by key.
func sortCounts(m map[string]uint64) []Count {
	out := make([]Count, 0, len(m))
	for k, n := range m {
		out = append(out, Count{Key: k, Count: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Key < out[j].Key
	})
	return out
}
