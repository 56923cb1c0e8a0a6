package pan

import (
	"context"
	"fmt"
	"log/slog"
)

// Handler is a slog.Handler that redacts card numbers from the message and
// from every attribute (in groups too, keys and values: strings, integers,
// and the text of errors, Stringers and other values) before passing
// records on.
type Handler struct {
	next slog.Handler
}

// NewHandler returns a handler that redacts card numbers and passes records
// on to next.
func NewHandler(next slog.Handler) *Handler { return &Handler{next: next} }

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// Handle implements slog.Handler.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, Redact(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		red[i] = redactAttr(a)
	}
	return &Handler{next: h.next.WithAttrs(red)}
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(Redact(name))}
}

func redactAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	key := Redact(a.Key)
	switch v.Kind() {
	case slog.KindString:
		return slog.String(key, Redact(v.String()))
	case slog.KindGroup:
		g := v.Group()
		red := make([]any, len(g))
		for i, x := range g {
			red[i] = redactAttr(x)
		}
		return slog.Group(key, red...)
	case slog.KindInt64, slog.KindUint64:
		if s := v.String(); Contains(s) {
			return slog.String(key, Redact(s))
		}
	case slog.KindAny:
		// Errors, Stringers, maps, slices: what a handler would print.
		s := fmt.Sprint(v.Any())
		if r := Redact(s); r != s {
			return slog.String(key, r)
		}
	}
	return slog.Attr{Key: key, Value: v}
}
