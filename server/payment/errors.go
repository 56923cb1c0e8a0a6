package payment

import (
	"errors"
	"fmt"
)

// Errors of the engine. Declines are results, not errors: these report calls
// that could not be decided.
var (
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("payment: engine closed")
	// ErrUnavailable is returned once a commit has failed: the engine stops
	// deciding because its memory may hold effects that are not durable.
	// Reopening the engine (Open again on the same store, as the server's
	// supervisor does once the store answers, or a restart) recovers from
	// the ledger; Stopped signals the moment.
	ErrUnavailable = errors.New("payment: engine unavailable after a storage failure")
	// ErrRequestIDReused is returned when a Reverse or CloseBatch request ID
	// was already used for a different request (Authorize, Refund and
	// Capture answer this with response code 94 instead).
	ErrRequestIDReused = errors.New("payment: request_id already used for a different request")
	// ErrBatchMismatch is returned by CloseBatch when the batch number is not
	// the terminal's open batch. Errors wrapping it are *BatchMismatchError.
	ErrBatchMismatch = errors.New("payment: batch number is not the open batch")
	// ErrBadPageToken is returned by ListTransactions for a page token it did
	// not issue.
	ErrBadPageToken = errors.New("payment: invalid page token")
)

// ValidationError reports a malformed request field. It wraps ErrInvalid.
type ValidationError struct {
	// Field is the request field, in the protocol's names, e.g. "card.token".
	Field string
	// Reason says what is wrong, in plain words, without echoing the value.
	Reason string
}

// ErrInvalid is wrapped by every ValidationError.
var ErrInvalid = errors.New("payment: invalid request")

func (e *ValidationError) Error() string { return "payment: invalid " + e.Field + ": " + e.Reason }

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// FieldViolation returns the request field and what is wrong with it, for
// a google.rpc.BadRequest field violation.
func (e *ValidationError) FieldViolation() (field, description string) { return e.Field, e.Reason }

// BatchMismatchError says which batch is open when CloseBatch named another.
type BatchMismatchError struct {
	Requested, Open uint64
}

func (e *BatchMismatchError) Error() string {
	return fmt.Sprintf("payment: batch %d is not open (open batch is %d)", e.Requested, e.Open)
}

// Unwrap makes errors.Is(err, ErrBatchMismatch) hold.
func (e *BatchMismatchError) Unwrap() error { return ErrBatchMismatch }
