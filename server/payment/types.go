package payment

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// EntryMode says how a card was read. Values equal the protocol's EntryMode
// numbers.
type EntryMode int32

// Entry modes.
const (
	EntryModeUnspecified EntryMode = iota
	EntryModeChip
	EntryModeContactless
	EntryModeSwipe
	EntryModeManual
	EntryModeQR
)

func (m EntryMode) valid() bool { return m > EntryModeUnspecified && m <= EntryModeQR }

// Decision is the outcome of a money request. Values equal the protocol's
// Decision numbers.
type Decision int32

// Decisions.
const (
	DecisionUnspecified Decision = iota
	DecisionApproved
	DecisionDeclined
)

// ReversalReason says why a terminal reverses an authorization. Values equal
// the protocol's ReversalReason numbers.
type ReversalReason int32

// Reversal reasons.
const (
	ReversalReasonUnspecified ReversalReason = iota
	ReversalReasonTimeout
	ReversalReasonCustomerCancel
	ReversalReasonDeviceFault
)

func (r ReversalReason) valid() bool {
	return r > ReversalReasonUnspecified && r <= ReversalReasonDeviceFault
}

// ReverseStatus is the result of a reversal. Values equal the protocol's
// ReverseStatus numbers.
type ReverseStatus int32

// Reversal results.
const (
	ReverseStatusUnspecified ReverseStatus = iota
	// ReverseStatusReversed: the original was live and is now reversed.
	ReverseStatusReversed
	// ReverseStatusAlreadyReversed: an earlier reversal already did it.
	ReverseStatusAlreadyReversed
	// ReverseStatusOriginalNotFound: no such original; a tombstone now
	// declines it (code 12) should it arrive later.
	ReverseStatusOriginalNotFound
	// ReverseStatusNotReversible: the original was declined, refunded or its
	// batch is closed.
	ReverseStatusNotReversible
)

// TxKind is the kind of a recorded transaction. Values equal the protocol's
// TransactionKind numbers.
type TxKind int32

// Transaction kinds.
const (
	TxKindUnspecified TxKind = iota
	TxKindSale
	TxKindPreauth
	TxKindRefund
)

// BatchState is the state of a terminal batch. Values equal the protocol's
// BatchState numbers.
type BatchState int32

// Batch states.
const (
	BatchStateUnspecified BatchState = iota
	BatchStateOpen
	BatchStateClosed
	BatchStateOutOfBalance
)

// Response codes (ISO 8583 field 39 subset) used by the engine.
const (
	CodeApproved              = "00"
	CodeInvalidMerchant       = "03"
	CodeDoNotHonour           = "05"
	CodeInvalidTransaction    = "12"
	CodeInvalidAmount         = "13"
	CodeInvalidCard           = "14"
	CodeInsufficientFunds     = "51"
	CodeExpiredCard           = "54"
	CodeNotPermitted          = "57"
	CodeExceedsAmountLimit    = "61"
	CodeExceedsFrequency      = "65"
	CodeDuplicateTransmission = "94"
	CodeSystemError           = "96"
)

// codeMessages are the human-readable texts of the response codes.
var codeMessages = map[string]string{
	CodeApproved:              "approved",
	CodeInvalidMerchant:       "invalid merchant",
	CodeDoNotHonour:           "do not honour",
	CodeInvalidTransaction:    "invalid transaction",
	CodeInvalidAmount:         "invalid amount",
	CodeInvalidCard:           "invalid card",
	CodeInsufficientFunds:     "insufficient funds",
	CodeExpiredCard:           "expired card",
	CodeNotPermitted:          "transaction not permitted to terminal",
	CodeExceedsAmountLimit:    "exceeds amount limit",
	CodeExceedsFrequency:      "exceeds frequency limit",
	CodeDuplicateTransmission: "duplicate transmission",
	CodeSystemError:           "system error",
}

// CodeMessage returns the human-readable text of a response code.
func CodeMessage(code string) string {
	if m, ok := codeMessages[code]; ok {
		return m
	}
	return "unknown response code"
}

// MaxAmount is the largest amount, in minor units, of one payment: twelve
// digits, the size of the ISO 8583 amount field. Larger amounts are declined
// with code 13.
const MaxAmount int64 = 999_999_999_999

// Money is an amount in a currency's minor units.
type Money struct {
	MinorUnits int64
	Currency   string // ISO 4217 alphabetic code
}

// Card is a card as the engine sees it: never a card secret.
type Card struct {
	// Token is the opaque payment token (1-128 characters). Tokens of the
	// issuer simulator's test cards start with "tok_test_".
	Token string
	// MaskedPAN is the first 6 and last 4 digits with '*' between; optional.
	MaskedPAN string
	// EntryMode says how the card was read; required.
	EntryMode EntryMode
}

