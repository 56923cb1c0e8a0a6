package server

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/posfleet/posfleet/internal/iso4217"
	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/pan"
	"github.com/posfleet/posfleet/server/payment"
)

// violations collects bad-input findings for one request; err turns them into
// an InvalidArgument status with a google.rpc.BadRequest detail.
type violations struct {
	list []*errdetails.BadRequest_FieldViolation
}

// add records that field is invalid, with a reason in plain words.
func (v *violations) add(field, format string, args ...any) {
	v.list = append(v.list, &errdetails.BadRequest_FieldViolation{
		Field:       field,
		Description: fmt.Sprintf(format, args...),
	})
}

// required records a violation when value is empty.
func (v *violations) required(field, value string) bool {
	if value == "" {
		v.add(field, "is required")
		return false
	}
	return true
}

// maxLen records a violation when value is longer than n characters or is not
// valid UTF-8.
func (v *violations) maxLen(field, value string, n int) bool {
	switch {
	case !utf8.ValidString(value):
		v.add(field, "must be valid UTF-8")
		return false
	case utf8.RuneCountInString(value) > n:
		v.add(field, "must be at most %d characters", n)
		return false
	}
	return true
}

// matcher is an input format: a *regexp.Regexp or a *charFormat.
type matcher interface{ MatchString(s string) bool }

// match records a violation when value does not match re; what says what is
// expected, e.g. "1-15 letters and digits".
func (v *violations) match(field, value string, re matcher, what string) bool {
	if !re.MatchString(value) {
		v.add(field, "must be %s", what)
		return false
	}
	return true
}

// err returns nil when nothing was recorded, else an InvalidArgument status
// listing every violation.
func (v *violations) err() error {
	if len(v.list) == 0 {
		return nil
	}
	msg := "invalid request: " + v.list[0].Field + " " + v.list[0].Description
	if len(v.list) > 1 {
		msg += fmt.Sprintf(" (and %d more)", len(v.list)-1)
	}
	st := status.New(codes.InvalidArgument, msg)
	if d, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: v.list}); err == nil {
		return d.Err()
	}
	return st.Err()
}

// Shared input formats of the protocol.
var (
	merchantIDFormat = newCharFormat("A-Za-z0-9", 1, 15)
	storeIDFormat    = newCharFormat("A-Za-z0-9_-", 1, 32)
	terminalIDFormat = newCharFormat("A-Z0-9", 8, 8)
	requestIDFormat  = newCharFormat("A-Za-z0-9._:-", 1, 64)
	currencyFormat   = currencyCode{}
	serialFormat     = newCharFormat("!-~", 1, 64) // printable ASCII, no space
)

// currencyCode matches the upper-case ISO 4217 code of a currency that is
// legal tender today: "XYZ", "XXX" or "nzd" are refused everywhere a
// currency is input (merchants, config limits, payment amounts).
type currencyCode struct{}

// MatchString reports whether s is a real currency code.
func (currencyCode) MatchString(s string) bool { return iso4217.Valid(s) }

// charFormat is the format ^[chars]{min,max}$ that most identifiers of the
// protocol share, checked with a table instead of a regular expression:
// these checks run on every payment request.
type charFormat struct {
	allowed  [256]bool
	min, max int
}

// newCharFormat returns the format of strings of min to max bytes from
// chars, a character class body of single ASCII characters and ranges
// ("A-Za-z0-9._-"; a '-' at the end stands for itself).
func newCharFormat(chars string, min, max int) *charFormat {
	f := &charFormat{min: min, max: max}
	for i := 0; i < len(chars); i++ {
		lo, hi := chars[i], chars[i]
		if i+2 < len(chars) && chars[i+1] == '-' {
			hi = chars[i+2]
			i += 2
		}
		if lo > hi || hi >= utf8.RuneSelf {
			panic(fmt.Sprintf("server: bad character class %q", chars))
		}
		for c := int(lo); c <= int(hi); c++ {
			f.allowed[c] = true
		}
	}
	return f
}

// MatchString reports whether s has the format.
func (f *charFormat) MatchString(s string) bool {
	if len(s) < f.min || len(s) > f.max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !f.allowed[s[i]] {
			return false
		}
	}
	return true
}

// Page sizes of List RPCs.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// pageSize validates and defaults a List request's page_size.
func (v *violations) pageSize(field string, n int32) int {
	switch {
	case n < 0:
		v.add(field, "must not be negative")
		return 0
	case n == 0:
		return defaultPageSize
	case n > maxPageSize:
		return maxPageSize
	}
	return int(n)
}

