package webhook

import (
	"fmt"
	"strings"
)

// Violation is one invalid input field.
type Violation struct {
	// Field is the request field in the protocol's snake_case path, e.g.
	// "events[1]".
	Field string
	// Reason says what is wrong, in plain words.
	Reason string
}

// Error returns the violation as "webhook: FIELD REASON".
func (v Violation) Error() string { return "webhook: " + v.Field + " " + v.Reason }

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
	parts := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		parts[i] = v.Field + " " + v.Reason
	}
	return "webhook: invalid request: " + strings.Join(parts, "; ")
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
