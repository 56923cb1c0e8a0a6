package fleet_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/fleet"
)

func TestLimiter(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := fleet.NewLimiter(0.5, 3, 0) // burst 3, one token per 2s
	var got []bool
	for range 4 {
		got = append(got, l.Allow("a", t0))
	}
	if fmt.Sprint(got) != "[true true true false]" {
		t.Fatalf("burst of 4 = %v, want three allowed", got)
	}
	if !l.Exhausted("a", t0) || l.Exhausted("b", t0) {
		t.Error("Exhausted: want a exhausted and unknown b not")
	}
	if !l.Allow("b", t0) {
		t.Error("another key shares a's bucket")
	}
	if l.Allow("a", t0.Add(time.Second)) {
		t.Error("half a token was enough")
	}
	if !l.Allow("a", t0.Add(2*time.Second)) {
		t.Error("no token after the refill period")
	}
	// An hour refills far more than the burst, but the bucket holds only
	// the burst: three calls pass, the fourth is refused.
	got = got[:0]
	for range 4 {
		got = append(got, l.Allow("a", t0.Add(time.Hour)))
	}
	if fmt.Sprint(got) != "[true true true false]" {
		t.Errorf("after an hour idle = %v, want the burst of three and no more (refill beyond the burst)", got)
	}
}

func TestLimiterBoundsKeys(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := fleet.NewLimiter(1, 1, 100)
	for i := range 1000 {
		l.Allow(fmt.Sprint(i), t0)
	}
	// Still works (memory stays bounded: old keys were forgotten).
	if !l.Allow("fresh", t0) {
		t.Error("new key refused after many keys")
	}
}

// A flood of new keys makes the limiter forget keys, but never those of
// callers it is limiting: it used to clear every bucket once all were in
// use, which lifted every limit.
func TestLimiterKeepsLimitedKeysUnderAFloodOfNewOnes(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := fleet.NewLimiter(0.001, 2, 100)
	for l.Allow("attacker", t0) {
	}
	for i := range 1000 {
		l.Allow(fmt.Sprint("flood-", i), t0) // each takes a token, so none is full
	}
	if l.Allow("attacker", t0) {
		t.Error("a limited key was allowed again after a flood of new keys")
	}
}

func TestRepeatFilter(t *testing.T) {
	t0 := time.Unix(1000, 0)
	f := fleet.NewRepeatFilter(time.Minute, 0)
	for i, step := range []struct {
		at         time.Duration
		key        string
		ok         bool
		suppressed uint64
	}{
		{0, "a", true, 0},
		{time.Second, "a", false, 0},
		{2 * time.Second, "a", false, 0},
		{2 * time.Second, "b", true, 0},
		{61 * time.Second, "a", true, 2},
		{62 * time.Second, "a", false, 0},
	} {
		ok, n := f.Admit(step.key, t0.Add(step.at))
		if ok != step.ok || n != step.suppressed {
			t.Errorf("step %d: Admit(%s) = %v, %d; want %v, %d", i, step.key, ok, n, step.ok, step.suppressed)
		}
	}
}

func TestPeerHost(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.7:51234": "10.0.0.7",
		"[::1]:7400":     "::1",
		// A host is usually given a whole IPv6 /64.
		"[2001:db8::7]:443":          "2001:db8::/64",
		"[2001:db8:0:0:ffff::1]:443": "2001:db8::/64",
		"[::ffff:10.0.0.7]:443":      "10.0.0.7",
		"bufconn":                    "bufconn",
		"":                           "",
	} {
		if got := fleet.PeerHost(in); got != want {
			t.Errorf("PeerHost(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLimiterTakeSaysWhenToRetry(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := fleet.NewLimiter(0.5, 1, 0) // one token per 2s
	if ok, d := l.Take("a", t0); !ok || d != 0 {
		t.Fatalf("first Take = %v, %v; want true, 0", ok, d)
	}
	ok, d := l.Take("a", t0.Add(500*time.Millisecond))
	if ok || d != 1500*time.Millisecond {
		t.Fatalf("Take on an empty bucket = %v, %v; want false, 1.5s", ok, d)
	}
	if ok, _ := l.Take("a", t0.Add(2*time.Second)); !ok {
		t.Error("no token once the advertised delay passed")
	}
}
