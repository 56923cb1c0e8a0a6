package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/text/currency"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// The CLI enters and shows amounts in major units with the currency's
// decimals ("12.50 NZD", "1250 JPY"); the API carries minor units
// (Money.minor_units). The decimals come from the Unicode CLDR currency
// data in golang.org/x/text/currency (standard digits: NZD 2, JPY 0,
// BHD 3).
//
// Accepted input: "12.50NZD", "12.50 NZD", "NZD 12.50", "NZD12.50", a
// bare "12.50" where the command names the currency separately, and, for
// compatibility with earlier scripts, "NZD:1250", which keeps meaning
// minor units.

// currencyDigits returns the number of decimals of an ISO 4217 code.
func currencyDigits(code string) (int, error) {
	u, err := currency.ParseISO(code)
	if err != nil {
		return 0, fmt.Errorf("unknown currency %q: want an ISO 4217 code such as NZD", code)
	}
	scale, _ := currency.Standard.Rounding(u)
	return scale, nil
}

var (
	amountThenCode = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]{3})$`)
	codeThenAmount = regexp.MustCompile(`^([A-Za-z]{3})\s*([0-9]+(?:\.[0-9]+)?)$`)
	bareAmount     = regexp.MustCompile(`^[0-9]+(?:\.[0-9]+)?$`)
)

// parseMoney parses an amount as documented above. defaultCurrency is used
// for a bare number ("" when the command has no separate currency).
func parseMoney(value, defaultCurrency string) (*pb.Money, error) {
	v := strings.TrimSpace(value)
	if m, err := parseMoneyCase(v, value, defaultCurrency); err != nil || m.GetCurrency() == strings.ToUpper(m.GetCurrency()) {
		return m, err
	}
	// Currency codes are taken as typed, never upper-cased: "nzd" is not
	// an ISO 4217 code, and guessing what was meant is how a limit lands in
	// the wrong currency.
	return nil, fmt.Errorf("%q: currency codes are upper case ISO 4217 codes, e.g. NZD", value)
}

// parseMoneyCase is parseMoney without the case check.
func parseMoneyCase(v, value, defaultCurrency string) (*pb.Money, error) {
	if cur, minor, ok := strings.Cut(v, ":"); ok {
		n, err := strconv.ParseInt(minor, 10, 64)
		if err != nil || n < 0 || len(cur) != 3 {
			return nil, fmt.Errorf("%q: want CUR:MINOR_UNITS, e.g. NZD:1250 for 12.50 NZD", value)
		}
		return &pb.Money{Currency: cur, MinorUnits: n}, nil
	}
	var num, cur string
	switch {
	case amountThenCode.MatchString(v):
		m := amountThenCode.FindStringSubmatch(v)
		num, cur = m[1], m[2]
	case codeThenAmount.MatchString(v):
		m := codeThenAmount.FindStringSubmatch(v)
		cur, num = m[1], m[2]
	case bareAmount.MatchString(v) && defaultCurrency != "":
		num, cur = v, defaultCurrency
	default:
		return nil, fmt.Errorf("%q: want an amount with its currency, e.g. 12.50NZD, \"12.50 NZD\" or NZD:1250 (minor units)", value)
	}
	digits, err := currencyDigits(cur)
	if err != nil {
		return nil, err
	}
	whole, frac, _ := strings.Cut(num, ".")
	if len(frac) > digits {
		if digits == 0 {
			return nil, fmt.Errorf("%q: %s has no decimals", value, cur)
		}
		return nil, fmt.Errorf("%q: %s has %d decimals", value, cur, digits)
	}
	frac += strings.Repeat("0", digits-len(frac))
	n, err := strconv.ParseInt(whole+frac, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%q: amount too large", value)
	}
	return &pb.Money{Currency: cur, MinorUnits: n}, nil
}

// moneyText shows m in major units with its currency: "12.50 NZD",
// "-3.00 NZD", "1250 JPY"; "none" for no amount. A currency without known
// decimals shows its minor units ("XYZ:1250").
func moneyText(m *pb.Money) string {
	if m == nil {
		return "none"
	}
	digits, err := currencyDigits(m.GetCurrency())
	if err != nil {
		return fmt.Sprintf("%s:%d", m.GetCurrency(), m.GetMinorUnits())
	}
	n := m.GetMinorUnits()
	sign := ""
	u := uint64(n)
	if n < 0 {
		sign, u = "-", uint64(-n) // -MinInt64 wraps to its own magnitude as uint64
	}
	s := strconv.FormatUint(u, 10)
	if digits > 0 {
		if len(s) <= digits {
			s = strings.Repeat("0", digits-len(s)+1) + s
		}
		s = s[:len(s)-digits] + "." + s[len(s)-digits:]
	}
	return sign + s + " " + m.GetCurrency()
}
