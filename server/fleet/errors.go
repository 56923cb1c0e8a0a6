package fleet

import (
	"errors"
	"fmt"
)

// Sentinel errors of the fleet. The server maps each to a gRPC status code
// and a stable ErrorInfo reason.
var (
	// ErrMerchantExists: CreateMerchant with a merchant ID that is taken.
	ErrMerchantExists = errors.New("fleet: merchant already exists")
	// ErrMerchantNotFound: no merchant with that ID.
	ErrMerchantNotFound = errors.New("fleet: merchant not found")
	// ErrStoreExists: CreateStore with a store ID the merchant already has.
	ErrStoreExists = errors.New("fleet: store already exists")
	// ErrStoreNotFound: the merchant has no store with that ID.
	ErrStoreNotFound = errors.New("fleet: store not found")
	// ErrTerminalNotFound: no terminal with that ID.
	ErrTerminalNotFound = errors.New("fleet: terminal not found")
	// ErrSerialInUse: a non-retired terminal already has the serial number.
	ErrSerialInUse = errors.New("fleet: serial number in use by another terminal")
	// ErrEnrollmentInvalid: the enrollment code is unknown or belongs to a
	// terminal with another serial number.
	ErrEnrollmentInvalid = errors.New("fleet: enrollment code invalid for this serial number")
	// ErrEnrollmentExpired: the enrollment code expired; reissue it.
	ErrEnrollmentExpired = errors.New("fleet: enrollment code expired")
	// ErrEnrollmentUsed: the enrollment code was already used.
	ErrEnrollmentUsed = errors.New("fleet: enrollment code already used")
	// ErrTerminalRetired: the terminal is retired for good.
	ErrTerminalRetired = errors.New("fleet: terminal retired")
	// ErrTerminalSuspended: the terminal is suspended by an operator.
	ErrTerminalSuspended = errors.New("fleet: terminal suspended")
	// ErrBadCredential: the terminal credential is unknown.
	ErrBadCredential = errors.New("fleet: unknown terminal credential")
	// ErrRateLimited: too many attempts from this caller or for this serial.
	ErrRateLimited = errors.New("fleet: too many attempts, retry later")
	// ErrBadPageToken: a page token the fleet did not issue.
	ErrBadPageToken = errors.New("fleet: invalid page token")
	// ErrSameBinding: a rebind to the store the terminal is already in.
	ErrSameBinding = errors.New("fleet: terminal is already bound to that store")
	// ErrCommandNotFound: no such remote command.
	ErrCommandNotFound = errors.New("fleet: command not found")
	// ErrCommandNotOwned: a terminal named another terminal's command.
	ErrCommandNotOwned = errors.New("fleet: command belongs to another terminal")
	// ErrCommandExpired: the command expired before it was acknowledged.
	ErrCommandExpired = errors.New("fleet: command expired")
	// ErrMerchantArchived: a new store or terminal for an archived merchant.
	ErrMerchantArchived = errors.New("fleet: merchant is archived")
	// ErrStoreArchived: a terminal provisioned or rebound into an archived
	// store.
	ErrStoreArchived = errors.New("fleet: store is archived")
	// ErrMerchantHasTerminals: archiving a merchant that still has
	// terminals that are not retired (or one being provisioned).
	ErrMerchantHasTerminals = errors.New("fleet: merchant has terminals that are not retired")
	// ErrStoreHasTerminals: archiving a store that still has terminals that
	// are not retired (or one being provisioned).
	ErrStoreHasTerminals = errors.New("fleet: store has terminals that are not retired")
	// ErrCommandFinished: the command was already acknowledged with another
	// result.
	ErrCommandFinished = errors.New("fleet: command already acknowledged")
	// ErrMerchantHasPayments is returned by UpdateMerchant for a change of
	// currency of a merchant with payments: its ledger, batches and
	// settlement reports are in the old currency, and totals cannot add two
	// currencies.
	ErrMerchantHasPayments = errors.New("fleet: merchant has payments")
)

// InvalidError is a semantic check of one input field that failed inside the
// fleet (the transport validates formats before calling).
type InvalidError struct {
	// Field is the request field, in the protocol's snake_case path.
	Field string
	// Reason says what is wrong, in plain words.
	Reason string
}

func (e *InvalidError) Error() string { return fmt.Sprintf("fleet: %s %s", e.Field, e.Reason) }

// FieldViolation returns the invalid field and what is wrong with it.
func (e *InvalidError) FieldViolation() (field, description string) { return e.Field, e.Reason }

func invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
