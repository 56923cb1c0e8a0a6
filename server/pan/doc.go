// Package pan finds full card numbers (primary account numbers, PANs) in
// text, so that the server can refuse them wherever a client or an operator
// writes text and redact them from every log line. It is the one card-number
// detector of posfleet: request validation, config validation, the payment
// engine and the log handler all use it.
//
// # What is a card number
//
// Text is first normalized ([Normalize]): Unicode NFKC, invisible format
// characters and combining marks dropped, every decimal digit made ASCII.
// Then a card number is, among the digits of the normalized text:
//
//   - a run of 13 to 19 consecutive digits passing the Luhn check (and not
//     a timestamp, see below), wherever it stands ("4111111111111111",
//     "tok_4111111111111111", "note:4111111111111111:end"); or
//   - digit groups in the layout card numbers are printed in, joined by one
//     to three separators (space, '-', '.', '_', '/', in any mix), whose
//     digits together pass the Luhn check: groups of four with a last group
//     of one to four digits ("4111 1111 1111 1111", "4111.1111.1111.1111",
//     "tok_4111_1111_1111_1111", "4222-2222-2222-2", 19 digits as
//     4-4-4-4-3), or 4-6-5 and 4-6-4 ("3782-822463-10005").
//
// Runs of more than 19 digits, and digits grouped in other ways
// ("41-11-11-…"), are not card numbers: the check catches the ways people
// and programs print card numbers by mistake, not deliberate encodings.
//
// A canonical UUID (8-4-4-4-12 hex digits, not run together with other
// letters or digits) is never a card number, though about 1 random UUID in
// 2,700 has all-digit segments that line up as a Luhn-valid 4-4-4-1 number.
//
// Nor is a Unix timestamp: clients build request IDs, markers and log
// references from timestamps, and a 19-digit nanosecond timestamp passes the
// Luhn check one time in ten. A run of 13, 16 or 19 digits starting with 1,
// 20 or 21 — a Unix time in milliseconds, microseconds or nanoseconds from
// 2001-09-09 to 2039-09-18 — is not a card number. This gives nothing away:
// no card scheme issues 13-, 16- or 19-digit numbers with those leading
// digits (13-digit Visa numbers start with 4, Mastercard's 2-series and Mir
// start at 22, airline UATP numbers have 15 digits). The window must be
// widened with care before 2039: 22 starts Mir and Mastercard.
//
// # Usage
//
// Refuse a field when [Contains] finds a card number in it, without echoing
// the value, and build every logger on [NewHandler] so that no log line
// carries one (see the examples).
package pan
