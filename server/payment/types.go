package payment

import (
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
	// TxKindCapture completes a pre-auth: it settles the captured amount
	// like a sale.
	TxKindCapture
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
	// RefundedAmount is the sum refunded so far (sales and captured
	// pre-auths), in Amount's currency.
	RefundedAmount int64
	// CapturedAmount is, for pre-auths, the amount their capture settled;
	// zero while not captured.
	CapturedAmount int64
	// OriginalID is, for refunds, the refunded authorization's
	// authorization_id; for captures, the captured pre-auth's.
	OriginalID string
	// ClaimedMerchantID is the merchant the terminal claimed when it was
	// not its binding (code 03).
	ClaimedMerchantID string
}

// TxFilter selects transactions in ListTransactions. Zero fields match all.
type TxFilter struct {
	TerminalID string
	MerchantID string
	// StoreID requires MerchantID (store IDs are a merchant's).
	StoreID string
	// ResponseCode is a two-digit code the engine answers with, e.g. "51".
	ResponseCode string
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
