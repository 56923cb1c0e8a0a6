package configpush

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// field describes one typed field of Settings by its protocol name, so that
// patches, clears, diffs and provenance treat every field alike.
type field struct {
	name string
	// text returns the field's value for display and whether it is set.
	text func(s *Settings) (string, bool)
	// copy sets dst's field to src's.
	copy func(dst, src *Settings)
	// clear unsets the field.
	clear func(s *Settings)
}

// ptrField describes a pointer field of Settings.
func ptrField[T any](name string, at func(s *Settings) **T, show func(T) string) field {
	return field{
		name: name,
		text: func(s *Settings) (string, bool) {
			if p := *at(s); p != nil {
				return show(*p), true
			}
			return "", false
		},
		copy:  func(dst, src *Settings) { *at(dst) = *at(src) },
		clear: func(s *Settings) { *at(s) = nil },
	}
}

func moneyText(m Money) string { return m.Currency + ":" + strconv.FormatInt(m.MinorUnits, 10) }

// fields are the typed fields of Settings in protocol order; extra is
// handled key by key.
var fields = []field{
	ptrField("receipt_header", func(s *Settings) **string { return &s.ReceiptHeader }, strconv.Quote),
	ptrField("receipt_footer", func(s *Settings) **string { return &s.ReceiptFooter }, strconv.Quote),
	{
		name: "accepted_entry_modes",
		text: func(s *Settings) (string, bool) {
			if len(s.EntryModes) == 0 {
				return "", false
			}
			names := make([]string, len(s.EntryModes))
			for i, m := range s.EntryModes {
				names[i] = m.String()
			}
			return strings.Join(names, ","), true
		},
		copy:  func(dst, src *Settings) { dst.EntryModes = slices.Clone(src.EntryModes) },
		clear: func(s *Settings) { s.EntryModes = nil },
	},
	ptrField("per_transaction_limit", func(s *Settings) **Money { return &s.PerTransactionLimit }, moneyText),
	ptrField("daily_limit", func(s *Settings) **Money { return &s.DailyLimit }, moneyText),
	ptrField("offline_floor_limit", func(s *Settings) **Money { return &s.OfflineFloorLimit }, moneyText),
	ptrField("heartbeat_interval", func(s *Settings) **time.Duration { return &s.HeartbeatInterval }, time.Duration.String),
	ptrField("time_zone", func(s *Settings) **string { return &s.TimeZone }, strconv.Quote),
	ptrField("card_velocity_limit", func(s *Settings) **uint32 { return &s.CardVelocityLimit }, func(n uint32) string { return strconv.FormatUint(uint64(n), 10) }),
	ptrField("card_velocity_window", func(s *Settings) **time.Duration { return &s.CardVelocityWindow }, time.Duration.String),
}

// String returns the entry mode's lower-case name, e.g. "contactless".
func (m EntryMode) String() string {
	switch m {
	case EntryChip:
		return "chip"
	case EntryContactless:
		return "contactless"
	case EntrySwipe:
		return "swipe"
	case EntryManual:
		return "manual"
	case EntryQR:
		return "qr"
	}
	return "unspecified"
}

// ClearableFields lists the names PublishRequest.Clear accepts besides
// "extra.<key>".
func ClearableFields() []string {
	out := make([]string, 0, len(fields)+1)
	for _, f := range fields {
		out = append(out, f.name)
	}
	return append(out, "extra")
}

func fieldByName(name string) (field, bool) {
	for _, f := range fields {
		if f.name == name {
			return f, true
		}
	}
	return field{}, false
}

// extraText shows an extra value; an empty one removes an inherited key.
func extraText(v string) string {
	if v == "" {
		return `"" (removes the inherited key)`
	}
	return strconv.Quote(v)
}

// Change is one field that differs between two settings layers.
type Change struct {
	// Field is the protocol name, "extra.<key>" for a free-form key.
	Field string
	// Before and After are display values, "" when unset (see BeforeSet and
	// AfterSet).
	Before, After       string
	BeforeSet, AfterSet bool
}

