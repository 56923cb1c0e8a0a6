package configpush

import (
	"maps"
	"regexp"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/posfleet/posfleet/internal/iso4217"
	"github.com/posfleet/posfleet/server/pan"
)

// EntryMode is how a card is read (protocol EntryMode numbers).
type EntryMode int32

// Entry modes.
const (
	EntryModeUnspecified EntryMode = iota
	EntryChip
	EntryContactless
	EntrySwipe
	EntryManual
	EntryQR
)

// AllEntryModes are every entry mode, in protocol order: the effective
// default when no layer restricts them.
var AllEntryModes = []EntryMode{EntryChip, EntryContactless, EntrySwipe, EntryManual, EntryQR}

// Money is an amount in minor units of an ISO 4217 currency.
type Money struct {
	MinorUnits int64  `json:"mu"`
	Currency   string `json:"cur"`
}

// Settings is one layer of settings, or (in an Effective config) the merged
// result. A nil pointer or empty slice means "not set here": the wider layer
// (or the server default) applies. In Extra, an empty value removes the key
// that a wider layer set.
type Settings struct {
	ReceiptHeader       *string           `json:"rh,omitempty"`
	ReceiptFooter       *string           `json:"rf,omitempty"`
	EntryModes          []EntryMode       `json:"em,omitempty"`
	PerTransactionLimit *Money            `json:"ptl,omitempty"`
	DailyLimit          *Money            `json:"dl,omitempty"`
	OfflineFloorLimit   *Money            `json:"ofl,omitempty"`
	HeartbeatInterval   *time.Duration    `json:"hb,omitempty"`
	TimeZone            *string           `json:"tz,omitempty"`
	CardVelocityLimit   *uint32           `json:"cvl,omitempty"`
	CardVelocityWindow  *time.Duration    `json:"cvw,omitempty"`
	Extra               map[string]string `json:"x,omitempty"`
}

// Server defaults of the effective config, for fields no layer sets.
const (
	// DefaultHeartbeatInterval is the heartbeat interval of a terminal whose
	// chain sets none.
	DefaultHeartbeatInterval = 60 * time.Second
	// DefaultTimeZone is the displayed time zone when no layer sets one.
	DefaultTimeZone = "UTC"
	// DefaultCardVelocityWindow is the velocity window when a layer sets a
	// card velocity limit but no window.
	DefaultCardVelocityWindow = 24 * time.Hour
)

// Limits on published settings.
const (
	MinHeartbeatInterval  = 5 * time.Second
	MaxHeartbeatInterval  = time.Hour
	MinCardVelocityWindow = time.Minute
	MaxCardVelocityWindow = 7 * 24 * time.Hour
	MaxReceiptText        = 512  // characters of receipt_header, receipt_footer
	MaxTimeZone           = 64   // characters of time_zone
	MaxExtraKeys          = 256  // keys in extra
	MaxExtraValue         = 1024 // characters of one extra value
	MaxExtraBytes         = 64 << 10
	// MaxMinorUnits bounds limit amounts so that daily totals cannot
	// overflow.
	MaxMinorUnits = 1_000_000_000_000_000
)

var (
	reExtraKey = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
)

// merge folds layers, widest first, into effective settings and fills the
// server defaults:
//
//   - receipt_header, receipt_footer: "" (nothing printed)
//   - accepted_entry_modes: every entry mode
//   - per_transaction_limit, daily_limit: unset, no limit
//   - offline_floor_limit: unset, no offline approvals
//   - heartbeat_interval: 60s
//   - time_zone: "UTC"
//   - card_velocity_limit: 0 (check disabled); card_velocity_window: 24h
//   - extra: the union of every layer's keys, narrower values winning, keys
//     removed by an empty value at a narrower layer left out
func merge(layers []*Settings) *Settings {
	var out Settings
	extra := map[string]string{}
	for _, l := range layers {
		if l == nil {
			continue
		}
		if l.ReceiptHeader != nil {
			out.ReceiptHeader = l.ReceiptHeader
		}
		if l.ReceiptFooter != nil {
			out.ReceiptFooter = l.ReceiptFooter
		}
		if len(l.EntryModes) > 0 {
			out.EntryModes = l.EntryModes
		}
		if l.PerTransactionLimit != nil {
			out.PerTransactionLimit = l.PerTransactionLimit
		}
		if l.DailyLimit != nil {
			out.DailyLimit = l.DailyLimit
		}
		if l.OfflineFloorLimit != nil {
			out.OfflineFloorLimit = l.OfflineFloorLimit
		}
		if l.HeartbeatInterval != nil {
			out.HeartbeatInterval = l.HeartbeatInterval
		}
		if l.TimeZone != nil {
			out.TimeZone = l.TimeZone
		}
		if l.CardVelocityLimit != nil {
			out.CardVelocityLimit = l.CardVelocityLimit
		}
		if l.CardVelocityWindow != nil {
			out.CardVelocityWindow = l.CardVelocityWindow
		}
		for k, v := range l.Extra {
			if v == "" {
				delete(extra, k)
			} else {
				extra[k] = v
			}
		}
	}
	empty := ""
	if out.ReceiptHeader == nil {
		out.ReceiptHeader = &empty
	}
	if out.ReceiptFooter == nil {
		out.ReceiptFooter = &empty
	}
	if len(out.EntryModes) == 0 {
		out.EntryModes = AllEntryModes
	}
	if out.HeartbeatInterval == nil {
		d := DefaultHeartbeatInterval
		out.HeartbeatInterval = &d
	}
	if out.TimeZone == nil {
		tz := DefaultTimeZone
		out.TimeZone = &tz
	}
	if out.CardVelocityLimit == nil {
		var zero uint32
		out.CardVelocityLimit = &zero
	}
	if out.CardVelocityWindow == nil {
		d := DefaultCardVelocityWindow
		out.CardVelocityWindow = &d
	}
	if len(extra) > 0 {
		out.Extra = extra
	}
	return &out
}

