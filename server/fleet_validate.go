package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/fleet"
	"github.com/posfleet/posfleet/server/operator"
)

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

var (
	mccFormat        = newCharFormat("0-9", 4, 4)
	countryFormat    = newCharFormat("A-Z", 2, 2)
	numericMIDFormat = newCharFormat("0-9", 15, 15)
	paramKeyFormat   = newCharFormat("A-Za-z0-9._-", 1, 64)
	componentFormat  = newCharFormat("!-~", 1, 32) // printable ASCII, no space
	tokenIDFormat    = newCharFormat("A-Za-z0-9_-", 1, 64)
)

func init() {
	errorTable = append(errorTable,
		errorMapping{fleet.ErrMerchantExists, codes.AlreadyExists, "MERCHANT_EXISTS"},
		errorMapping{fleet.ErrMerchantNotFound, codes.NotFound, "MERCHANT_NOT_FOUND"},
		errorMapping{fleet.ErrStoreExists, codes.AlreadyExists, "STORE_EXISTS"},
		errorMapping{fleet.ErrStoreNotFound, codes.NotFound, "STORE_NOT_FOUND"},
		errorMapping{fleet.ErrTerminalNotFound, codes.NotFound, "TERMINAL_NOT_FOUND"},
		errorMapping{fleet.ErrSerialInUse, codes.AlreadyExists, "SERIAL_IN_USE"},
		errorMapping{fleet.ErrEnrollmentInvalid, codes.PermissionDenied, "ENROLLMENT_INVALID"},
		errorMapping{fleet.ErrEnrollmentExpired, codes.FailedPrecondition, "ENROLLMENT_EXPIRED"},
		errorMapping{fleet.ErrEnrollmentUsed, codes.FailedPrecondition, "ENROLLMENT_USED"},
		errorMapping{fleet.ErrTerminalRetired, codes.FailedPrecondition, reasonRetired},
		errorMapping{fleet.ErrTerminalSuspended, codes.PermissionDenied, reasonSuspended},
		errorMapping{fleet.ErrBadCredential, codes.Unauthenticated, reasonCredentialInvalid},
		errorMapping{fleet.ErrRateLimited, codes.ResourceExhausted, reasonRateLimited},
		errorMapping{fleet.ErrBadPageToken, codes.InvalidArgument, "INVALID_PAGE_TOKEN"},
		errorMapping{fleet.ErrSameBinding, codes.FailedPrecondition, "ALREADY_BOUND"},
		errorMapping{fleet.ErrCommandNotFound, codes.NotFound, "COMMAND_NOT_FOUND"},
		errorMapping{fleet.ErrCommandNotOwned, codes.PermissionDenied, "COMMAND_NOT_OWNED"},
		errorMapping{fleet.ErrCommandExpired, codes.FailedPrecondition, "COMMAND_EXPIRED"},
		errorMapping{fleet.ErrCommandFinished, codes.FailedPrecondition, "COMMAND_ALREADY_ACKED"},
		errorMapping{operator.ErrTokenNotFound, codes.NotFound, "TOKEN_NOT_FOUND"},
		errorMapping{operator.ErrInvalidRole, codes.InvalidArgument, "INVALID_ROLE"},
	)
}

// fleetStatus converts a fleet or token store error into a status: field
// checks become InvalidArgument with a BadRequest, the rest go through the
// error table.
func (s *Server) fleetStatus(ctx context.Context, err error) error {
	var ie *fleet.InvalidError
	if errors.As(err, &ie) {
		var v violations
		v.add(ie.Field, "%s", ie.Reason)
		return v.err()
	}
	return toStatus(ctx, s.logger, err)
}

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