// Policy is what the engine needs to know about a terminal to decide its
// requests. A Directory supplies it, read for every request.
type Policy struct {
	TerminalID string
	// MerchantID is the merchant the terminal is bound to.
	MerchantID string
	StoreID    string
	// MerchantCurrency is the merchant's ISO 4217 currency; payments in any
	// other currency are declined with 13.
	MerchantCurrency string
	// MerchantMCC is the merchant category code (4 digits).
	MerchantMCC string
	// Location is the store's time zone, which sets the business date of
	// daily limits and settlement; nil means UTC.
	Location *time.Location
	// Suspended terminals are declined with 57.
	Suspended bool
	// CrossTerminalRefunds lets the terminal refund sales that other
	// terminals of its merchant took. Without it, such a refund is
	// declined with 57 (not permitted to terminal).
	CrossTerminalRefunds bool
	// PerTransactionLimit and DailyLimit cap amounts in minor units of the
	// merchant currency; exceeding either declines with 61.
	PerTransactionLimit, DailyLimit Limit
	// VelocityLimit is the most approvals of one card token on the terminal
	// within VelocityWindow; further attempts decline with 65. Zero limit or
	// window disables the check. Approvals are counted while the check is
	// enabled (and, after a restart, from the ledger); windows longer than
	// Options.Retention are shortened to it.
	VelocityLimit  uint32
	VelocityWindow time.Duration
	// AcceptedEntryModes lists the entry modes the terminal may accept;
	// empty accepts all. Others are declined with 12.
	AcceptedEntryModes []EntryMode
}

// Limit caps amounts in minor units of the merchant currency. The zero
// Limit is no limit; a set limit of zero forbids every payment.
type Limit struct {
	Set        bool
	MinorUnits int64
}

// LimitOf returns a limit of n minor units.
func LimitOf(n int64) Limit { return Limit{Set: true, MinorUnits: n} }

// allows reports whether amount is within the limit.
func (l Limit) allows(amount int64) bool { return !l.Set || amount <= l.MinorUnits }

// Directory supplies terminal policies. The server implements it from fleet
// and config data. Policy is called once per request, before the request
// enters the decision loop, from the caller's goroutine; it must be safe for
// concurrent use and should not block for long.
type Directory interface {
	// Policy returns the current policy of terminalID, or an error (such as
	// the fleet's "terminal not found") that the engine returns unchanged.
	Policy(terminalID string) (Policy, error)
}

// AuthorizeRequest asks to authorize a card payment.
type AuthorizeRequest struct {
	// TerminalID is the authenticated terminal making the request.
	TerminalID string
	// RequestID is the client's idempotency key (1-64 characters of
	// letters, digits, '-', '_', '.', ':').
	RequestID string
	// MerchantID is the merchant the terminal claims to be bound to.
	MerchantID string
	Amount     Money
	Card       Card
	// LocalTime is the terminal's clock; informational, not part of the
	// request's idempotency fingerprint.
	LocalTime time.Time
	// Capture is true for a sale and false for a pre-auth hold.
	Capture bool
}

// AuthorizeResult is the engine's answer to an AuthorizeRequest.
type AuthorizeResult struct {
	AuthorizationID string
	Decision        Decision
	ResponseCode    string
	// AuthCode is six characters of A-Z and 0-9 for approvals, else empty.
	AuthCode    string
	Message     string
	BatchNumber uint64
	// Replayed is true when this is the stored answer to an earlier
	// identical request.
	Replayed     bool
	DecisionTime time.Time
}

// ReverseRequest asks to cancel an authorization of the same terminal.
type ReverseRequest struct {
	TerminalID string
	// RequestID is the reversal's own idempotency key.
	RequestID string
	// OriginalRequestID is the request ID of the Authorize to cancel.
	OriginalRequestID string
	Reason            ReversalReason
}

// ReverseResult is the engine's answer to a ReverseRequest.
type ReverseResult struct {
	Status ReverseStatus
	// AuthorizationID of the original, when it exists.
	AuthorizationID string
	// ReversedAmount released by this reversal (zero unless Reversed). Its
	// currency is the original's.
	ReversedAmount Money
	Replayed       bool
}

// RefundRequest asks to refund part or all of an approved sale of the same
// merchant.
type RefundRequest struct {
	TerminalID      string
	RequestID       string
	AuthorizationID string
	Amount          Money
}

// RefundResult is the engine's answer to a RefundRequest.
type RefundResult struct {
	RefundID     string
	Decision     Decision
	ResponseCode string
	Message      string
	// RemainingRefundable is what can still be refunded on the sale after
	// this request (zero currency when the sale was not found).
	RemainingRefundable Money
	BatchNumber         uint64
	Replayed            bool
	DecisionTime        time.Time
}

