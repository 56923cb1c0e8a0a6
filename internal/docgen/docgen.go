// Package docgen keeps generated sections of hand-written documents (the
// README, doc comments) in step with the table they are generated from.
//
// A section is the lines between a begin and an end marker:
//
//	<!-- BEGIN GENERATED: roles -->
//	...
//	<!-- END GENERATED: roles -->
//
// A test renders the section from its source and calls [Check]: it fails
// when the document drifted, and rewrites the document instead when the test
// runs with its update flag.
package docgen

import (
	"bytes"
	"errors"
	"fmt"
	"os"
)

// ErrNoSection is returned when a document lacks a section's markers, or
// has them out of order.
var ErrNoSection = errors.New("docgen: section markers missing")

// markers returns a section's begin and end marker lines.
func markers(name string) (begin, end []byte) {
	return []byte("<!-- BEGIN GENERATED: " + name + " -->\n"),
		[]byte("<!-- END GENERATED: " + name + " -->")
}

// Section returns the body of the named section of doc (the lines between
// its markers).
func Section(doc []byte, name string) ([]byte, error) {
	i, j, err := bounds(doc, name)
	if err != nil {
		return nil, err
	}
	return doc[i:j], nil
}

// Replace returns doc with the body of the named section replaced by body
// (a newline is added when body lacks one).
func Replace(doc []byte, name string, body []byte) ([]byte, error) {
	i, j, err := bounds(doc, name)
	if err != nil {
		return nil, err
	}
	if len(body) > 0 && body[len(body)-1] != '\n' {
		body = append(body[:len(body):len(body)], '\n')
	}
	out := make([]byte, 0, len(doc)-(j-i)+len(body))
	out = append(out, doc[:i]...)
	out = append(out, body...)
	return append(out, doc[j:]...), nil
}

// bounds finds the named section's body: doc[i:j].
func bounds(doc []byte, name string) (i, j int, err error) {
	begin, end := markers(name)
	b := bytes.Index(doc, begin)
	if b < 0 {
		return 0, 0, fmt.Errorf("%w: %q", ErrNoSection, begin[:len(begin)-1])
	}
	i = b + len(begin)
	e := bytes.Index(doc[i:], end)
	if e < 0 {
		return 0, 0, fmt.Errorf("%w: %q after its begin marker", ErrNoSection, end)
	}
	return i, i + e, nil
}

// Check compares the named section of the file at path with body. With
// update false it returns an error naming the section when they differ;
// with update true it rewrites the file's section instead.
func Check(path, name string, body []byte, update bool) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	want, err := Replace(doc, name, body)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if bytes.Equal(doc, want) {
		return nil
	}
	if update {
		return os.WriteFile(path, want, 0o644)
	}
	return fmt.Errorf("%s: generated section %q is out of date; rerun the test with -update", path, name)
}
