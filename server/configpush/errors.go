package configpush

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors of config push. The server maps each to a gRPC status code
// and a stable ErrorInfo reason.
var (
	// ErrUnknownTerminal: the terminal is not in the directory (never
	// provisioned, or retired).
	ErrUnknownTerminal = errors.New("configpush: unknown terminal")
	// ErrScopeNotFound: the merchant, store or terminal named by a publish
	// scope does not exist.
	ErrScopeNotFound = errors.New("configpush: scope not found")
	// ErrRolloutNotFound: no rollout with that ID.
	ErrRolloutNotFound = errors.New("configpush: rollout not found")
	// ErrRolloutState: the rollout is in a state that does not allow the
	// change (e.g. pausing a completed rollout).
	ErrRolloutState = errors.New("configpush: rollout state does not allow this")
	// ErrVersionNotIssued: an acknowledgement names a config version newer
	// than the one the terminal was given.
	ErrVersionNotIssued = errors.New("configpush: config version was not issued to this terminal")
	// ErrBadPageToken: a page token config push did not issue.
	ErrBadPageToken = errors.New("configpush: invalid page token")
	// ErrClosed: the engine or hub is shut down.
	ErrClosed = errors.New("configpush: shut down")
	// ErrWatchReplaced: the terminal opened more concurrent watches than
	// allowed and this, its oldest, was closed.
	ErrWatchReplaced = errors.New("configpush: watch replaced by a newer watch of the same terminal")
)

// Violation is one invalid input field.
type Violation struct {
	// Field is the request field in the protocol's snake_case path, e.g.
	// "settings.daily_limit.currency".
	Field string
	// Reason says what is wrong, in plain words.
	Reason string
}

// Error returns the violation as "configpush: FIELD REASON".
func (v Violation) Error() string { return "configpush: " + v.Field + " " + v.Reason }

// FieldViolation returns the invalid field and what is wrong with it.
func (v Violation) FieldViolation() (field, description string) { return v.Field, v.Reason }

// ValidationError lists every invalid field of a request. The server turns
// it into InvalidArgument with a google.rpc.BadRequest detail.
type ValidationError struct {
	Violations []Violation
}

// Unwrap returns the violations, in order, as errors.
func (e *ValidationError) Unwrap() []error {
	out := make([]error, len(e.Violations))
	for i, v := range e.Violations {
		out[i] = v
	}
	return out
}

func (e *ValidationError) Error() string {
	if len(e.Violations) == 0 {
		return "configpush: invalid request"
	}
	var b strings.Builder
	b.WriteString("configpush: invalid request: ")
	for i, v := range e.Violations {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(v.Field)
		b.WriteByte(' ')
		b.WriteString(v.Reason)
	}
	return b.String()
}

// violations accumulates findings; err returns nil when there are none.
type violations []Violation

func (v *violations) add(field, format string, args ...any) {
	*v = append(*v, Violation{Field: field, Reason: fmt.Sprintf(format, args...)})
}

func (v violations) err() error {
	if len(v) == 0 {
		return nil
	}
	return &ValidationError{Violations: v}
}
