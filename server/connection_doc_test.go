package server_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server"
)

// TestConnectionDocsMatchDefaults checks the connection numbers that
// terminal.proto promises clients (keepalive, idle and age limits) against
// the server's defaults, so that a changed default cannot leave vendors
// pinging too often (GOAWAY too_many_pings) by the book.
func TestConnectionDocsMatchDefaults(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "proto", "posfleet", "v1", "terminal.proto"))
	if err != nil {
		t.Fatal(err)
	}
	// The service comment, as one line.
	doc := strings.Join(strings.Fields(strings.ReplaceAll(string(src), "//", "")), " ")
	cfg := server.DefaultConfig(t.TempDir())
	tests := []struct {
		setting string
		phrase  string // %s: the setting's value in words
		value   time.Duration
	}{
		{"KeepaliveTime", "pings a connection idle for %s", cfg.KeepaliveTime},
		{"KeepaliveTimeout", "if the ping is not answered in %s", cfg.KeepaliveTimeout},
		{"MaxConnectionIdle", "closes a connection without calls after %s", cfg.MaxConnectionIdle},
		{"MaxConnectionAge", "recycles every connection after %s", cfg.MaxConnectionAge},
		{"MaxConnectionAgeGrace", "lets calls in flight finish for up to %s", cfg.MaxConnectionAgeGrace},
		{"MinClientPingInterval", "not more often than every %s", cfg.MinClientPingInterval},
		{"MaxCallTimeout", "the server caps unary deadlines at %s", cfg.MaxCallTimeout},
	}
	for _, tt := range tests {
		if want := fmt.Sprintf(tt.phrase, inWords(tt.value)); !strings.Contains(doc, want) {
			t.Errorf("%s is %v: terminal.proto's TerminalService comment should say %q", tt.setting, tt.value, want)
		}
	}
}

// inWords writes d as the proto comments do: "20 seconds", "a minute",
// "4 hours".
func inWords(d time.Duration) string {
	n, unit := int64(d/time.Second), "second"
	switch {
	case d%time.Hour == 0:
		n, unit = int64(d/time.Hour), "hour"
	case d%time.Minute == 0:
		n, unit = int64(d/time.Minute), "minute"
	}
	if n == 1 {
		return "a " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