// Input limits of the fleet RPCs.
const (
	maxNameLen      = 128 // legal, display and store names
	maxLabelLen     = 64
	maxAddressLen   = 128
	maxDeviceLen    = 64
	maxReasonLen    = 256
	maxFaults       = 32
	maxParams       = 16
	maxParamValue   = 256
	maxCodeLen      = 32
	maxCommandIDLen = 64
	maxTimeZoneLen  = 64
)

// Input formats of the fleet's and admin tokens' fields.
var (
	mccFormat        = newCharFormat("0-9", 4, 4)
	countryFormat    = newCharFormat("A-Z", 2, 2)
	numericMIDFormat = newCharFormat("0-9", 15, 15)
	paramKeyFormat   = newCharFormat("A-Za-z0-9._-", 1, 64)
	componentFormat  = newCharFormat("!-~", 1, 32) // printable ASCII, no space
	tokenIDFormat    = newCharFormat("A-Za-z0-9_-", 1, 64)
)

// optional checks the length of an optional text field.
func (v *violations) optional(field, value string, n int) {
	v.maxLen(field, value, n)
}

// text checks a required text field of at most n characters.
func (v *violations) text(field, value string, n int) {
	if v.required(field, value) {
		v.maxLen(field, value, n)
	}
}

// merchantID checks a required merchant ID.
func (v *violations) merchantID(field, id string) {
	if v.required(field, id) {
		v.match(field, id, merchantIDFormat, "1-15 letters and digits")
	}
}

// storeID checks a required store ID.
func (v *violations) storeID(field, id string) {
	if v.required(field, id) {
		v.match(field, id, storeIDFormat, "1-32 letters, digits, '-' or '_'")
	}
}

// terminalID checks a required terminal ID.
func (v *violations) terminalID(field, id string) {
	if v.required(field, id) {
		v.match(field, id, terminalIDFormat, "8 upper-case letters and digits")
	}
}

// serial checks a required serial number.
func (v *violations) serial(field, sn string) {
	if v.required(field, sn) {
		v.match(field, sn, serialFormat, "1-64 printable ASCII characters without spaces")
	}
}

// address checks an optional address.
func (v *violations) address(field string, a *pb.Address) {
	if a == nil {
		return
	}
	v.optional(field+".line1", a.GetLine1(), maxAddressLen)
	v.optional(field+".line2", a.GetLine2(), maxAddressLen)
	v.optional(field+".city", a.GetCity(), maxAddressLen)
	v.optional(field+".region", a.GetRegion(), maxAddressLen)
	v.optional(field+".postal_code", a.GetPostalCode(), 32)
	if c := a.GetCountry(); c != "" {
		v.match(field+".country", c, countryFormat, "an ISO 3166-1 alpha-2 code such as \"NZ\"")
	}
}

// mccForMID checks that a 15-digit UnionPay-style merchant ID embeds mcc
// (acquirer 3 + region 4 + MCC 4 + sequence 4).
func (v *violations) mccForMID(field, mid, mcc string) {
	if numericMIDFormat.MatchString(mid) && mccFormat.MatchString(mcc) && mid[7:11] != mcc {
		v.add(field, "must equal the MCC embedded in the 15-digit merchant ID (%s)", mid[7:11])
	}
}

// timeZone checks an optional IANA time zone name.
func (v *violations) timeZone(field, tz string) {
	if tz == "" || !v.maxLen(field, tz, maxTimeZoneLen) {
		return
	}
	if _, err := time.LoadLocation(tz); err != nil || tz == "Local" {
		v.add(field, "must be an IANA time zone such as \"Pacific/Auckland\"")
	}
}

// duration checks an optional duration against [lo, hi] and returns it (0
// when unset).
func (v *violations) duration(field string, d *durationpb.Duration, lo, hi time.Duration) time.Duration {
	if d == nil {
		return 0
	}
	if err := d.CheckValid(); err != nil {
		v.add(field, "must be a valid duration")
		return 0
	}
	x := d.AsDuration()
	if x < lo || x > hi {
		v.add(field, "must be between %s and %s", lo, hi)
		return 0
	}
	return x
}