// BatchTotals are the totals of one batch or of a settlement report. Amounts
// are in minor units of Currency.
type BatchTotals struct {
	Currency       string
	SaleCount      uint64
	SaleAmount     int64
	RefundCount    uint64
	RefundAmount   int64
	ReversalCount  uint64
	ReversalAmount int64
	PreauthCount   uint64
	PreauthAmount  int64
}

// Balances reports whether t and other agree on sale, refund and reversal
// counts and amounts (pre-auth holds are informational and not compared).
func (t BatchTotals) Balances(other BatchTotals) bool {
	return t.SaleCount == other.SaleCount && t.SaleAmount == other.SaleAmount &&
		t.RefundCount == other.RefundCount && t.RefundAmount == other.RefundAmount &&
		t.ReversalCount == other.ReversalCount && t.ReversalAmount == other.ReversalAmount
}

func (t *BatchTotals) add(o BatchTotals) {
	t.SaleCount += o.SaleCount
	t.SaleAmount += o.SaleAmount
	t.RefundCount += o.RefundCount
	t.RefundAmount += o.RefundAmount
	t.ReversalCount += o.ReversalCount
	t.ReversalAmount += o.ReversalAmount
	t.PreauthCount += o.PreauthCount
	t.PreauthAmount += o.PreauthAmount
}

// CloseBatchRequest asks to close the terminal's open batch.
type CloseBatchRequest struct {
	TerminalID string
	RequestID  string
	// BatchNumber is the batch the terminal believes is open.
	BatchNumber uint64
	// TerminalTotals are the terminal's own totals; their currency, when
	// given, must be the merchant's for the batch to balance.
	TerminalTotals BatchTotals
}

// CloseBatchResult is the engine's answer to a CloseBatchRequest.
type CloseBatchResult struct {
	BatchNumber     uint64
	ServerTotals    BatchTotals
	InBalance       bool
	NextBatchNumber uint64
	CloseTime       time.Time
	Replayed        bool
}

// Transaction is a recorded authorization (sale or pre-auth) or refund, as
// listed for operators.
type Transaction struct {
	// ID is the authorization_id or refund_id: unguessable, unique, and
	// in no particular order.
	ID string
	// Sequence is the transaction's ledger sequence number: transactions
	// are decided in this order.
	Sequence   uint64
	RequestID  string
	Kind       TxKind
	TerminalID string
	// MerchantID is the merchant the terminal was bound to.
	MerchantID string
	StoreID    string
	Amount     Money
	Decision   Decision
	Code       string
	AuthCode   string
	MaskedPAN  string
	EntryMode  EntryMode
	Batch      uint64
	// BusinessDate is the decision's date ("YYYY-MM-DD") in the store's time
	// zone.
	BusinessDate string
	DecisionTime time.Time
	// LocalTime is the terminal's clock as it reported it.
	LocalTime      time.Time
	Reversed       bool
	ReversalReason ReversalReason
	ReversalTime   time.Time
	// RefundedAmount is the sum refunded so far (sales), in Amount's
	// currency.
	RefundedAmount int64
	// OriginalID is, for refunds, the refunded sale's authorization_id.
	OriginalID string
	// ClaimedMerchantID is the merchant the terminal claimed when it was
	// not its binding (code 03).
	ClaimedMerchantID string
}

// TxFilter selects transactions in ListTransactions. Zero fields match all.
type TxFilter struct {
	TerminalID string
	MerchantID string
	// BatchNumber requires TerminalID.
	BatchNumber uint64
	Decision    Decision
	// Start is inclusive, End exclusive, on the decision time.
	Start, End time.Time
}

// BatchSummary describes one terminal batch in a settlement report.
type BatchSummary struct {
	TerminalID     string
	StoreID        string
	MerchantID     string
	Number         uint64
	State          BatchState
	ServerTotals   BatchTotals
	TerminalTotals BatchTotals
	OpenTime       time.Time
	CloseTime      time.Time
}

// Settlement is a merchant's settlement report for one business date.
type Settlement struct {
	MerchantID   string
	BusinessDate string
	// Totals over all transactions decided on the date.
	Totals BatchTotals
	// Batches holding transactions of the date, by terminal and number.
	Batches      []BatchSummary
	GenerateTime time.Time
}

