package main

import (
	"bytes"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestServeMetricsLogsItsURL(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	hs := serveMetrics(lis, http.NewServeMux(), slog.New(slog.NewTextHandler(&logs, nil)))
	defer hs.Close()
	url := "http://" + lis.Addr().String() + "/metrics"
	if got := logs.String(); !strings.Contains(got, `msg="serving metrics on `+url) || !strings.Contains(got, "metrics_url="+url) {
		t.Errorf("log = %q, want a message naming %s", got, url)
	}
}
