package main

import (
	"strings"
	"testing"
)

func TestConformanceGradesTheCommand(t *testing.T) {
	// A terminal that checks it was told everything it needs, then does
	// nothing: it exits cleanly but fails every scenario.
	check := `test ${#POSFLEET_PINNED_KEY} -eq 64 && test -n "$POSFLEET_ENROLLMENT_CODE" && test "$POSFLEET_MERCHANT_ID" = CONFORMANCE01 && test -n "$POSFLEET_TARGET"`
	out, code := runCLI(t, nil, "conformance", "--listen", "127.0.0.1:0", "--timeout", "1m", "--", "sh", "-c", check)
	if code != 1 {
		t.Errorf("got exit status %d, want 1\n%s", code, out)
	}
	for _, want := range []string{
		"pinned key", "enrollment code",
		"FAIL  lost Authorize answer", "the terminal made no authorization",
		"PASS  the terminal exits cleanly",
		"RESULT: FAIL",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestConformanceRefusesNonLoopback(t *testing.T) {
	out, code := runCLI(t, nil, "conformance", "--listen", "0.0.0.0:0", "--", "true")
	if code == 0 || !strings.Contains(out, "not loopback") {
		t.Errorf("got exit status %d and %q, want a refusal of a non-loopback address", code, out)
	}
}

func TestConformanceScenarios(t *testing.T) {
	// Only the chosen scenario is played and reported.
	out, code := runCLI(t, nil, "conformance", "--listen", "127.0.0.1:0", "--timeout", "1m", "--scenarios", "lost-register", "--", "sh", "-c", `test "$POSFLEET_ROTATE_CREDENTIAL" = false`)
	if code != 1 {
		t.Errorf("got exit status %d, want 1\n%s", code, out)
	}
	if !strings.Contains(out, "FAIL  lost Register answer") || strings.Contains(out, "lost Authorize answer") {
		t.Errorf("want a report of the lost Register answer alone:\n%s", out)
	}
	if !strings.Contains(out, "PASS  the terminal exits cleanly") {
		t.Errorf("POSFLEET_ROTATE_CREDENTIAL is not false without the rotation scenario:\n%s", out)
	}
	out, code = runCLI(t, nil, "conformance", "--listen", "127.0.0.1:0", "--scenarios", "all,-nosuch", "--", "true")
	if code == 0 || !strings.Contains(out, `unknown scenario "nosuch"`) {
		t.Errorf("got exit status %d and %q, want a refusal of an unknown scenario", code, out)
	}
}
