package server

import "google.golang.org/protobuf/reflect/protoreflect"

// CardNumberExempt reports whether fields named name are not read for card
// numbers.
func CardNumberExempt(name protoreflect.Name) bool {
	_, ok := cardNumberExempt[name]
	return ok
}
