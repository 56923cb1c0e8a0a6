package server

// The engines' views of each other, built by openEngines (wire.go): the
// fleet as config push's terminal directory, and the fleet and config push
// as the payment engine's directory.

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/posfleet/posfleet/server/configpush"
	"github.com/posfleet/posfleet/server/fleet"
	"github.com/posfleet/posfleet/server/payment"
)

// paymentDirectory answers the payment engine's questions about a terminal:
// its merchant binding, the merchant's currency and MCC, the store's time
// zone and suspension come from the fleet; limits, card velocity and
// accepted entry modes from the terminal's effective config. Both are read
// from memory on every request.
type paymentDirectory struct {
	fleet *fleet.Fleet
	// config is nil when config push is not wired: no limits apply.
	config *configpush.Engine
	logger *slog.Logger

	// zones caches loaded time zones by IANA name (*time.Location).
	zones sync.Map
	// warned remembers (terminal, config version) pairs already logged for
	// a limit in a currency other than the merchant's (struct{}).
	warned sync.Map
}

// Policy implements payment.Directory.
func (d *paymentDirectory) Policy(terminalID string) (payment.Policy, error) {
	b, ok := d.fleet.Binding(terminalID)
	if !ok {
		return payment.Policy{}, fleet.ErrTerminalNotFound
	}
	if b.State == fleet.StateRetired {
		return payment.Policy{}, fleet.ErrTerminalRetired
	}
	p := payment.Policy{
		TerminalID:       b.TerminalID,
		MerchantID:       b.MerchantID,
		StoreID:          b.StoreID,
		MerchantCurrency: b.Currency,
		MerchantMCC:      b.MCC,
		Location:         d.zone(b.TimeZone),
		Suspended:        b.State == fleet.StateSuspended,

		CrossTerminalRefunds: b.CrossTerminalRefunds,
	}
	if d.config == nil {
		return p, nil
	}
	cfg, ok := d.config.Effective(terminalID)
	if !ok || cfg.Settings == nil {
		return p, nil
	}
	s := cfg.Settings
	p.PerTransactionLimit = d.limit(terminalID, cfg.Version, "per_transaction_limit", s.PerTransactionLimit, b.Currency)
	p.DailyLimit = d.limit(terminalID, cfg.Version, "daily_limit", s.DailyLimit, b.Currency)
	if s.CardVelocityLimit != nil && s.CardVelocityWindow != nil {
		p.VelocityLimit, p.VelocityWindow = *s.CardVelocityLimit, *s.CardVelocityWindow
	}
	if len(s.EntryModes) > 0 && len(s.EntryModes) < len(configpush.AllEntryModes) {
		p.AcceptedEntryModes = make([]payment.EntryMode, len(s.EntryModes))
		for i, m := range s.EntryModes {
			p.AcceptedEntryModes[i] = payment.EntryMode(m)
		}
	}
	return p, nil
}

// limit converts a configured limit (payment.LimitIn). A limit that fails
// closed for want of the merchant's currency is told to the operator once
// per terminal, limit and config version.
func (d *paymentDirectory) limit(terminalID string, version uint64, name string, m *configpush.Money, currency string) payment.Limit {
	if m == nil {
		return payment.Limit{}
	}
	l, ok := payment.LimitIn(m.MinorUnits, m.Currency, currency)
	if !ok {
		type key struct {
			terminal, name string
			version        uint64
		}
		if _, seen := d.warned.LoadOrStore(key{terminalID, name, version}, struct{}{}); !seen {
			d.logger.Warn("limit in another currency than the merchant's applies as zero: payments are declined",
				"terminal_id", terminalID, "limit", name, "limit_currency", m.Currency,
				"merchant_currency", currency, "config_version", version)
		}
	}
	return l
}

// zone returns the location of an IANA zone name ("" and unknown names:
// UTC; store creation validates names, so unknown ones are not expected).
func (d *paymentDirectory) zone(name string) *time.Location {
	if name == "" {
		return time.UTC
	}
	if loc, ok := d.zones.Load(name); ok {
		return loc.(*time.Location)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		d.logger.Warn("store time zone unknown, using UTC for business dates", "time_zone", name, "err", err)
		loc = time.UTC
	}
	d.zones.Store(name, loc)
	return loc
}

// merchantPayments is the payment ledger as the fleet's payment history.
type merchantPayments struct{ e *Engines }

// MerchantHasPayments implements fleet.PaymentHistory.
func (m merchantPayments) MerchantHasPayments(ctx context.Context, merchantID string) (bool, error) {
	txs, _, err := m.e.Payments().ListTransactions(ctx, payment.TxFilter{MerchantID: merchantID}, 1, "")
	return len(txs) > 0, err
}

// fleetDirectory is the fleet as config push's terminal directory.
type fleetDirectory struct{ f *fleet.Fleet }

func (d fleetDirectory) Terminals() []configpush.TerminalRef {
	refs := d.f.Terminals()
	out := make([]configpush.TerminalRef, len(refs))
	zones := map[[2]string]string{}
	for i, r := range refs {
		k := [2]string{r.MerchantID, r.StoreID}
		tz, ok := zones[k]
		if !ok {
			tz = d.storeZone(r.MerchantID, r.StoreID)
			zones[k] = tz
		}
		out[i] = configpush.TerminalRef{TerminalID: r.TerminalID, MerchantID: r.MerchantID, StoreID: r.StoreID,
			Retired: r.State == fleet.StateRetired, TimeZone: tz}
	}
	return out
}

// storeZone returns the store's time zone, "" when it has none.
func (d fleetDirectory) storeZone(merchantID, storeID string) string {
	st, err := d.f.Store(merchantID, storeID)
	if err != nil {
		return ""
	}
	return st.TimeZone
}

func (d fleetDirectory) Terminal(id string) (configpush.TerminalRef, bool) {
	b, ok := d.f.Binding(id)
	if !ok {
		return configpush.TerminalRef{}, false
	}
	return configpush.TerminalRef{TerminalID: b.TerminalID, MerchantID: b.MerchantID, StoreID: b.StoreID,
		Retired: b.State == fleet.StateRetired, TimeZone: b.TimeZone}, true
}

func (d fleetDirectory) MerchantCurrency(id string) (string, bool) {
	m, err := d.f.Merchant(id)
	if err != nil {
		return "", false
	}
	return m.Currency, true
}

func (d fleetDirectory) Merchants() []string {
	var out []string
	token := ""
	for {
		page, next, err := d.f.ListMerchants(1000, token, false) // archived merchants take no payments
		if err != nil {
			return out
		}
		for _, m := range page {
			out = append(out, m.ID)
		}
		if next == "" {
			return out
		}
		token = next
	}
}

func (d fleetDirectory) MerchantExists(id string) bool {
	_, err := d.f.Merchant(id)
	return err == nil
}

func (d fleetDirectory) StoreExists(merchantID, storeID string) bool {
	_, err := d.f.Store(merchantID, storeID)
	return err == nil
}
