package fleet

// CountByConnectivity counts the terminals that are not retired by
// connectivity, as Report does, without the rest of the report: it is
// cheap enough for every metrics scrape. It reads memory only.
func (f *Fleet) CountByConnectivity() map[Connectivity]uint64 {
	now := f.now()
	f.mu.RLock()
	type member struct {
		t  *term
		id string
	}
	// t.rec is replaced under f.mu; its ID is read here.
	members := make([]member, 0, len(f.terms))
	for _, t := range f.terms {
		if t.rec.State != StateRetired {
			members = append(members, member{t, t.rec.ID})
		}
	}
	f.mu.RUnlock()
	out := make(map[Connectivity]uint64, 4)
	for _, m := range members {
		m.t.liveMu.Lock()
		seen := m.t.seen
		m.t.liveMu.Unlock()
		out[connectivity(seen, now, f.interval(m.id))]++
	}
	return out
}
