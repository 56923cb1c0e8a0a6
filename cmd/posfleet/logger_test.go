package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestLoggerRedactsCardNumbers checks that the serve and loadgen loggers
// never write a card number, in either format.
func TestLoggerRedactsCardNumbers(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		logger, err := newLogger(&buf, "debug", format)
		if err != nil {
			t.Fatal(err)
		}
		logger.Info("ack 4111 1111 1111 1111", "detail", "4111111111111111", "label", "４１１１．１１１１．１１１１．１１１１")
		out := buf.String()
		if strings.Contains(out, "4111") || strings.Contains(out, "４１１１") {
			t.Errorf("%s log holds a card number: %s", format, out)
		}
		if got := strings.Count(out, "redacted-card-number"); got != 3 {
			t.Errorf("%s log: got %d redactions, want 3: %s", format, got, out)
		}
	}
}
