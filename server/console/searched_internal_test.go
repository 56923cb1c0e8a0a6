package console

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// cutShortAdmin answers list calls with an empty page cut short at the
// server's read budget; other calls are not made by the pages under test.
type cutShortAdmin struct {
	pb.AdminServiceClient
	at *timestamppb.Timestamp
}

func (a cutShortAdmin) ListTransactions(context.Context, *pb.ListTransactionsRequest, ...grpc.CallOption) (*pb.ListTransactionsResponse, error) {
	return &pb.ListTransactionsResponse{NextPageToken: "tok", SearchedFrom: a.at}, nil
}

func (a cutShortAdmin) ListAuditEvents(context.Context, *pb.ListAuditEventsRequest, ...grpc.CallOption) (*pb.ListAuditEventsResponse, error) {
	return &pb.ListAuditEventsResponse{NextPageToken: "tok", SearchedFrom: a.at}, nil
}

func (a cutShortAdmin) ListStores(context.Context, *pb.ListStoresRequest, ...grpc.CallOption) (*pb.ListStoresResponse, error) {
	return &pb.ListStoresResponse{}, nil
}

// A page cut short at the server's read budget says how far back the
// server searched, next to the link to the next page; a full page does
// not.
func TestPagesSaySearchedFrom(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, tc := range []struct {
		at   *timestamppb.Timestamp
		want bool
	}{{timestamppb.New(at), true}, {nil, false}} {
		c, err := New(DefaultConfig(), cutShortAdmin{at: tc.at}, nil)
		if err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		c.sessions.create(w, "secret", &pb.AdminToken{TokenId: "t", Role: pb.Role_ROLE_AUDITOR})
		for _, path := range []string{"/transactions?code=51", "/audit?type=AUTH_FAILURE"} {
			r := httptest.NewRequest(http.MethodGet, path, nil)
			for _, ck := range w.Result().Cookies() {
				r.AddCookie(ck)
			}
			rec := httptest.NewRecorder()
			c.ServeHTTP(rec, r)
			body := rec.Body.String()
			if rec.Code != http.StatusOK {
				t.Fatalf("GET %s: %d\n%.2000s", path, rec.Code, body)
			}
			i := strings.Index(body, `id="searched-from"`)
			if got := i >= 0; got != tc.want {
				t.Errorf("GET %s with searched_from %v: note shown %v, want %v", path, tc.at, got, tc.want)
				continue
			}
			if tc.want && !strings.Contains(body[i:], "2026-03-04") {
				t.Errorf("GET %s: the note does not give the time searched back to\n%.500s", path, body[i:])
			}
		}
	}
}
