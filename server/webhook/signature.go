package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Header names of a delivery.
const (
	// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256>".
	SignatureHeader = "Posfleet-Signature"
	// EventIDHeader carries the event's stable ID ("evt_..."), the same on
	// every attempt, for de-duplication.
	EventIDHeader = "Posfleet-Event-Id"
	// EventTypeHeader carries the event's name, e.g. "merchant_mismatch".
	EventTypeHeader = "Posfleet-Event-Type"
	// AttemptHeader carries the attempt number, from 1.
	AttemptHeader = "Posfleet-Delivery-Attempt"
)

// DefaultTolerance is the age of a signature timestamp that Verify accepts
// when given no tolerance.
const DefaultTolerance = 5 * time.Minute

// Signature verification errors.
var (
	// ErrSignatureHeader: the header is missing or not of the form
	// "t=<unix>,v1=<hex>".
	ErrSignatureHeader = errors.New("webhook: malformed signature header")
	// ErrSignatureMismatch: no v1 signature matches the body and secret.
	ErrSignatureMismatch = errors.New("webhook: signature does not match")
	// ErrSignatureExpired: the timestamp is outside the tolerance (a replay
	// or a badly wrong clock).
	ErrSignatureExpired = errors.New("webhook: signature timestamp outside tolerance")
)

// Sign returns the Posfleet-Signature header value for body sent at t:
// "t=<unix>,v1=<hex HMAC-SHA256 of "<unix>.<body>" keyed with secret>".
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a delivery as its receiver gets it: header is the
// Posfleet-Signature value, body the raw request body (before any JSON
// decoding), secret the endpoint's signing secret. It returns nil when one
// v1 signature matches and the timestamp is within tolerance of now
// (DefaultTolerance when tolerance is zero), else ErrSignatureHeader,
// ErrSignatureMismatch or ErrSignatureExpired. Signatures are compared in
// constant time.
func Verify(secret, header string, body []byte, tolerance time.Duration, now time.Time) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrSignatureHeader
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			b, err := hex.DecodeString(v)
			if err != nil || len(b) != sha256.Size {
				return ErrSignatureHeader
			}
			sigs = append(sigs, b)
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrSignatureHeader
	}
	want := mac(secret, ts, body)
	ok := false
	for _, s := range sigs {
		ok = hmac.Equal(s, want) || ok
	}
	if !ok {
		return ErrSignatureMismatch
	}
	if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return ErrSignatureExpired
	}
	return nil
}
