package pan_test

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/posfleet/posfleet/server/pan"
)

// A request field that holds a card number is refused, without echoing the
// value.
func ExampleContains() {
	for _, label := range []string{"till 3", "tok_4111 1111 1111 1111", "6f1c2b7e-5d2a-4c1e-9b1a-2f3e4d5c6b7a"} {
		fmt.Println(pan.Contains(label))
	}
	// Output:
	// false
	// true
	// false
}

// A logger built on NewHandler redacts card numbers from every message and
// attribute before the next handler sees them.
func ExampleNewHandler() {
	plain := slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // a stable example output
			}
			return a
		},
	})
	logger := slog.New(pan.NewHandler(plain))
	logger.Info("declined", "token", "tok_4111111111111111")
	// Output:
	// level=INFO msg=declined token=tok_[redacted-card-number]
}
