// Package payment is posfleet's authorization engine: it authorizes card
// payments for terminals, reverses and refunds them, closes terminal
// batches, and answers operators' transaction listings and settlement
// reports. It has no transport code; the server maps its results and errors
// to the protocol.
//
// # Usage
//
// [Open] starts the engine on a store, the audit trail and a [Directory];
// [Engine.Authorize], [Engine.Reverse], [Engine.Refund],
// [Engine.CloseBatch], [Engine.Capture] and [Engine.OpenBatch] answer the
// terminals. Declines are results, not
// errors: an error means a malformed request (*[ValidationError]), an
// unknown terminal, or an engine that could not decide ([ErrUnavailable],
// [ErrClosed], context errors). The package example approves a sale,
// declines a test card and replays the sale.
//
// A [Directory] supplies each terminal's [Policy]: its merchant binding,
// currency and MCC, store time zone, suspension, limits, velocity rule and
// accepted entry modes.
//
// # Decision loop and group commit
//
// One goroutine, the decision loop, owns all in-memory state — idempotency
// entries, tombstones, velocity windows, daily totals, open batches and
// recent transactions — and decides requests one at a time in arrival
// order, without locks. Decisions go to the group-commit writer: while one
// synced store commit is in flight, the loop keeps deciding and gathers its
// decisions into the next commit, which the writer writes in one synced
// transaction (thousands of records per fsync) as soon as the previous one
// returned. A request's answer is released only after the commit holding its
// decision returned successfully; a replay waits for the commit of the
// answer it replays.
//
// Each request is decided in three steps: the loop reads a view of the
// terminal's state (its idempotency entry, tombstone, day's approvals, card
// velocity, the transaction a Reverse or Refund names, the open batch), a
// pure function turns the request, the terminal's policy and the view into
// an outcome and its effects, and the loop applies the effects to memory
// and stages their records in the commit. The views document their
// contract: nothing changes the terminal's state between reading the view
// and applying the outcome.
//
// If a commit fails, its requests get [ErrUnavailable] and the engine stops
// deciding: its memory may hold effects of the failed commit (a daily total,
// a velocity count, a consumed tombstone) that are not on disk, and deciding
// on would approve or decline against them. Every later request fails with
// ErrUnavailable (the server answers Unavailable) until the engine is
// reopened, which rebuilds the state from what is durable. [Engine.Stopped]
// tells the owner when that happens, so that it can open a fresh engine on
// the same store once the store answers and hand requests to it (the server
// does this by itself). Clients retry with the same request ID and get the
// durable answer, or a fresh decision when the failed commit left nothing
// behind.
//
// # Idempotency
//
// Request IDs are scoped to the terminal, and one namespace is shared by
// Authorize, Reverse, Refund, CloseBatch and Capture. Repeating a request with the
// same ID and the same content returns the stored answer with Replayed set,
// also after a restart; a duplicate that arrives while the original is still
// waiting for its commit waits with it and gets the same answer, so nothing
// is ever decided twice. The content fingerprint covers every field except
// the terminal's local time. The same ID with different content is declined
// with 94 (Authorize, Refund, Capture: their answers carry a code) or fails
// with [ErrRequestIDReused] (Reverse, CloseBatch: theirs do not); either
// way the first answer stands. Request IDs are honoured for Options.Retention (at least 24
// hours); older idempotency records are dropped from memory and disk. Those
// in memory are dropped by housekeeping, so a request ID is honoured for up
// to Options.HousekeepingInterval longer while it stays in memory, but not
// after a restart or once it has left memory early. When
// more than Options.MaxEntries are live, the oldest leave memory early and
// are looked up on disk instead, with point lookups: every decision writes a
// record under its request ID (the entry itself for Reverse and CloseBatch,
// an index to its transaction for Authorize and Refund). These records and
// tombstones carry an expiry an hour past the retention period, so the
// store drops them on its own in compaction, including those that left
// memory early; the engine still ignores any record older than the
// retention period.
//
// # Decisions
//
// Authorize checks, in this order: an idempotency entry (replay, or 94); a
// tombstone left by an earlier reversal of this request ID (12); suspension
// (57); the claimed merchant against the terminal's binding, and the MCC
// embedded in a 15-digit numeric merchant ID (digits 8-11) against the
// merchant's MCC (03, with a merchant-mismatch audit alert; a claimed
// merchant other than the binding raises the alert also when an earlier
// check declined the request, e.g. 57 or 94); amount positive,
// at most [MaxAmount] and in the merchant's currency (13); entry mode
// accepted (12); per-transaction limit (61; a limit of zero forbids every
// payment, and the server's directory turns a configured limit in another
// currency than the merchant's into a zero limit, failing closed, with a
// warning logged once per terminal and config version); daily limit (the
// same) — approved sales and
// pre-auths of the business date in the store's time zone, less reversals
// (61); velocity — approvals of the same card token on the terminal within
// the window, reversed ones included (65); and finally the issuer simulator.
// Approvals get a six-character code of A-Z and 0-9. Every decision,
// declines included, is recorded in the ledger with an authorization ID.
//
// Reverse cancels a live approval of the terminal's open batch
// (ReverseStatusReversed); a second reversal finds it reversed
// (AlreadyReversed); a declined or refunded original, or one in a closed
// batch, is NotReversible; an unknown original gets OriginalNotFound and a
// tombstone so that the original is declined with 12 if it arrives later.
//
// Refund needs an approved, unreversed, captured sale of the same merchant
// (else 12), the sale's currency and at most the captured amount less
// earlier refunds (else 13); a suspended terminal gets 57, and so does a
// terminal refunding another terminal's sale unless the merchant allows
// refunds across its terminals (Policy.CrossTerminalRefunds). CloseBatch
// compares the terminal's totals with the server's, closes the batch (in or
// out of balance, audited) and opens the next one.
//
// Capture completes a pre-auth: see capture.go for its rules (12, 13, 57
// and 94 as for Refund; a tombstone declines it as it does Authorize).
// OpenBatch reads the open batch through the decision loop.
//
// # Issuer simulator test cards
//
// Tokens starting with "tok_test_" select test cards. These are declined;
// every other token is approved by the simulated issuer (the engine's own
// checks still apply). A token matches exactly or followed by "_" and any
// suffix, e.g. "tok_test_nsf_0042", so that clients can vary tokens.
// [TestCardCode] gives a token's code; the README's test-card table is
// generated from the simulator's table.
//
// # Response codes
//
// [ResponseCodes] lists every response code the engine answers with, its
// message and when it is answered; [CodeMessage] gives a code's message.
// The README's response-code table is generated from it.
//
// # Card data
//
// No card secret is accepted: a token, masked PAN or request ID that is or
// contains a full card number, as the pan package reads it (13-19 digits
// passing the Luhn check, raw or printed in groups with any separator, in
// any Unicode digit form; request IDs may hold Unix timestamps), is refused
// with a [ValidationError] before anything is stored or logged. The engine
// keeps a digest of the token for velocity limits and the masked PAN for
// reports.
//
// # Storage
//
// An Authorize or Refund decision writes two records: the transaction,
// under its terminal's ledger, holding the request's fingerprint and answer
// (so it is also the idempotency record), rewritten when the sale is
// reversed or refunded; and a small request index from the request ID to
// it, for lookups of entries no longer in memory. Each commit adds one
// chunk record listing the
// transactions it created, which orders the ledger globally. Reverse and
// CloseBatch answers, tombstones and batches have records of their own; an
// open batch's totals are checkpointed (when it opens or closes, when a
// reversal changes it, and every HousekeepingInterval) and completed from
// the terminal's later transactions. See keys.go for the key schema.
//
// Integrity: the chunks form a hash chain, every commit writes the ledger
// head, and the writer records the head in the store's watermark file
// before it releases a commit's answers. Open checks them and refuses a
// damaged or incomplete ledger with [ErrCorrupt] rather than decide against
// it; [Verify] checks a whole ledger offline. Authorization and refund IDs
// are the AES encryption, under a per-database key, of a per-start random
// epoch and the sequence number: unguessable, and never reused even when
// the ledger's sequence goes back. See integrity.go and
// docs/storage-faults.md.
//
// Memory holds, per terminal, the idempotency entries of the retention
// period (bounded by Options.MaxEntries, beyond which the oldest are looked
// up on disk), the open batch, daily totals and, where a velocity limit is
// configured, approval times; transactions stay in memory for
// Options.TxCacheTTL after they were decided or read.
//
// Open reads no terminal's state and no idempotency entry, so start-up
// takes the same time and memory whatever the ledger and the retention
// window hold: it checks the ledger head against the watermark and the
// chain of the newest commit chunks (32,768 transactions, each of
// which must be in its terminal's ledger), and loads which terminals
// transacted for each merchant. A terminal's open batch, daily totals and
// velocity windows are read on its first request: its batch checkpoint
// plus its ledger since the older of the checkpoint and the start of the
// retention period (at least 26 hours, covering every time zone's business
// day). Idempotency entries and tombstones of before Open are looked up on
// disk with point reads, as are those that left memory early; a Bloom
// filter over the request IDs on disk, built from their keys after Open,
// answers the lookups of new request IDs without them (see filter.go). A store
// written before every idempotency record had an expiry reads them all
// once, at its first Open, to give them one. Transactions older than the
// retention period are read from disk when
// a refund names them. Velocity windows longer than the retention period
// are shortened to it.
package payment