// Options tune an Engine. Start from DefaultOptions.
type Options struct {
	// Retention is how long request IDs are honoured for replays and how
	// long tombstones and recent transactions stay in memory. At least 24h.
	Retention time.Duration
	// TxCacheTTL is how long a transaction stays in memory after it was
	// decided or last read; reversals and refunds of older ones read it from
	// disk.
	TxCacheTTL time.Duration
	// MaxEntries bounds the idempotency entries kept in memory. When more
	// are live, the oldest are dropped from memory early and looked up on
	// disk instead.
	MaxEntries int
	// MaxBatchOps bounds how many decisions one commit holds.
	MaxBatchOps int
	// MaxBatchBytes bounds the bytes one commit writes. It must stay below
	// what the store accepts in one transaction (15% of its memtable).
	MaxBatchBytes int
	// MaxBatchWrites bounds the keys one commit writes or deletes,
	// housekeeping's batch checkpoints and expiry deletes included. It must
	// stay well below the entries the store accepts in one transaction
	// (about 26,000 with 16 MiB memtables).
	MaxBatchWrites int
	// QueueLength is the capacity of the decision loop's input queue.
	QueueLength int
	// HousekeepingInterval is how often expired state is dropped.
	HousekeepingInterval time.Duration
	// Now is the clock; nil means time.Now. Decision times never go
	// backwards even when it does.
	Now func() time.Time

	// commitHook, when set (tests only), runs inside each commit after the
	// records are staged and before the commit is made durable; an error
	// aborts the commit.
	commitHook func() error
	// syncHook, when set (tests only), runs after each commit returned and
	// before its answers are released, as the tail of a slow fsync would; an
	// error fails the commit as a failed sync does (its records may or may
	// not be on disk, and nothing of it is acknowledged).
	syncHook func() error
	// commitWrites, when set (tests only), is told how many keys each
	// commit writes or deletes.
	commitWrites func(n int)
	// markHook, when set (tests only), runs before each commit's head is
	// written to the watermark.
	markHook func()
	// noCheckpoints, when set (tests only), never checkpoints open batches'
	// totals, as after a crash.
	noCheckpoints bool
	// filterCapacity, when set (tests only), is the number of request IDs
	// the request filter is sized for (see reqFilter).
	filterCapacity int
	// filterHook, when set (tests only), runs in the goroutine that builds
	// the request filter, in the store transaction it reads, before it
	// reads.
	filterHook func()
}

// DefaultOptions returns the production settings: 24h retention, one
// million idempotency entries in memory, and commits of up to 4096 decisions,
// 1 MiB or 10,000 keys.
func DefaultOptions() Options {
	return Options{
		Retention:            24 * time.Hour,
		TxCacheTTL:           15 * time.Minute,
		MaxEntries:           1 << 20,
		MaxBatchOps:          4096,
		MaxBatchBytes:        1 << 20,
		MaxBatchWrites:       10000,
		QueueLength:          8192,
		HousekeepingInterval: 10 * time.Second,
	}
}

// Validate reports the first unusable option.
func (o Options) Validate() error {
	switch {
	case o.Retention < 24*time.Hour:
		return fmt.Errorf("payment: Retention %v is below 24h", o.Retention)
	case o.TxCacheTTL <= 0:
		return errors.New("payment: TxCacheTTL must be positive")
	case o.MaxEntries < 1:
		return errors.New("payment: MaxEntries must be positive")
	case o.MaxBatchOps < 1:
		return errors.New("payment: MaxBatchOps must be positive")
	case o.MaxBatchBytes < 64<<10:
		return errors.New("payment: MaxBatchBytes must be at least 64 KiB")
	case o.MaxBatchWrites < 256:
		return errors.New("payment: MaxBatchWrites must be at least 256")
	case o.QueueLength < 1:
		return errors.New("payment: QueueLength must be positive")
	case o.HousekeepingInterval <= 0:
		return errors.New("payment: HousekeepingInterval must be positive")
	}
	return nil
}

// Errors of the engine. Declines are results, not errors: these report calls
// that could not be decided.
var (
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("payment: engine closed")
	// ErrUnavailable is returned once a commit has failed: the engine stops
	// deciding because its memory may hold effects that are not durable.
	// Reopening the engine (restarting the server) recovers from the ledger.
	ErrUnavailable = errors.New("payment: engine unavailable after a storage failure")
	// ErrRequestIDReused is returned when a Reverse or CloseBatch request ID
	// was already used for a different request (Authorize and Refund answer
	// this with response code 94 instead).
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

// BatchMismatchError says which batch is open when CloseBatch named another.
type BatchMismatchError struct {
	Requested, Open uint64
}

func (e *BatchMismatchError) Error() string {
	return fmt.Sprintf("payment: batch %d is not open (open batch is %d)", e.Requested, e.Open)
}

// Unwrap makes errors.Is(err, ErrBatchMismatch) hold.
func (e *BatchMismatchError) Unwrap() error { return ErrBatchMismatch }

// CommitStats describe the group-commit writer since Open.
type CommitStats struct {
	// Commits is the number of synced store commits.
	Commits uint64
	// Decisions is the number of decisions those commits made durable.
	Decisions uint64
	// MaxDecisions is the largest number of decisions in one commit.
	MaxDecisions uint64
}

func discardIfNil(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
