package webhook_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/webhook"
)

func TestVerify(t *testing.T) {
	const secret = "whsec_test"
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"id":"evt_1","type":"disk_low"}`)
	good := webhook.Sign(secret, now, body)
	other := webhook.Sign("whsec_other", now, body)
	for _, tc := range []struct {
		name   string
		secret string
		header string
		body   []byte
		at     time.Time
		want   error
	}{
		{"valid", secret, good, body, now, nil},
		{"valid within tolerance", secret, good, body, now.Add(4 * time.Minute), nil},
		{"tampered body", secret, good, []byte(`{"id":"evt_1","type":"disk_lower"}`), now, webhook.ErrSignatureMismatch},
		{"wrong secret", "whsec_wrong", good, body, now, webhook.ErrSignatureMismatch},
		{"old timestamp", secret, good, body, now.Add(10 * time.Minute), webhook.ErrSignatureExpired},
		{"future timestamp", secret, good, body, now.Add(-10 * time.Minute), webhook.ErrSignatureExpired},
		{"timestamp changed", secret, strings.Replace(good, "t=1800000000", "t=1800000001", 1), body, now, webhook.ErrSignatureMismatch},
		{"one of two signatures", secret, other + "," + good[strings.Index(good, "v1="):], body, now, nil},
		{"empty", secret, "", body, now, webhook.ErrSignatureHeader},
		{"no v1", secret, "t=1800000000", body, now, webhook.ErrSignatureHeader},
		{"bad hex", secret, "t=1800000000,v1=zz", body, now, webhook.ErrSignatureHeader},
		{"short mac", secret, "t=1800000000,v1=abcd", body, now, webhook.ErrSignatureHeader},
		{"bad t", secret, "t=soon," + good[strings.Index(good, "v1="):], body, now, webhook.ErrSignatureHeader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := webhook.Verify(tc.secret, tc.header, tc.body, 0, tc.at); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// Example shows a receiver checking a delivery: the raw body and the
// Posfleet-Signature header, with the secret shown at create.
func ExampleVerify() {
	secret := "whsec_4Q8vV0k2Xn9J3p1bLr7tHc5yZu6mEa0s"
	body := []byte(`{"id":"evt_1764766800000001","type":"merchant_mismatch"}`)
	sentAt := time.Unix(1764766800, 0)
	header := webhook.Sign(secret, sentAt, body) // what the server sends

	// In the receiver's handler: header = r.Header.Get("Posfleet-Signature").
	fmt.Println(webhook.Verify(secret, header, body, 5*time.Minute, sentAt.Add(time.Second)))
	fmt.Println(webhook.Verify(secret, header, []byte(`{"id":"evt_1","type":"disk_low"}`), 5*time.Minute, sentAt))
	fmt.Println(webhook.Verify(secret, header, body, 5*time.Minute, sentAt.Add(time.Hour)))
	// Output:
	// <nil>
	// webhook: signature does not match
	// webhook: signature timestamp outside tolerance
}
