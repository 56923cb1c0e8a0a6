package server_test

import (
	"regexp"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
)

var regexpTID = regexp.MustCompile(`^[A-Z0-9]{8}$`)

func tsAt(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

func containsStr(s, sub string) bool { return strings.Contains(s, sub) }
