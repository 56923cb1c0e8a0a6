package main

import (
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseLoadgenConfig(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "admin.token")
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(t *testing.T, c loadgenConfig)
		wantErr string
	}{
		{name: "defaults", check: func(t *testing.T, c loadgenConfig) {
			if got, want := c, defaultLoadgenConfig(); !slices.Equal(got.SLOs, want.SLOs) || got.Target != want.Target || got.Terminals != want.Terminals || got.Duration != want.Duration {
				t.Errorf("got %+v, want the defaults %+v", got, want)
			}
			if got := c.connections(); got != 100 {
				t.Errorf("connections: got %d, want one per terminal (100)", got)
			}
		}},
		{name: "flags bind fields", args: []string{"--terminals", "8", "--connections", "3", "--duration", "5s", "--slo", "txn.p99<=1s", "--slo", "txn.error_rate<1%;txn.max<=5s"},
			check: func(t *testing.T, c loadgenConfig) {
				if c.Terminals != 8 || c.connections() != 3 || c.Duration != 5*time.Second {
					t.Errorf("got terminals %d connections %d duration %s, want 8, 3, 5s", c.Terminals, c.connections(), c.Duration)
				}
				if want := []string{"txn.p99<=1s", "txn.error_rate<1%", "txn.max<=5s"}; !slices.Equal(c.SLOs, want) {
					t.Errorf("SLOs: got %q, want %q", c.SLOs, want)
				}
			}},
		{name: "connections capped at terminals", args: []string{"--terminals", "2", "--connections", "9"},
			check: func(t *testing.T, c loadgenConfig) {
				if got := c.connections(); got != 2 {
					t.Errorf("connections: got %d, want 2", got)
				}
			}},
		{name: "env twin, flag wins", args: []string{"--rate", "7"}, env: map[string]string{"POSFLEET_RATE": "9", "POSFLEET_DRIVER": "health"},
			check: func(t *testing.T, c loadgenConfig) {
				if c.Rate != 7 || c.Driver != "health" {
					t.Errorf("got rate %g driver %q, want 7 (flag) and health (env)", c.Rate, c.Driver)
				}
			}},
		{name: "admin token from env", env: map[string]string{"POSFLEET_ADMIN_TOKEN": " tok \n"},
			check: func(t *testing.T, c loadgenConfig) {
				if got, err := c.adminToken(); err != nil || got != "tok" {
					t.Errorf("adminToken: got %q, %v; want tok", got, err)
				}
			}},
		{name: "admin token file wins over env", args: []string{"--admin-token-file", tokenFile}, env: map[string]string{"POSFLEET_ADMIN_TOKEN": "tok"},
			check: func(t *testing.T, c loadgenConfig) {
				if c.AdminToken != "" {
					t.Errorf("AdminToken: got %q, want empty so that the file is read", c.AdminToken)
				}
			}},
		{name: "terminals", args: []string{"--terminals", "0"}, wantErr: "--terminals must be positive"},
		{name: "driver", args: []string{"--driver", "bogus"}, wantErr: `--driver "bogus"`},
		{name: "amounts", args: []string{"--amounts", "5-1"}, wantErr: "--amounts"},
		{name: "amounts not checked for health", args: []string{"--driver", "health", "--amounts", "5-1"}},
		{name: "mix", args: []string{"--mix", "approve=x"}, wantErr: "mix"},
		{name: "profile", args: []string{"--profile", "nope"}, wantErr: "unknown profile"},
		{name: "arrivals", args: []string{"--arrivals", "bursty"}, wantErr: "bursty"},
		{name: "slo", args: []string{"--slo", "txn.p99"}, wantErr: "txn.p99"},
		{name: "log level", args: []string{"--log-level", "loud"}, wantErr: "loud"},
		{name: "plaintext off loopback", args: []string{"--target", "192.0.2.1:7400"}, wantErr: "refusing plaintext"},
		{name: "plaintext off loopback, insecure", args: []string{"--target", "192.0.2.1:7400", "--insecure"}},
		{name: "tls off loopback", args: []string{"--target", "192.0.2.1:7400", "--tls"}},
		{name: "bad target", args: []string{"--target", "nohostport"}, wantErr: "--target"},
		{name: "several targets", args: []string{"--target", "127.0.0.1:7400, localhost:7401"}, check: func(t *testing.T, c loadgenConfig) {
			if got, err := c.targets(); err != nil || !slices.Equal(got, []string{"127.0.0.1:7400", "localhost:7401"}) {
				t.Errorf("targets: got %q, %v; want both nodes", got, err)
			}
		}},
		{name: "several targets from env", env: map[string]string{"POSFLEET_TARGET": "127.0.0.1:1,127.0.0.1:2"}, check: func(t *testing.T, c loadgenConfig) {
			if got, _ := c.targets(); len(got) != 2 {
				t.Errorf("targets: got %q, want two", got)
			}
		}},
		{name: "plaintext off loopback in a list", args: []string{"--target", "127.0.0.1:7400,192.0.2.1:7400"}, wantErr: "refusing plaintext to non-loopback target 192.0.2.1:7400"},
		{name: "bad target in a list", args: []string{"--target", "127.0.0.1:7400,nohostport"}, wantErr: "--target"},
		{name: "target twice", args: []string{"--target", "127.0.0.1:7400,127.0.0.1:7400"}, wantErr: "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("POSFLEET_ADMIN_TOKEN", "")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			c, err := parseLoadgenConfig(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}
