// Package logsample bounds repeated log lines: a slog.Handler that passes
// the first lines of each kind per time window and replaces the rest with
// one line saying how many were suppressed.
//
// A line's kind is its level, its message and the values of a few
// attributes that name the caller's class (by default the RPC method and
// status code), never free text chosen by a client. A client repeating a
// failing call a hundred thousand times thus costs a few lines per window
// instead of a hundred thousand.
//
// Usage:
//
//	logger := slog.New(logsample.New(slog.NewTextHandler(os.Stderr, nil), logsample.Options{}))
//
// Suppressed lines are reported with the next line of their kind that
// passes, as a line with the message "log lines suppressed", the kind's
// message and key attributes, and the count.
package logsample

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Options configure a Handler. Zero fields take their defaults.
type Options struct {
	// Window is the sampling period (default 10s).
	Window time.Duration
	// Burst is how many lines of one kind pass per window (default 20).
	Burst int
	// MaxKinds bounds the kinds tracked at once (default 1000); lines of
	// further kinds pass unsampled until old windows expire.
	MaxKinds int
	// KeyAttrs are the attributes whose values, with the level and the
	// message, make a line's kind (default "method" and "code").
	KeyAttrs []string
	// Now is the clock (time.Now when nil); tests replace it.
	Now func() time.Time
}

// withDefaults fills zero fields.
func (o Options) withDefaults() Options {
	if o.Window == 0 {
		o.Window = 10 * time.Second
	}
	if o.Burst == 0 {
		o.Burst = 20
	}
	if o.MaxKinds == 0 {
		o.MaxKinds = 1000
	}
	if o.KeyAttrs == nil {
		o.KeyAttrs = []string{"method", "code"}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Validate reports the first unusable setting.
func (o Options) Validate() error {
	if o.Window < 0 || o.Burst < 0 || o.MaxKinds < 0 {
		return errors.New("logsample: Window, Burst and MaxKinds must not be negative")
	}
	return nil
}

// Handler samples the records it passes to the next handler. Handlers
// derived with WithAttrs and WithGroup share its counts. It is safe for
// concurrent use.
type Handler struct {
	next slog.Handler
	st   *state
}

type state struct {
	opts Options

	mu sync.Mutex // guards kinds
	// kinds holds the current window of each kind seen recently.
	kinds map[string]*window
}

type window struct {
	start      time.Time
	passed     int
	suppressed uint64
}

// New returns a handler that samples records before next.
func New(next slog.Handler, o Options) *Handler {
	return &Handler{next: next, st: &state{opts: o.withDefaults(), kinds: map[string]*window{}}}
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &Handler{next: h.next.WithAttrs(as), st: h.st}
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), st: h.st}
}

// Handle implements slog.Handler: it passes r unless its kind already
// passed Burst lines in the current window.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	kind, keyAttrs := h.kind(r)
	pass, suppressed := h.st.admit(kind)
	if !pass {
		return nil
	}
	if suppressed > 0 {
		s := slog.NewRecord(r.Time, r.Level, "log lines suppressed", r.PC)
		s.AddAttrs(slog.String("message", r.Message))
		s.AddAttrs(keyAttrs...)
		s.AddAttrs(slog.Uint64("suppressed", suppressed), slog.Duration("window", h.st.opts.Window))
		if err := h.next.Handle(ctx, s); err != nil {
			return err
		}
	}
	return h.next.Handle(ctx, r)
}

// kind returns r's kind and its key attributes.
func (h *Handler) kind(r slog.Record) (string, []slog.Attr) {
	var b strings.Builder
	b.WriteString(r.Level.String())
	b.WriteByte(0)
	b.WriteString(r.Message)
	var attrs []slog.Attr
	r.Attrs(func(a slog.Attr) bool {
		for _, k := range h.st.opts.KeyAttrs {
			if a.Key == k {
				attrs = append(attrs, a)
				b.WriteByte(0)
				b.WriteString(k)
				b.WriteByte('=')
				b.WriteString(a.Value.String())
			}
		}
		return true
	})
	return b.String(), attrs
}

// admit counts a line of kind and reports whether it passes and, if so,
// how many lines of the kind were suppressed before it.
func (s *state) admit(kind string) (bool, uint64) {
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.kinds[kind]
	if w == nil {
		if len(s.kinds) >= s.opts.MaxKinds {
			for k, x := range s.kinds {
				if now.Sub(x.start) >= s.opts.Window && x.suppressed == 0 {
					delete(s.kinds, k)
				}
			}
			if len(s.kinds) >= s.opts.MaxKinds {
				return true, 0
			}
		}
		w = &window{start: now}
		s.kinds[kind] = w
	}
	if now.Sub(w.start) >= s.opts.Window {
		suppressed := w.suppressed
		*w = window{start: now, passed: 1}
		return true, suppressed
	}
	if w.passed < s.opts.Burst {
		w.passed++
		return true, 0
	}
	w.suppressed++
	return false, 0
}
