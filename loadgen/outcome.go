package loadgen

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Class is the kind of an outcome.
type Class string

// Outcome classes.
const (
	// ClassOK is a call that succeeded (an approval, a served health check).
	ClassOK Class = "ok"
	// ClassDeclined is a business decline: a normal response carrying a
	// response code other than 00. Declines are not errors.
	ClassDeclined Class = "declined"
	// ClassError is a failed call: a gRPC status other than OK.
	ClassError Class = "error"
	// ClassDropped is work the generator could not send, such as an arrival
	// that found its terminal's queue full. Counted as an error.
	ClassDropped Class = "dropped"
)

// Outcome is the result of one call: a class and a code (the response code
// of a decline, the gRPC status code name of an error, a reason for a drop).
type Outcome struct {
	Class Class
	Code  string
}

// String returns "ok", "declined:05", "error:Unavailable" or "dropped:queue_full".
func (o Outcome) String() string {
	if o.Code == "" {
		return string(o.Class)
	}
	return string(o.Class) + ":" + o.Code
}

// IsError reports whether the outcome counts as an error (failed or dropped).
func (o Outcome) IsError() bool { return o.Class == ClassError || o.Class == ClassDropped }

// ParseOutcome is the inverse of Outcome.String.
func ParseOutcome(s string) Outcome {
	c, code, _ := strings.Cut(s, ":")
	return Outcome{Class: Class(c), Code: code}
}

// OK is the successful outcome.
func OK() Outcome { return Outcome{Class: ClassOK} }

// Declined is a business decline with an ISO 8583 style response code.
func Declined(responseCode string) Outcome {
	return Outcome{Class: ClassDeclined, Code: responseCode}
}

// Dropped is work the generator could not send, with a reason.
func Dropped(reason string) Outcome { return Outcome{Class: ClassDropped, Code: reason} }

// ErrorOutcome classifies a failed call by its gRPC status code; context
// errors map to DeadlineExceeded and Canceled. A nil error is OK.
func ErrorOutcome(err error) Outcome {
	if err == nil {
		return OK()
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return Outcome{Class: ClassError, Code: codes.DeadlineExceeded.String()}
	case errors.Is(err, context.Canceled):
		return Outcome{Class: ClassError, Code: codes.Canceled.String()}
	}
	return Outcome{Class: ClassError, Code: status.Code(err).String()}
}