// Diff returns the fields that differ from a to b, typed fields in protocol
// order and then extra keys in sorted order. A nil layer has nothing set.
func Diff(a, b *Settings) []Change {
	if a == nil {
		a = &Settings{}
	}
	if b == nil {
		b = &Settings{}
	}
	var out []Change
	for _, f := range fields {
		av, aok := f.text(a)
		bv, bok := f.text(b)
		if av != bv || aok != bok {
			out = append(out, Change{Field: f.name, Before: av, After: bv, BeforeSet: aok, AfterSet: bok})
		}
	}
	keys := slices.Sorted(maps.Keys(maps.Collect(func(yield func(string, bool) bool) {
		for k := range a.Extra {
			yield(k, true)
		}
		for k := range b.Extra {
			yield(k, true)
		}
	})))
	for _, k := range keys {
		av, aok := a.Extra[k]
		bv, bok := b.Extra[k]
		if av == bv && aok == bok {
			continue
		}
		c := Change{Field: "extra." + k, BeforeSet: aok, AfterSet: bok}
		if aok {
			c.Before = extraText(av)
		}
		if bok {
			c.After = extraText(bv)
		}
		out = append(out, c)
	}
	return out
}

// patch returns the layer a publish produces from the scope's current layer
// cur (nil: none). Without replace, the fields in is sets overwrite cur's
// and extra keys merge one by one; with replace, in is the whole new layer.
// Either way, clear names the fields (and "extra" or "extra.<key>") to
// remove, and a field of cur that the result would lose must be named
// there: nothing is removed by omission. Findings go to v with field paths
// under "settings." and "clear_fields".
func patch(cur, in *Settings, clear []string, replace bool, v *violations) *Settings {
	if cur == nil {
		cur = &Settings{}
	}
	if in == nil {
		in = &Settings{}
	}
	cleared := map[string]bool{}
	for i, name := range clear {
		f := fmtIndex("clear_fields", i)
		key, isExtraKey := strings.CutPrefix(name, "extra.")
		_, isField := fieldByName(name)
		switch {
		case cleared[name]:
			v.add(f, "repeats %q", name)
		case isExtraKey && !reExtraKey.MatchString(key):
			v.add(f, "must name an extra key of 1-64 letters, digits, '.', '_' or '-'")
		case isExtraKey:
			if _, ok := cur.Extra[key]; !ok {
				v.add(f, "extra key %q is not set in the current layer", key)
			} else if _, ok := in.Extra[key]; ok {
				v.add(f, "extra key %q is also set by this publish", key)
			}
		case name == "extra":
			if len(cur.Extra) == 0 {
				v.add(f, "extra is not set in the current layer")
			} else if len(in.Extra) > 0 {
				v.add(f, "extra is also set by this publish")
			}
		case isField:
			fd, _ := fieldByName(name)
			if _, ok := fd.text(cur); !ok {
				v.add(f, "%s is not set in the current layer", name)
			} else if _, ok := fd.text(in); ok {
				v.add(f, "%s is also set by this publish", name)
			}
		default:
			v.add(f, "must be one of %s or extra.<key>", strings.Join(ClearableFields(), ", "))
		}
		cleared[name] = true
	}
	var out *Settings
	if replace {
		for _, fd := range fields {
			was, set := fd.text(cur)
			if _, now := fd.text(in); set && !now && !cleared[fd.name] {
				v.add("settings."+fd.name, "is %s in the current layer; name it in clear_fields to remove it", was)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(cur.Extra)) {
			if _, now := in.Extra[k]; !now && !cleared["extra"] && !cleared["extra."+k] {
				v.add("settings.extra["+k+"]", "is set in the current layer; name extra.%s in clear_fields to remove it", k)
			}
		}
		out = in.Clone()
	} else {
		out = cur.Clone()
		for _, fd := range fields {
			if _, ok := fd.text(in); ok {
				fd.copy(out, in)
			}
		}
		for k, val := range in.Extra {
			if out.Extra == nil {
				out.Extra = map[string]string{}
			}
			out.Extra[k] = val
		}
	}
	for name := range cleared {
		if fd, ok := fieldByName(name); ok {
			fd.clear(out)
		} else if name == "extra" {
			out.Extra = nil
		} else if key, ok := strings.CutPrefix(name, "extra."); ok {
			delete(out.Extra, key)
		}
	}
	if len(out.Extra) == 0 {
		out.Extra = nil
	}
	return out
}
