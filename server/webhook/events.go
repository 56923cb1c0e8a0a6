package webhook

import (
	"slices"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/configpush"
)

// Event is the name of a kind of webhook event, as endpoints subscribe to
// it and as the body's "type" carries it.
type Event string

// Webhook events.
const (
	// MerchantMismatch: a terminal claimed a merchant it is not bound to.
	MerchantMismatch Event = "merchant_mismatch"
	// RolloutHalted: a config rollout stopped on its failure ratio or gate,
	// or its payment gate rolled it back (auto-rollback).
	RolloutHalted Event = "rollout_halted"
	// RolloutCompleted: a config rollout reached every targeted terminal.
	RolloutCompleted Event = "rollout_completed"
	// TerminalOffline: a terminal went without contact past the offline
	// threshold.
	TerminalOffline Event = "terminal_offline"
	// BatchOutOfBalance: a terminal closed its batch with totals that
	// differ from the server's.
	BatchOutOfBalance Event = "batch_out_of_balance"
	// ConfigRejected: a terminal rejected a config version.
	ConfigRejected Event = "config_rejected"
	// DiskLow: the server's data disk fell below its free-space reserve.
	DiskLow Event = "disk_low"
)

// Events lists every webhook event, in documentation order.
var Events = []Event{MerchantMismatch, RolloutHalted, RolloutCompleted, TerminalOffline, BatchOutOfBalance, ConfigRejected, DiskLow}

// Valid reports whether e is a known event.
func (e Event) Valid() bool { return slices.Contains(Events, e) }

// auditTypes maps the audit types that carry webhook events; a
// RolloutChanged event is a webhook event only in some states.
var auditTypes = map[audit.Type]Event{
	audit.MerchantMismatch:  MerchantMismatch,
	audit.TerminalOffline:   TerminalOffline,
	audit.BatchOutOfBalance: BatchOutOfBalance,
	audit.ConfigRejected:    ConfigRejected,
	audit.DiskLow:           DiskLow,
}

// typesFor returns the audit types an endpoint subscribed to evs follows.
func typesFor(evs []Event) []audit.Type {
	var ts []audit.Type
	for t, e := range auditTypes {
		if slices.Contains(evs, e) {
			ts = append(ts, t)
		}
	}
	if slices.Contains(evs, RolloutHalted) || slices.Contains(evs, RolloutCompleted) {
		ts = append(ts, audit.RolloutChanged)
	}
	slices.Sort(ts)
	return ts
}

// eventOf returns the webhook event an audit event carries, if any.
func eventOf(e *audit.Event) (Event, bool) {
	if w, ok := auditTypes[e.Type]; ok {
		return w, true
	}
	if e.Type == audit.RolloutChanged {
		// State changes carry the new state; gate verdicts carry none.
		switch e.Attributes["state"] {
		case "HALTED":
			return RolloutHalted, true
		case "ABORTED":
			// A payment gate's automatic rollback is a halt the
			// operator must hear of; an operator's own abort is not.
			if e.Attributes[configpush.RolledBackByAttr] != "" {
				return RolloutHalted, true
			}
		case "COMPLETED":
			return RolloutCompleted, true
		}
	}
	return "", false
}
