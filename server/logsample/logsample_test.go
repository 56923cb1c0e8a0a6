package logsample_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet/internal/testclock"
	"github.com/posfleet/posfleet/server/logsample"
)

func TestSamplerBoundsRepeatsAndCountsThem(t *testing.T) {
	var buf bytes.Buffer
	c := testclock.New(time.Unix(1000, 0))
	log := slog.New(logsample.New(slog.NewTextHandler(&buf, nil), logsample.Options{Window: time.Second, Burst: 3, Now: c.Now}))
	for range 1000 {
		log.Info("rpc", "method", "/x/Fail", "code", "Unauthenticated", "peer", "10.0.0.1:1")
	}
	// Another kind (another code) is not hidden by the flood.
	log.Info("rpc", "method", "/x/Fail", "code", "ResourceExhausted")
	if got := strings.Count(buf.String(), "\n"); got != 4 {
		t.Fatalf("lines after 1000 repeats and one other = %d, want 3 + 1:\n%s", got, buf.String())
	}
	c.Advance(time.Second)
	buf.Reset()
	log.Info("rpc", "method", "/x/Fail", "code", "Unauthenticated")
	out := buf.String()
	if !strings.Contains(out, `msg="log lines suppressed" message=rpc method=/x/Fail code=Unauthenticated suppressed=997`) {
		t.Errorf("after the window: %s, want a line with suppressed=997 before the record", out)
	}
	if strings.Count(out, "\n") != 2 {
		t.Errorf("after the window: %d lines, want the count line and the record", strings.Count(out, "\n"))
	}
}

func TestSamplerSharesCountsWithDerivedLoggers(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(logsample.New(slog.NewTextHandler(&buf, nil), logsample.Options{Window: time.Hour, Burst: 2}))
	a, b := log.With("component", "a"), log.WithGroup("g")
	a.Info("same")
	b.Info("same")
	a.Info("same")
	if got := strings.Count(buf.String(), "\n"); got != 2 {
		t.Errorf("lines = %d, want 2 (the burst, shared)", got)
	}
}

func TestSamplerBoundsKinds(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(logsample.New(slog.NewTextHandler(&buf, nil), logsample.Options{Window: time.Hour, Burst: 1, MaxKinds: 10}))
	for i := range 100 {
		log.Info("m", "code", i) // kinds beyond the cap pass unsampled
	}
	if got := strings.Count(buf.String(), "\n"); got != 100 {
		t.Errorf("lines = %d, want 100", got)
	}
}