// Timestamps are accepted from minTime to before maxTime: times are kept
// as Unix nanoseconds, which reach only from 1677 to 2262, and nothing a
// terminal or an operator means lies outside this range.
var (
	minTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// timestamp checks an optional timestamp and returns it (zero when unset).
func (v *violations) timestamp(field string, t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	if err := t.CheckValid(); err != nil {
		v.add(field, "must be a valid timestamp")
		return time.Time{}
	}
	at := t.AsTime()
	if at.Before(minTime) || !at.Before(maxTime) {
		v.add(field, "must be from 1970-01-01 to before 2200-01-01 (UTC)")
		return time.Time{}
	}
	return at
}

// enum checks that value is a known, non-zero number of an enum.
func (v *violations) enum(field string, value int32, names map[int32]string, allowZero bool) bool {
	if _, ok := names[value]; !ok || (value == 0 && !allowZero) {
		if value == 0 {
			v.add(field, "is required")
		} else {
			v.add(field, "must be a known value (got %d)", value)
		}
		return false
	}
	return true
}

func fieldAt(field string, i int) string { return fmt.Sprintf("%s[%d]", field, i) }

// transactionIDFormat matches authorization and refund IDs.
var transactionIDFormat = newCharFormat("A-Za-z0-9", 1, 64)

// requestID checks a required idempotency key.
func (v *violations) requestID(field, id string) {
	if v.required(field, id) && v.match(field, id, requestIDFormat, "1-64 letters, digits, '-', '_', '.' or ':'") &&
		pan.Contains(id) {
		v.add(field, "%s", pan.Reason)
	}
}

// money checks a required amount and returns it; the amount's sign is the
// engine's business (a decline with 13), its currency code is input format.
func (v *violations) money(field string, m *pb.Money) payment.Money {
	if m == nil {
		v.add(field, "is required")
		return payment.Money{}
	}
	// The field name is built only for a violation: this runs on every
	// payment.
	switch cur := m.GetCurrency(); {
	case cur == "":
		v.add(field+".currency", "is required")
	case !currencyFormat.MatchString(cur):
		v.add(field+".currency", "must be an ISO 4217 code such as \"NZD\"")
	}
	return payment.Money{MinorUnits: m.GetMinorUnits(), Currency: m.GetCurrency()}
}

// card checks a card: a token, never a card number.
func (v *violations) card(field string, c *pb.Card) payment.Card {
	if c == nil {
		v.add(field, "is required")
		return payment.Card{}
	}
	card := payment.Card{Token: c.GetToken(), MaskedPAN: c.GetMaskedPan(), EntryMode: payment.EntryMode(c.GetEntryMode())}
	for _, e := range payment.CheckCard(card) {
		v.add(field+strings.TrimPrefix(e.Field, "card"), "%s", e.Reason)
	}
	return card
}

// totals checks a terminal's batch totals: required, amounts not negative
// and in one currency.
func (v *violations) totals(field string, t *pb.BatchTotals) payment.BatchTotals {
	if t == nil {
		v.add(field, "is required")
		return payment.BatchTotals{}
	}
	out := payment.BatchTotals{
		SaleCount: t.GetSaleCount(), RefundCount: t.GetRefundCount(),
		ReversalCount: t.GetReversalCount(), PreauthCount: t.GetPreauthCount(),
	}
	for _, a := range []struct {
		name string
		m    *pb.Money
		into *int64
	}{
		{"sale_amount", t.GetSaleAmount(), &out.SaleAmount},
		{"refund_amount", t.GetRefundAmount(), &out.RefundAmount},
		{"reversal_amount", t.GetReversalAmount(), &out.ReversalAmount},
		{"preauth_amount", t.GetPreauthAmount(), &out.PreauthAmount},
	} {
		if a.m == nil {
			continue
		}
		f := field + "." + a.name
		*a.into = a.m.GetMinorUnits()
		if a.m.GetMinorUnits() < 0 {
			v.add(f+".minor_units", "must not be negative")
		}
		c := a.m.GetCurrency()
		switch {
		case c == "":
		case !currencyFormat.MatchString(c):
			v.add(f+".currency", "must be an ISO 4217 code such as \"NZD\"")
		case out.Currency != "" && c != out.Currency:
			v.add(f+".currency", "must equal the other amounts' currency (%s)", out.Currency)
		default:
			out.Currency = c
		}
	}
	return out
}

var reRolloutID = regexp.MustCompile(`^ro-[1-9][0-9]{0,19}$`)

// rolloutID checks a required rollout ID.
func (v *violations) rolloutID(field, id string) {
	if v.required(field, id) {
		v.match(field, id, reRolloutID, "a rollout ID such as \"ro-42\"")
	}
}
