package fleet_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/fleet"
)

// A rate-limited registration says how long to wait, and waiting that long
// is enough: the refusal's RetryInfo is built from it.
func TestRegistrationRateLimitSaysWhenToRetry(t *testing.T) {
	tests := []struct {
		name  string
		spend func(e *env)                    // spends a budget
		retry func(e *env, code string) error // code: SN1's enrollment code
	}{
		{"serial", func(e *env) {
			for range e.opts.SerialAttempts {
				e.register("SN1", "WRONG-CODE-0000")
			}
		}, func(e *env, code string) error {
			_, err := e.register("SN1", code)
			return err
		}},
		{"peer", func(e *env) {
			for i := range e.opts.PeerFailures {
				e.register(fmt.Sprintf("SCAN-%d", i), "AAAA-BBBB-CCCC")
			}
		}, func(e *env, _ string) error {
			_, err := e.register("SCAN-X", "AAAA-BBBB-CCCC")
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.merchant("MID1", "s1")
			code := e.provision("SN1", "MID1", "s1").EnrollmentCode
			tt.spend(e)
			err := tt.retry(e, code)
			var rl *fleet.RateLimitError
			if !errors.As(err, &rl) || !errors.Is(err, fleet.ErrRateLimited) {
				t.Fatalf("got %v, want a *RateLimitError wrapping ErrRateLimited", err)
			}
			if rl.RetryAfter() <= 0 || rl.RetryAfter() > time.Minute {
				t.Fatalf("got RetryAfter %v, want within (0, 1m]", rl.RetryAfter())
			}
			e.clock.Advance(rl.RetryAfter())
			if err := tt.retry(e, code); errors.Is(err, fleet.ErrRateLimited) {
				t.Errorf("after waiting RetryAfter: got %v, want the limit lifted", err)
			}
		})
	}
}

func TestLimiterWait(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	l := fleet.NewLimiter(2, 1, 0) // one at once, then one per 500ms
	if got := l.Wait("a", t0); got != 0 {
		t.Errorf("unknown key: got %v, want 0", got)
	}
	l.Allow("a", t0)
	tests := []struct {
		at   time.Duration
		want time.Duration
	}{{0, 500 * time.Millisecond}, {200 * time.Millisecond, 300 * time.Millisecond}, {500 * time.Millisecond, 0}}
	for _, tt := range tests {
		if got := l.Wait("a", t0.Add(tt.at)); got != tt.want {
			t.Errorf("at +%v: got %v, want %v", tt.at, got, tt.want)
		}
	}
	if l.Wait("a", t0); !l.Allow("a", t0.Add(500*time.Millisecond)) {
		t.Error("Wait took a token: got refused, want allowed")
	}
}
