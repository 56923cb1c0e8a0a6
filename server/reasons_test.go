package server

import (
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server/configpush"
	"github.com/posfleet/posfleet/server/fleet"
	"github.com/posfleet/posfleet/server/payment"
	"github.com/posfleet/posfleet/server/store"
)

// TestErrorReasonCatalogue checks that the reasons the server can send and
// the catalogue in the proto (pb.ErrorReason) are the same set. Every
// ErrorInfo is built by refusal.err from a pb.ErrorReason, so the reasons
// the server can send are the pb.ErrorReason constants its code names:
// the test reads the package's sources, fails on any other way of building
// an ErrorInfo or a reason (a literal, a conversion from a number), and
// fails on a catalogued reason that nothing sends any more.
func TestErrorReasonCatalogue(t *testing.T) {
	used := map[string]string{} // reason -> first file naming it
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CompositeLit:
				if sel, ok := n.Type.(*ast.SelectorExpr); ok && sel.Sel.Name == "ErrorInfo" && path != "reasons.go" {
					t.Errorf("%s builds an ErrorInfo: build refusals with refusal.err (reasons.go) so that the reason is catalogued", path)
				}
			case *ast.CallExpr:
				if sel, ok := n.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "ErrorReason" {
					t.Errorf("%s converts a value to pb.ErrorReason: name a catalogued constant instead", path)
				}
			case *ast.SelectorExpr:
				if name, ok := strings.CutPrefix(n.Sel.Name, "ErrorReason_"); ok {
					if _, seen := used[name]; !seen {
						used[name] = path
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(used) == 0 {
		t.Fatal("found no pb.ErrorReason constant in the server's sources: the scan is broken")
	}
	for name, path := range used {
		if _, ok := pb.ErrorReason_value[name]; !ok || name == "ERROR_REASON_UNSPECIFIED" {
			t.Errorf("%s sends reason %s, which pb.ErrorReason lacks: add it to common.proto, documented", path, name)
		}
	}
	for name := range pb.ErrorReason_value {
		if _, ok := used[name]; !ok && name != "ERROR_REASON_UNSPECIFIED" {
			t.Errorf("pb.ErrorReason has %s, which the server never sends", name)
		}
	}
	for _, m := range errorTable {
		if _, ok := pb.ErrorReason_name[int32(m.reason)]; !ok || m.reason == pb.ErrorReason_ERROR_REASON_UNSPECIFIED {
			t.Errorf("errorTable maps %v to reason %v, which is not catalogued", m.err, m.reason)
		}
	}
}

// TestErrorReasonDocs checks that common.proto documents every reason with
// its code, retry rule and metadata, and that the code it documents is the
// code the error table sends.
func TestErrorReasonDocs(t *testing.T) {
	docs := errorReasonDocs(t)
	for name := range pb.ErrorReason_value {
		if name == "ERROR_REASON_UNSPECIFIED" {
			continue
		}
		doc, ok := docs[name]
		if !ok {
			t.Errorf("common.proto: no ErrorReason value %s", name)
			continue
		}
		for _, part := range []string{"Code: ", "Retry: ", "Metadata: "} {
			if !strings.Contains(doc, part) {
				t.Errorf("%s: doc comment lacks %q: %q", name, part, doc)
			}
		}
	}
	for _, m := range errorTable {
		_, doc, ok := strings.Cut(docs[m.reason.String()], "Code: ")
		if !ok {
			continue // reported above
		}
		code, _, _ := strings.Cut(doc, "Retry: ")
		if !strings.Contains(code, m.code.String()) {
			t.Errorf("%s: documented %q, but the error table sends %v for %v", m.reason, code, m.code, m.err)
		}
	}
	for reason := range retryDelays {
		if !strings.Contains(docs[reason.String()], "RetryInfo") {
			t.Errorf("%s carries a RetryInfo that its doc comment does not mention", reason)
		}
	}
}

// errorReasonDocs returns the leading comment of each ErrorReason value in
// common.proto, joined into one line.
func errorReasonDocs(t *testing.T) map[string]string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "proto", "posfleet", "v1", "common.proto"))
	if err != nil {
		t.Fatal(err)
	}
	_, body, ok := strings.Cut(string(src), "\nenum ErrorReason {\n")
	if !ok {
		t.Fatal("common.proto has no enum ErrorReason")
	}
	body, _, _ = strings.Cut(body, "\n}\n")
	value := regexp.MustCompile(`^\s*([A-Z_]+) = \d+;`)
	docs := map[string]string{}
	var comment []string
	for line := range strings.SplitSeq(body, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "//"):
			comment = append(comment, strings.TrimSpace(strings.TrimPrefix(line, "//")))
		case value.MatchString(line):
			docs[value.FindStringSubmatch(line)[1]] = strings.Join(comment, " ")
			comment = nil
		default:
			comment = nil
		}
	}
	return docs
}

