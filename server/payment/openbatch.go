package payment

import (
	"context"
	"errors"
)

// Capture completes a pre-auth of the same terminal: it settles part or all
// of it, once, and releases the rest. Declines are results; errors are as
// for Authorize.
func (e *Engine) Capture(ctx context.Context, req CaptureRequest) (CaptureResult, error) {
	if err := req.validate(); err != nil {
		return CaptureResult{}, err
	}
	pol, err := e.dir.Policy(req.TerminalID)
	if err != nil {
		return CaptureResult{}, err
	}
	o := getOp(opCapture, pol)
	o.capt = &captureCall{req: req}
	o.fp = fingerprintFollowUp(opCapture, req.AuthorizationID, req.Amount)
	if err := e.submit(ctx, o); err != nil {
		return CaptureResult{}, err
	}
	res := o.capt.res
	putOp(o)
	return res, nil
}

// OpenBatch returns the terminal's open batch as the decision loop knows
// it: the number its next transaction goes into, when it opened, and its
// running server totals. A terminal without a batch gets batch 1, opened
// now; a batch that the terminal's rebinding (merchant, store or currency
// changed) would close at the next transaction is closed now, so the
// number returned is the one the next transaction and CloseBatch use. The
// answer is released once everything it reports is durable.
func (e *Engine) OpenBatch(ctx context.Context, terminalID string) (BatchSummary, error) {
	if err := checkTerminal(terminalID); err != nil {
		return BatchSummary{}, err
	}
	pol, err := e.dir.Policy(terminalID)
	if err != nil {
		return BatchSummary{}, err
	}
	pol.TerminalID = terminalID
	o := getOp(opOpenBatch, pol)
	if err := e.submit(ctx, o); err != nil {
		return BatchSummary{}, err
	}
	if o.batch == nil {
		return BatchSummary{}, errors.New("payment: open batch not read")
	}
	res := *o.batch
	putOp(o)
	return res, nil
}

// readOpenBatch answers the OpenBatch request o at now.
func (e *Engine) readOpenBatch(o *op, c *commit, now int64) {
	term, err := e.terminal(o.pol.TerminalID, &o.pol, now)
	if err != nil {
		c.fail(o, err)
		return
	}
	b := e.currentBatch(o, term, &o.pol, c, now)
	s := b.summary()
	o.batch = &s
	c.hold(o)
}
