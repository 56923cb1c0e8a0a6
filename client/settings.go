package client

import (
	"fmt"
	"time"
	"unicode/utf8"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// Bounds of Settings.heartbeat_interval (see common.proto).
const (
	MinHeartbeatInterval = 5 * time.Second
	MaxHeartbeatInterval = time.Hour
)

// CheckSettings reports the first rule of common.proto's Settings that s
// breaks, or nil: a heartbeat_interval outside 5s-1h, an entry mode or
// card_velocity_window that cannot be, a negative limit, an extra key or
// value out of its format. A server never pushes such settings; a
// terminal that receives them (a faulty server, a tampering middlebox)
// rejects the version rather than run it. WatchConfig checks every pushed
// config with it before Apply.
func CheckSettings(s *pb.Settings) error {
	if d := s.GetHeartbeatInterval(); d != nil {
		if err := d.CheckValid(); err != nil {
			return fmt.Errorf("settings: heartbeat_interval: %v", err)
		}
		if v := d.AsDuration(); v < MinHeartbeatInterval || v > MaxHeartbeatInterval {
			return fmt.Errorf("settings: heartbeat_interval %v is outside %v-%v", v, MinHeartbeatInterval, MaxHeartbeatInterval)
		}
	}
	if d := s.GetCardVelocityWindow(); d != nil && (d.CheckValid() != nil || d.AsDuration() <= 0) {
		return fmt.Errorf("settings: card_velocity_window %v is not a positive duration", d.AsDuration())
	}
	for _, m := range s.GetAcceptedEntryModes() {
		if _, known := pb.EntryMode_name[int32(m)]; !known || m == pb.EntryMode_ENTRY_MODE_UNSPECIFIED {
			return fmt.Errorf("settings: accepted_entry_modes holds %d, not an entry mode", m)
		}
	}
	for _, l := range []struct {
		name string
		m    *pb.Money
	}{{"per_transaction_limit", s.GetPerTransactionLimit()}, {"daily_limit", s.GetDailyLimit()}, {"offline_floor_limit", s.GetOfflineFloorLimit()}} {
		if l.m.GetMinorUnits() < 0 {
			return fmt.Errorf("settings: %s is negative", l.name)
		}
	}
	for k, v := range s.GetExtra() {
		if !extraKey(k) {
			return fmt.Errorf("settings: extra key %q is not 1-64 letters, digits, '.', '_' or '-'", k)
		}
		if utf8.RuneCountInString(v) > 1024 {
			return fmt.Errorf("settings: extra value of %q is longer than 1024 characters", k)
		}
	}
	return nil
}

// extraKey reports whether k is a valid Settings.extra key.
func extraKey(k string) bool {
	if k == "" || len(k) > 64 {
		return false
	}
	for _, c := range k {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}
