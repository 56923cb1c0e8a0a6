package payment

// Failure returns the storage error that stopped the engine from deciding
// (wrapping ErrUnavailable), or nil while its commits succeed.
func (e *Engine) Failure() error { return e.failure() }
