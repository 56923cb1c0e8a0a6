package payment

// fail records err as the storage failure that stops the engine from
// deciding, and signals Stopped. The first failure is the one reported.
func (e *Engine) fail(err error) {
	e.failErr.CompareAndSwap(nil, &err)
	e.failed.Store(true)
	e.stopOnce.Do(func() { close(e.stopped) })
}

// Stopped returns a channel that closes when the engine stops deciding
// because a commit failed (Failure then says why). From then on every
// request fails with ErrUnavailable; the engine does not recover by itself.
// Its owner recovers by closing it and calling Open again on the same store
// once the store answers: Open rebuilds the state from what is durable, so
// nothing acknowledged is lost and nothing of the failed commit counts. The
// channel never closes for an engine that is merely closed.
func (e *Engine) Stopped() <-chan struct{} { return e.stopped }
