package audit

// SetReadBudget makes every List call read at most n events (see
// readBudget). Not while List runs.
func (l *Log) SetReadBudget(n int) { l.budget = n }

// Reads returns how many events List read since Open, the binary
// searches of time bounds included.
func (l *Log) Reads() uint64 { return l.reads.Load() }
