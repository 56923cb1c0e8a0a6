package server

import (
	"fmt"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/posfleet/posfleet/internal/iso4217"
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
