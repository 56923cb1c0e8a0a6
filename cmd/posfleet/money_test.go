package main

import (
	"strings"
	"testing"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

func TestParseMoney(t *testing.T) {
	for _, tc := range []struct {
		in, def string
		cur     string
		minor   int64
		wantErr string
	}{
		{in: "12.50NZD", cur: "NZD", minor: 1250},
		{in: "12.5 nzd", wantErr: "upper case"},
		{in: "nzd:100", wantErr: "upper case"},
		{in: "NZD 12.50", cur: "NZD", minor: 1250},
		{in: "NZD12", cur: "NZD", minor: 1200},
		{in: "12.50", def: "NZD", cur: "NZD", minor: 1250},
		{in: "1250JPY", cur: "JPY", minor: 1250},
		{in: "1.234 BHD", cur: "BHD", minor: 1234},
		{in: "0.01NZD", cur: "NZD", minor: 1},
		{in: "NZD:1250", cur: "NZD", minor: 1250}, // minor units, as before
		{in: "12.505NZD", wantErr: "NZD has 2 decimals"},
		{in: "12.5JPY", wantErr: "JPY has no decimals"},
		{in: "12.50", wantErr: "want an amount with its currency"},
		{in: "12,50 NZD", wantErr: "want an amount"},
		{in: "-5NZD", wantErr: "want an amount"},
		{in: "12.50 QQQ", wantErr: "unknown currency"},
		{in: "NZD:12.50", wantErr: "want CUR:MINOR_UNITS"},
		{in: "99999999999999999999NZD", wantErr: "too large"},
	} {
		m, err := parseMoney(tc.in, tc.def)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseMoney(%q) = %v, %v; want error %q", tc.in, m, err, tc.wantErr)
			}
			continue
		}
		if err != nil || m.GetCurrency() != tc.cur || m.GetMinorUnits() != tc.minor {
			t.Errorf("parseMoney(%q, %q) = %v, %v; want %d %s", tc.in, tc.def, m, err, tc.minor, tc.cur)
		}
	}
}

func TestMoneyText(t *testing.T) {
	for _, tc := range []struct {
		m    *pb.Money
		want string
	}{
		{nil, "none"},
		{&pb.Money{Currency: "NZD", MinorUnits: 1250}, "12.50 NZD"},
		{&pb.Money{Currency: "NZD", MinorUnits: 5}, "0.05 NZD"},
		{&pb.Money{Currency: "NZD", MinorUnits: 0}, "0.00 NZD"},
		{&pb.Money{Currency: "NZD", MinorUnits: -310}, "-3.10 NZD"},
		{&pb.Money{Currency: "JPY", MinorUnits: 1250}, "1250 JPY"},
		{&pb.Money{Currency: "BHD", MinorUnits: 1234}, "1.234 BHD"},
		{&pb.Money{Currency: "Q!Q", MinorUnits: 1250}, "Q!Q:1250"},
	} {
		if got := moneyText(tc.m); got != tc.want {
			t.Errorf("moneyText(%v) = %q, want %q", tc.m, got, tc.want)
		}
		if tc.m != nil && !strings.Contains(tc.want, ":") {
			back, err := parseMoney(strings.TrimPrefix(tc.want, "-"), "")
			if tc.m.GetMinorUnits() >= 0 && (err != nil || back.GetMinorUnits() != tc.m.GetMinorUnits()) {
				t.Errorf("parseMoney(moneyText(%v)) = %v, %v; want the same amount", tc.m, back, err)
			}
		}
	}
}
