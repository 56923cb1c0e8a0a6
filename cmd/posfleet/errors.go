package main

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/posfleet/posfleet/server/store"
)

// codeText is the short, human name of each gRPC status code.
var codeText = map[codes.Code]string{
	codes.Canceled:           "canceled",
	codes.Unknown:            "server error",
	codes.InvalidArgument:    "invalid input",
	codes.DeadlineExceeded:   "no answer in time",
	codes.NotFound:           "not found",
	codes.AlreadyExists:      "already exists",
	codes.PermissionDenied:   "permission denied",
	codes.ResourceExhausted:  "limit reached",
	codes.FailedPrecondition: "not possible in the current state",
	codes.Aborted:            "conflict, try again",
	codes.OutOfRange:         "out of range",
	codes.Unimplemented:      "not supported by this server",
	codes.Internal:           "internal server error",
	codes.Unavailable:        "server unavailable",
	codes.DataLoss:           "data loss",
	codes.Unauthenticated:    "not authenticated",
}

// domainPrefix is the package name a server error message starts with
// ("configpush: rollout not found").
var domainPrefix = regexp.MustCompile(`^[a-z][a-z0-9]*: `)

// humanError explains err in words for a person at a terminal: a gRPC
// status becomes its short meaning, the server's message without its
// package prefix, the ErrorInfo reason and every field violation, then a
// hint where the cause is a common mistake (plaintext against TLS, no
// server, a wrong token, a data directory in use). Everything that came
// from the server is escaped with safeText.
func humanError(err error) string {
	if errors.Is(err, store.ErrInUse) {
		msg := err.Error()
		dir := msg[strings.LastIndex(msg, ": ")+2:] // store.Open wraps it as "ErrInUse: DIR"
		return fmt.Sprintf("another posfleet is using %s\nhint: stop the other server (or backup), or give this one its own --data-dir", safeText(dir))
	}
	st := innerStatus(err)
	if st == nil || st.Code() == codes.OK {
		return safeText(err.Error())
	}
	var b strings.Builder
	msg := domainPrefix.ReplaceAllString(st.Message(), "")
	fmt.Fprintf(&b, "%s: %s", codeText[st.Code()], safeText(msg))
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			fmt.Fprintf(&b, " (%s)", safeText(d.GetReason()))
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				fmt.Fprintf(&b, "\n  %s: %s", safeText(v.GetField()), safeText(v.GetDescription()))
			}
		}
	}
	if h := hint(st); h != "" {
		fmt.Fprintf(&b, "\nhint: %s", h)
	}
	return b.String()
}

// innerStatus returns the status of the gRPC error wrapped in err, nil if
// there is none. (status.FromError on a wrapped error returns a status
// whose message is the whole wrapped text, "rpc error: code = …" included.)
func innerStatus(err error) *status.Status {
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return se.GRPCStatus()
	}
	return nil
}

// hint names the likely cause of a failed connection or authentication.
func hint(st *status.Status) string {
	m := st.Message()
	switch st.Code() {
	case codes.Unavailable:
		switch {
		case strings.Contains(m, "first record does not look like a TLS handshake"):
			return "the server speaks plaintext: drop --tls and --tls-ca"
		case strings.Contains(m, "error reading server preface"), strings.Contains(m, "http2: frame too large"),
			strings.Contains(m, "connection reset by peer"):
			return "the server may speak TLS: use --tls-ca FILE (or --tls for a certificate from the system roots)"
		case strings.Contains(m, "certificate"), strings.Contains(m, "x509"):
			return "the server's certificate is not trusted: give its CA with --tls-ca FILE"
		case strings.Contains(m, "connection refused"), strings.Contains(m, "no such host"):
			return "no server answers at --target: is 'posfleet serve' running, and on which --listen address?"
		}
	case codes.Unauthenticated:
		return "check the token: --admin-token-file FILE (default ./posfleet-data/admin.token) or POSFLEET_ADMIN_TOKEN; a terminal's credential comes from 'posfleet terminal register'"
	case codes.DeadlineExceeded:
		return "the server did not answer within --timeout; is --target right?"
	}
	return ""
}
