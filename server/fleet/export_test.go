package fleet

import "time"

// PruneFaults runs the hourly fault pruning now.
func (f *Fleet) PruneFaults(cutoff time.Time) error { return f.pruneFaults(cutoff) }

// FaultCountKeys returns how many (merchant, store, component) counts the
// fleet report keeps.
func (f *Fleet) FaultCountKeys() int {
	f.pendMu.Lock()
	defer f.pendMu.Unlock()
	return len(f.faultCounts)
}
