package fleet

import (
	"testing"

	"github.com/posfleet/posfleet/internal/recordcheck"
)

// The short JSON names of a stored terminal and of its live status are
// their on-disk format.
func TestStoredJSONNames(t *testing.T) {
	recordcheck.JSONNames(t, terminalRec{}, map[string]string{
		"ID": "id", "Serial": "sn", "MerchantID": "mid", "StoreID": "sid", "Label": "lb",
		"State": "st", "StateReason": "sr", "Device": "dev", "IdentityOffset": "io",
		"Created": "ct", "Registered": "rt", "CredHash": "ch",
		"EnrollHash": "eh", "EnrollExpires": "ee", "UsedEnrollHash": "uh",
		"EnrollIssued": "ei", "NextCredHash": "nc",
	})
	recordcheck.JSONNames(t, Status{}, map[string]string{
		"FirmwareVersion": "fw", "AppVersion": "app", "ConfigVersion": "cv", "HasBattery": "hb",
		"BatteryPercent": "bp", "Charging": "ch", "Paper": "pa", "Network": "nw",
		"HasSignal": "hs", "SignalDBm": "sd", "Uptime": "up", "QueuedOffline": "qo",
	})
}
