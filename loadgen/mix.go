package loadgen

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Transaction kinds of the fleet's mix.
const (
	// TxApprove is a sale with an ordinary card, expected to be approved.
	TxApprove = "approve"
	// TxDecline is a sale with an issuer-simulator test card that declines.
	TxDecline = "decline"
	// TxReverse is a sale followed by its reversal (customer cancel).
	TxReverse = "reverse"
	// TxRefund is a partial or full refund of an earlier approved sale of
	// the same terminal (a plain sale when it has none yet).
	TxRefund = "refund"
)

// Mix is the relative weight of each transaction kind.
type Mix map[string]float64

// DefaultMix is 85% approvals, 8% declines, 4% reversals and 3% refunds.
func DefaultMix() Mix {
	return Mix{TxApprove: 85, TxDecline: 8, TxReverse: 4, TxRefund: 3}
}

// ParseMix parses "approve=80,decline=10,reverse=5,refund=5". Kinds left
// out get weight zero; weights need not sum to 100.
func ParseMix(s string) (Mix, error) {
	m := Mix{}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("mix %q: want kind=weight", part)
		}
		k = strings.TrimSpace(k)
		w, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return nil, fmt.Errorf("mix %q: weight: %w", part, err)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("mix: %s given twice", k)
		}
		m[k] = w
	}
	return m, m.Validate()
}

// Validate reports unknown kinds, negative weights or an all-zero mix.
func (m Mix) Validate() error {
	var sum float64
	for k, w := range m {
		switch k {
		case TxApprove, TxDecline, TxReverse, TxRefund:
		default:
			return fmt.Errorf("mix: unknown kind %q (want %s, %s, %s or %s)", k, TxApprove, TxDecline, TxReverse, TxRefund)
		}
		if w < 0 || math.IsNaN(w) || math.IsInf(w, 0) {
			return fmt.Errorf("mix: %s weight %v must be finite and not negative", k, w)
		}
		sum += w
	}
	if sum <= 0 {
		return fmt.Errorf("mix: weights sum to zero")
	}
	return nil
}

// String renders the mix as ParseMix accepts it, kinds in name order.
func (m Mix) String() string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%g", k, m[k]))
	}
	return strings.Join(parts, ",")
}

// picker draws kinds with the mix's weights from a uniform number in [0,1).
type picker struct {
	kinds []string
	cum   []float64
}

func newPicker(m Mix) picker {
	var p picker
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sum float64
	for _, k := range keys {
		sum += m[k]
	}
	var acc float64
	for _, k := range keys {
		if m[k] == 0 {
			continue
		}
		acc += m[k] / sum
		p.kinds = append(p.kinds, k)
		p.cum = append(p.cum, acc)
	}
	return p
}

func (p picker) pick(u float64) string {
	for i, c := range p.cum {
		if u < c {
			return p.kinds[i]
		}
	}
	return p.kinds[len(p.kinds)-1]
}
