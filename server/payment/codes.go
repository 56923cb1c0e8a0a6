package payment

// ResponseCode is one response code the engine answers with.
type ResponseCode struct {
	// Code is the two-digit ISO 8583 field 39 value, e.g. "51".
	Code string
	// Message is the human-readable text sent with the code.
	Message string
	// When says when the engine answers with the code.
	When string
}

// responseCodes is the one table of response codes: CodeMessage reads it,
// and the README's response-code table is generated from it.
var responseCodes = []ResponseCode{
	{CodeApproved, "approved", "approved; a refund or capture accepted"},
	{CodeInvalidMerchant, "invalid merchant", "merchant_id is not the merchant the terminal is bound to, or the MCC embedded in a 15-digit merchant ID is not the merchant's (raised as a `MERCHANT_MISMATCH` alert)"},
	{CodeDoNotHonour, "do not honour", "declined by the issuer (simulator test card `tok_test_decline`)"},
	{CodeInvalidTransaction, "invalid transaction", "the request ID was reversed before the original arrived; entry mode not accepted; a refund of anything but an approved, unreversed sale or captured pre-auth of the merchant; a capture of anything but an approved pre-auth that is unreversed, not yet captured and within its validity (7 days)"},
	{CodeInvalidAmount, "invalid amount", "amount not positive, above the 12-digit maximum or not in the merchant's currency; a refund in another currency or above what is left to refund; a capture in another currency or above the pre-auth's amount"},
	{CodeInvalidCard, "invalid card", "declined by the issuer (simulator test card `tok_test_invalid`)"},
	{CodeInsufficientFunds, "insufficient funds", "declined by the issuer (simulator test card `tok_test_nsf`)"},
	{CodeExpiredCard, "expired card", "declined by the issuer (simulator test card `tok_test_expired`)"},
	{CodeNotPermitted, "transaction not permitted to terminal", "the terminal is suspended, refunds another terminal's sale without the merchant's `allow_cross_terminal_refunds`, or captures another terminal's pre-auth"},
	{CodeExceedsAmountLimit, "exceeds amount limit", "above the per-transaction or daily limit of the effective config (a zero limit, or one set in another currency, refuses every payment)"},
	{CodeExceedsFrequency, "exceeds frequency limit", "too many approvals of the same card token on the terminal within the velocity window"},
	{CodeDuplicateTransmission, "duplicate transmission", "the request ID was used before with different content (Authorize, Refund, Capture)"},
	{CodeSystemError, "system error", "the issuer failed (simulator test card `tok_test_system_error`)"},
}

// codeMessages are the texts of responseCodes by code.
var codeMessages = func() map[string]string {
	m := make(map[string]string, len(responseCodes))
	for _, c := range responseCodes {
		m[c.Code] = c.Message
	}
	return m
}()

// ResponseCodes returns every response code the engine answers with, in
// code order.
func ResponseCodes() []ResponseCode {
	return append([]ResponseCode(nil), responseCodes...)
}

// IsResponseCode reports whether code is one the engine answers with.
func IsResponseCode(code string) bool {
	_, ok := codeMessages[code]
	return ok
}

// CodeMessage returns the human-readable text of a response code.
func CodeMessage(code string) string {
	if m, ok := codeMessages[code]; ok {
		return m
	}
	return "unknown response code"
}
