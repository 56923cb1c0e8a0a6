package server

import (
	"google.golang.org/protobuf/proto"
)

// boundedPage lists a page of at most limit items with list, converts them
// with conv, and bounds the page in bytes as well as items: when the
// converted items exceed maxBytes, it lists again with as many items as fit
// (at least one), so that the next page token still comes from the domain's
// own paging. A page of big items (terminals with long fault messages,
// commands with many parameters) thus never exceeds the response size
// limit; the client just gets more, smaller pages.
func boundedPage[D any, P proto.Message](maxBytes, limit int, list func(limit int) ([]D, string, error), conv func(D) P) ([]P, string, error) {
	items, next, err := list(limit)
	if err != nil {
		return nil, "", err
	}
	out := convertAll(items, conv)
	if k := fitting(out, maxBytes); k < len(out) {
		if items, next, err = list(k); err != nil {
			return nil, "", err
		}
		out = convertAll(items, conv)
	}
	return out, next, nil
}

func convertAll[D any, P any](items []D, conv func(D) P) []P {
	out := make([]P, len(items))
	for i, x := range items {
		out[i] = conv(x)
	}
	return out
}

// fitting returns how many leading messages fit in maxBytes of a repeated
// field (at least one, so that paging always advances).
func fitting[P proto.Message](msgs []P, maxBytes int) int {
	total := 0
	for i, m := range msgs {
		// A repeated message field costs its tag and length prefix too.
		total += proto.Size(m) + 6
		if total > maxBytes && i > 0 {
			return i
		}
	}
	return len(msgs)
}
