package webhook_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/webhook"
)

// FuzzVerify: Verify never panics on any header, accepts what Sign made
// for the same body, and refuses it for any other body.
func FuzzVerify(f *testing.F) {
	f.Add("whsec_x", "t=1800000000,v1=00", []byte(`{"id":"evt_1"}`), int64(1_800_000_000))
	f.Add("", "t=,v1=", []byte{}, int64(0))
	f.Add("k", "v1=zz,t=-1,,=", []byte("x"), int64(-5))
	f.Fuzz(func(t *testing.T, secret, header string, body []byte, unix int64) {
		now := time.Unix(unix, 0)
		_ = webhook.Verify(secret, header, body, 0, now) // must not panic
		sig := webhook.Sign(secret, now, body)
		if err := webhook.Verify(secret, sig, body, time.Minute, now); err != nil {
			t.Fatalf("Verify(Sign(body)) = %v, want nil", err)
		}
		other := append(bytes.Clone(body), 'x')
		if err := webhook.Verify(secret, sig, other, time.Minute, now); !errors.Is(err, webhook.ErrSignatureMismatch) {
			t.Fatalf("Verify of another body = %v, want ErrSignatureMismatch", err)
		}
	})
}
