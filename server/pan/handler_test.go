package pan_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/posfleet/posfleet/server/pan"
)

type stringer string

func (s stringer) String() string { return string(s) }

func TestHandlerRedacts(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(pan.NewHandler(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	logger = logger.With("label", "till 4111-1111-1111-1111").WithGroup("req")
	logger.Info("got 4111111111111111 from a client",
		"detail", "4111111111111111",
		"fullwidth", "４１１１１１１１１１１１１１１１",
		"err", errors.New("bad value tok_4111_1111_1111_1111"),
		"stringer", stringer("5500.0055.5555.5559"),
		"map", map[string]string{"k": "4111 1111 1111 1111"},
		slog.Group("nested", "reason", "note:4111111111111111:end"),
		"4111111111111111", "as a key",
		"request_id", "1733212345678901230-a",
		"amount", 4111111111111111,
		"ok", "store 12",
	)
	out := buf.String()
	for _, secret := range []string{"4111111111111111", "4111-1111", "4111 1111", "tok_4111_", "5500.0055", "４１１１"} {
		if strings.Contains(out, secret) {
			t.Errorf("log line holds %q:\n%s", secret, out)
		}
	}
	for _, kept := range []string{"request_id=1733212345678901230-a", "ok=\"store 12\"", "req.nested.reason=note:" + pan.Redacted + ":end"} {
		if !strings.Contains(out, kept) {
			t.Errorf("log line lacks %q:\n%s", kept, out)
		}
	}
	if n := strings.Count(out, pan.Redacted); n != 10 {
		t.Errorf("got %d redactions, want 10:\n%s", n, out)
	}
}
