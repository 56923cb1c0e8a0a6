package server_test

import "regexp"

var regexpTID = regexp.MustCompile(`^[A-Z0-9]{8}$`)