// TestRefusalDetails checks the details beyond the reason: metadata, the
// BadRequest of a bad page token and RetryInfo on temporary refusals.
func TestRefusalDetails(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		reason    string
		metadata  map[string]string
		retry     time.Duration // 0: no RetryInfo
		violation string        // BadRequest field, if any
	}{
		{"batch mismatch names the open batch", &payment.BatchMismatchError{Requested: 3, Open: 7},
			"BATCH_MISMATCH", map[string]string{"open_batch_number": "7"}, 0, ""},
		{"bad page token is a field violation", fmt.Errorf("list: %w", fleet.ErrBadPageToken),
			"INVALID_PAGE_TOKEN", nil, 0, "page_token"},
		{"registration limit says when", fmt.Errorf("register: %w", &fleet.RateLimitError{Wait: 1500 * time.Millisecond}),
			"RATE_LIMITED", map[string]string{"quota": "registration"}, 1500 * time.Millisecond, ""},
		{"shutdown", configpush.ErrClosed, "SHUTTING_DOWN", nil, time.Second, ""},
		{"storage", store.ErrCommit, "STORAGE_UNAVAILABLE", nil, time.Second, ""},
		{"disk", store.ErrDiskLow, "DISK_LOW", nil, 30 * time.Second, ""},
		{"not the writer", store.ErrFenced, "NOT_LEADER", nil, time.Second, ""},
		{"payments", payment.ErrUnavailable, "PAYMENTS_UNAVAILABLE", nil, time.Second, ""},
		{"not found has no retry", fleet.ErrTerminalNotFound, "TERMINAL_NOT_FOUND", nil, 0, ""},
	}
	s := testStatusServer()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := detailsOf(status.Convert(s.toStatus(t.Context(), tt.err)))
			if d.info.GetReason() != tt.reason || d.info.GetDomain() != "posfleet.dev" {
				t.Errorf("got reason %q domain %q, want %q posfleet.dev", d.info.GetReason(), d.info.GetDomain(), tt.reason)
			}
			if fmt.Sprint(d.info.GetMetadata()) != fmt.Sprint(tt.metadata) {
				t.Errorf("got metadata %v, want %v", d.info.GetMetadata(), tt.metadata)
			}
			if got := d.retry.GetRetryDelay().AsDuration(); (d.retry == nil) != (tt.retry == 0) || got != tt.retry {
				t.Errorf("got RetryInfo %v (present %v), want %v", got, d.retry != nil, tt.retry)
			}
			var fields []string
			for _, v := range d.badRequest.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
			if want := slices.DeleteFunc([]string{tt.violation}, func(s string) bool { return s == "" }); !slices.Equal(fields, want) {
				t.Errorf("got field violations %v, want %v", fields, want)
			}
		})
	}
}

// TestRefusalsOutsideTheTable checks the metadata of refusals built outside
// the error table: quotas and the role an admin method needs.
func TestRefusalsOutsideTheTable(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		code     codes.Code
		metadata map[string]string
		retry    time.Duration
	}{
		{"quota", rateLimited("over quota", "payment", 250*time.Millisecond), codes.ResourceExhausted,
			map[string]string{"quota": "payment"}, 250 * time.Millisecond},
		{"quota delay is never zero", rateLimited("over quota", "heartbeat", 0), codes.ResourceExhausted,
			map[string]string{"quota": "heartbeat"}, time.Millisecond},
		{"shutting down", statusWithReason(codes.Unavailable, pb.ErrorReason_SHUTTING_DOWN, "draining"), codes.Unavailable,
			nil, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := status.Convert(tt.err)
			d := detailsOf(st)
			if st.Code() != tt.code {
				t.Errorf("got code %v, want %v", st.Code(), tt.code)
			}
			if fmt.Sprint(d.info.GetMetadata()) != fmt.Sprint(tt.metadata) {
				t.Errorf("got metadata %v, want %v", d.info.GetMetadata(), tt.metadata)
			}
			if got := d.retry.GetRetryDelay().AsDuration(); got != tt.retry {
				t.Errorf("got retry delay %v, want %v", got, tt.retry)
			}
		})
	}
}

type statusDetails struct {
	info       *errdetails.ErrorInfo
	retry      *errdetails.RetryInfo
	badRequest *errdetails.BadRequest
}

func detailsOf(st *status.Status) statusDetails {
	var d statusDetails
	for _, x := range st.Details() {
		switch x := x.(type) {
		case *errdetails.ErrorInfo:
			d.info = x
		case *errdetails.RetryInfo:
			d.retry = x
		case *errdetails.BadRequest:
			d.badRequest = x
		}
	}
	return d
}

// TestPushback checks the grpc-retry-pushback-ms trailer: the RetryInfo
// delay, or "-1" (do not retry) when the call's deadline ends first.
func TestPushback(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		deadline time.Duration // 0: none
		want     []string
	}{
		{"no error", nil, 0, nil},
		{"no RetryInfo", statusWithReason(codes.NotFound, pb.ErrorReason_TERMINAL_NOT_FOUND, "no"), 0, nil},
		{"delay", statusWithReason(codes.Unavailable, pb.ErrorReason_SHUTTING_DOWN, "draining"), 0, []string{"1000"}},
		{"delay within the deadline", statusWithReason(codes.Unavailable, pb.ErrorReason_SHUTTING_DOWN, "draining"), 10 * time.Second, []string{"1000"}},
		{"delay past the deadline", statusWithReason(codes.Unavailable, pb.ErrorReason_DISK_LOW, "full"), 10 * time.Second, []string{"-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			if tt.deadline > 0 {
				var cancel func()
				ctx, cancel = context.WithTimeout(ctx, tt.deadline)
				defer cancel()
			}
			if got := pushback(ctx, tt.err).Get(pushbackKey); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