// Clone returns a deep copy of s.
func (s *Settings) Clone() *Settings {
	if s == nil {
		return nil
	}
	c := *s
	c.EntryModes = slices.Clone(s.EntryModes)
	c.Extra = maps.Clone(s.Extra)
	clonePtr(&c.ReceiptHeader)
	clonePtr(&c.ReceiptFooter)
	clonePtr(&c.PerTransactionLimit)
	clonePtr(&c.DailyLimit)
	clonePtr(&c.OfflineFloorLimit)
	clonePtr(&c.HeartbeatInterval)
	clonePtr(&c.TimeZone)
	clonePtr(&c.CardVelocityLimit)
	clonePtr(&c.CardVelocityWindow)
	return &c
}

func clonePtr[T any](p **T) {
	if *p != nil {
		v := **p
		*p = &v
	}
}

// validate checks a layer about to be published; field paths start with
// prefix (e.g. "settings.").
func (s *Settings) validate(prefix string, v *violations) {
	if s == nil {
		return
	}
	receipt := func(field string, p *string) {
		if p == nil {
			return
		}
		switch {
		case !utf8.ValidString(*p):
			v.add(prefix+field, "must be valid UTF-8")
		case utf8.RuneCountInString(*p) > MaxReceiptText:
			v.add(prefix+field, "must be at most %d characters", MaxReceiptText)
		case pan.Contains(*p):
			v.add(prefix+field, "must not contain a card number")
		}
	}
	receipt("receipt_header", s.ReceiptHeader)
	receipt("receipt_footer", s.ReceiptFooter)

	seen := map[EntryMode]bool{}
	for i, m := range s.EntryModes {
		switch {
		case m < EntryChip || m > EntryQR:
			v.add(fmtIndex(prefix+"accepted_entry_modes", i), "must be a known entry mode, got %d", m)
		case seen[m]:
			v.add(fmtIndex(prefix+"accepted_entry_modes", i), "repeats an entry mode")
		}
		seen[m] = true
	}

	currency := ""
	money := func(field string, m *Money) {
		if m == nil {
			return
		}
		if !iso4217.Valid(m.Currency) {
			v.add(prefix+field+".currency", "must be the upper-case ISO 4217 code of a current currency, e.g. \"NZD\"")
		} else if currency != "" && m.Currency != currency {
			v.add(prefix+field+".currency", "must equal the currency of the layer's other limits (%s)", currency)
		} else {
			currency = m.Currency
		}
		switch {
		case m.MinorUnits < 0:
			v.add(prefix+field+".minor_units", "must not be negative")
		case m.MinorUnits > MaxMinorUnits:
			v.add(prefix+field+".minor_units", "must be at most %d", int64(MaxMinorUnits))
		}
	}
	money("per_transaction_limit", s.PerTransactionLimit)
	money("daily_limit", s.DailyLimit)
	money("offline_floor_limit", s.OfflineFloorLimit)

	if d := s.HeartbeatInterval; d != nil && (*d < MinHeartbeatInterval || *d > MaxHeartbeatInterval) {
		v.add(prefix+"heartbeat_interval", "must be between %s and %s", MinHeartbeatInterval, MaxHeartbeatInterval)
	}
	if tz := s.TimeZone; tz != nil {
		switch {
		case *tz == "" || len(*tz) > MaxTimeZone:
			v.add(prefix+"time_zone", "must be an IANA time zone name of 1-%d characters", MaxTimeZone)
		case *tz == "Local":
			v.add(prefix+"time_zone", "must name a zone; \"Local\" depends on the server")
		default:
			if _, err := time.LoadLocation(*tz); err != nil {
				v.add(prefix+"time_zone", "must be a known IANA time zone, e.g. \"Europe/Berlin\"")
			}
		}
	}
	if d := s.CardVelocityWindow; d != nil && (*d < MinCardVelocityWindow || *d > MaxCardVelocityWindow) {
		v.add(prefix+"card_velocity_window", "must be between %s and %s", MinCardVelocityWindow, MaxCardVelocityWindow)
	}

	if len(s.Extra) > MaxExtraKeys {
		v.add(prefix+"extra", "must have at most %d keys", MaxExtraKeys)
		return
	}
	size := 0
	for _, k := range slices.Sorted(maps.Keys(s.Extra)) {
		val := s.Extra[k]
		size += len(k) + len(val)
		field := prefix + "extra[" + safeKey(k) + "]"
		switch {
		case !reExtraKey.MatchString(k):
			v.add(field, "key must be 1-64 letters, digits, '.', '_' or '-'")
		case !utf8.ValidString(val):
			v.add(field, "must be valid UTF-8")
		case utf8.RuneCountInString(val) > MaxExtraValue:
			v.add(field, "must be at most %d characters", MaxExtraValue)
		case pan.Contains(val):
			v.add(field, "must not contain a card number")
		}
	}
	if size > MaxExtraBytes {
		v.add(prefix+"extra", "must total at most %d bytes of keys and values", MaxExtraBytes)
	}
}

// safeKey quotes a key for a field path without echoing arbitrary bytes.
func safeKey(k string) string {
	if reExtraKey.MatchString(k) {
		return k
	}
	return "?"
}

func fmtIndex(field string, i int) string {
	return field + "[" + strconv.Itoa(i) + "]"
}
