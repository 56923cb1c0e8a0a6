package configpush

// RolloutsByState counts the live rollouts (those that still affect
// terminals: running, paused, halted, and the completed ones still in
// force) by state. It reads memory only.
func (e *Engine) RolloutsByState() map[State]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[State]int, 4)
	for _, r := range e.live {
		out[r.rec.State]++
	}
	return out
}
