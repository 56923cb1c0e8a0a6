package loadgen_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet/loadgen"
)

// checkProgressLines checks plain progress output: a header, then lines
// that fit 80 columns with the header's columns in the same places, each
// with its stage in the stage column.
func checkProgressLines(t *testing.T, out string, stages ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "elapsed") {
		t.Fatalf("progress output %q: want a header and lines", out)
	}
	stageCol := strings.Index(lines[0], "stage")
	for _, l := range lines {
		if len(l) > 79 {
			t.Errorf("progress line of %d characters, want at most 79: %q", len(l), l)
		}
		if f := strings.Fields(l); len(f) != 8 && !(len(f) == 9 && f[8] == "BEHIND") {
			t.Errorf("progress line %q: %d columns, want 8", l, len(f))
		}
	}
	seen := map[string]bool{}
	for _, l := range lines[1:] {
		seen[strings.Fields(l[stageCol:])[0]] = true
	}
	for _, st := range stages {
		if !seen[st] {
			t.Errorf("no progress line shows stage %q in the stage column:\n%s", st, out)
		}
	}
}

// On a terminal the progress line is rewritten in place, and ended with a
// newline when the run finishes.
func TestProgressInPlaceOnTTY(t *testing.T) {
	var out bytes.Buffer
	run, err := loadgen.NewRun(loadgen.Config{
		Profile: steady(50, 400*time.Millisecond), Arrivals: loadgen.Uniform, Users: 2,
		Interval: 50 * time.Millisecond, Progress: &out, ProgressTTY: true,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	exec := loadgen.ExecutorFunc(func(_ context.Context, _ int, a loadgen.Arrival, rec loadgen.Recorder) loadgen.Outcome {
		rec.Call("authorize", a.Intended, time.Now(), time.Now(), loadgen.OK())
		return loadgen.OK()
	})
	if err := run.Drive(t.Context(), exec); err != nil {
		t.Fatal(err)
	}
	run.Finish()
	header, rest, ok := strings.Cut(out.String(), "\n")
	if !ok || !strings.HasPrefix(header, "elapsed") {
		t.Fatalf("TTY progress %q: want the header on its own line first", out.String())
	}
	updates := strings.Split(strings.TrimSuffix(rest, "\n"), "\r\x1b[K")
	if len(updates) < 3 || updates[0] != "" || !strings.Contains(updates[1], "steady") || !strings.HasSuffix(rest, "\n") || strings.Count(rest, "\n") != 1 {
		t.Fatalf("TTY progress after the header %q: want in-place updates (\\r, clear line) and one final newline", rest)
	}
	for _, u := range updates[1:] {
		if u = strings.TrimSuffix(u, "\n"); len(u) > 79 || strings.Contains(u, "\n") {
			t.Errorf("in-place update %q: want at most 79 characters on one line", u)
		}
	}
}
