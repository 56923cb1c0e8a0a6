package fleet

import "time"

// State is the lifecycle state of a terminal. Its values equal the
// protocol's TerminalState numbers.
type State int32

// Terminal states.
const (
	StateUnspecified State = iota
	// StateProvisioned: created by an operator, waiting for Register.
	StateProvisioned
	// StateActive: registered and allowed to transact.
	StateActive
	// StateSuspended: refused until reactivated.
	StateSuspended
	// StateRetired: retired for good; its serial number is free again.
	StateRetired
)

// String returns the state's protocol name without prefix, e.g. "ACTIVE".
func (s State) String() string {
	switch s {
	case StateProvisioned:
		return "PROVISIONED"
	case StateActive:
		return "ACTIVE"
	case StateSuspended:
		return "SUSPENDED"
	case StateRetired:
		return "RETIRED"
	}
	return "UNSPECIFIED"
}

// Connectivity is a terminal's reachability derived from its latest contact
// (any authenticated call, a registration or a heartbeat). Its values equal
// the protocol's Connectivity numbers.
type Connectivity int32

// Connectivity values.
const (
	ConnectivityUnspecified Connectivity = iota
	// Online: last contact within twice the heartbeat interval.
	Online
	// Stale: last contact between twice and ten times the interval ago.
	Stale
	// Offline: last contact more than ten times the interval ago.
	Offline
	// NeverSeen: no contact yet.
	NeverSeen
)

// String returns the connectivity's protocol name without prefix.
func (c Connectivity) String() string {
	switch c {
	case Online:
		return "ONLINE"
	case Stale:
		return "STALE"
	case Offline:
		return "OFFLINE"
	case NeverSeen:
		return "NEVER_SEEN"
	}
	return "UNSPECIFIED"
}

// connectivity classifies a last contact at last, seen at now, for a
// terminal that should call in every interval.
func connectivity(last, now time.Time, interval time.Duration) Connectivity {
	if last.IsZero() {
		return NeverSeen
	}
	age := now.Sub(last)
	switch {
	case age <= 2*interval:
		return Online
	case age <= 10*interval:
		return Stale
	}
	return Offline
}

// Address is a postal address.
type Address struct {
	Line1      string `json:"l1,omitempty"`
	Line2      string `json:"l2,omitempty"`
	City       string `json:"c,omitempty"`
	Region     string `json:"r,omitempty"`
	PostalCode string `json:"pc,omitempty"`
	Country    string `json:"cc,omitempty"`
}

// Merchant is a business card payments are made to, identified by its
// acquirer merchant ID.
type Merchant struct {
	ID          string  `json:"id"`
	LegalName   string  `json:"ln"`
	DisplayName string  `json:"dn,omitempty"`
	MCC         string  `json:"mcc"`
	Currency    string  `json:"cur"`
	Address     Address `json:"addr"`
	// CrossTerminalRefunds lets any terminal of the merchant refund a sale
	// another of its terminals took; without it only the terminal that
	// took the sale may refund it.
	CrossTerminalRefunds bool `json:"xtr,omitempty"`
	// IdentityVersion starts at 1 and increases with every update.
	IdentityVersion uint64    `json:"iv"`
	Created         time.Time `json:"ct"`
	Updated         time.Time `json:"ut"`
	// Archived is when the merchant was archived; zero while it is live.
	Archived time.Time `json:"ar,omitzero"`
}

// MerchantUpdate names the merchant fields UpdateMerchant changes; nil
// fields are left alone.
type MerchantUpdate struct {
	LegalName   *string
	DisplayName *string
	MCC         *string
	Currency    *string
	Address     *Address
	// CrossTerminalRefunds sets Merchant.CrossTerminalRefunds.
	CrossTerminalRefunds *bool
}

// Store is a branch of a merchant where terminals are installed.
type Store struct {
	MerchantID string  `json:"mid"`
	ID         string  `json:"id"`
	Name       string  `json:"n"`
	Address    Address `json:"addr"`
	// TimeZone is an IANA zone name; empty means UTC.
	TimeZone string    `json:"tz,omitempty"`
	Created  time.Time `json:"ct"`
	// Archived is when the store was archived; zero while it is live.
	Archived time.Time `json:"ar,omitzero"`
}

// Device describes a terminal's hardware and software, as it reported at
// registration.
type Device struct {
	Model        string `json:"mo,omitempty"`
	Manufacturer string `json:"mf,omitempty"`
	Firmware     string `json:"fw,omitempty"`
	App          string `json:"app,omitempty"`
}

// PaperStatus is a receipt printer's paper state (protocol numbers).
type PaperStatus int32

// NetworkType is a terminal's network link (protocol numbers).
type NetworkType int32

// Status is what a terminal reports in a heartbeat. It is stored with the
// terminal's live status under the short JSON names of its tags, which are
// the on-disk format (see terminalRec).
type Status struct {
	FirmwareVersion string        `json:"fw,omitempty"`
	AppVersion      string        `json:"app,omitempty"`
	ConfigVersion   uint64        `json:"cv,omitempty"`
	HasBattery      bool          `json:"hb,omitempty"`
	BatteryPercent  uint32        `json:"bp,omitempty"`
	Charging        bool          `json:"ch,omitempty"`
	Paper           PaperStatus   `json:"pa,omitempty"`
	Network         NetworkType   `json:"nw,omitempty"`
	HasSignal       bool          `json:"hs,omitempty"` // stored as "hs": has signal
	SignalDBm       int32         `json:"sd,omitempty"`
	Uptime          time.Duration `json:"up,omitempty"`
	QueuedOffline   uint32        `json:"qo,omitempty"`
}

// FaultSeverity grades a fault (protocol numbers).
type FaultSeverity int32

// Fault is a problem a terminal observed.
type Fault struct {
	Component string        `json:"co"`
	Code      string        `json:"cd,omitempty"`
	Message   string        `json:"m,omitempty"`
	Time      time.Time     `json:"t"`
	Severity  FaultSeverity `json:"s,omitempty"`
}

// Terminal is a point-of-sale terminal as operators see it.
type Terminal struct {
	ID         string
	Serial     string
	MerchantID string
	StoreID    string
	Label      string
	State      State
	// StateReason is why it was suspended or retired.
	StateReason string
	Device      Device
	// IdentityVersion is the version of its signed merchant identity.
	IdentityVersion uint64
	Created         time.Time
	// Registered is when it last registered; zero if never.
	Registered time.Time
	// EnrollmentExpires is when its pending enrollment code expires; zero
	// when no code is pending.
	EnrollmentExpires time.Time

	// LastStatus is the latest heartbeat's status; LastHeartbeat its time
	// (zero if none).
	LastStatus    Status
	LastHeartbeat time.Time
	// LastSeen is the latest contact of any kind: an authenticated call, a
	// registration or a heartbeat (zero if none), to the second.
	LastSeen time.Time
	// Connectivity is derived from LastSeen and the heartbeat interval.
	Connectivity Connectivity
	// RecentFaults are the latest reported faults, newest first (at most 16).
	RecentFaults []Fault
	// DesiredConfigVersion is the config version it should run.
	DesiredConfigVersion uint64
}

// TerminalRef is the binding of a terminal: what other components (config
// rollouts, payments) need to know about it.
type TerminalRef struct {
	TerminalID string
	MerchantID string
	StoreID    string
	State      State
}

// Binding is everything the payment engine needs about a terminal's
// merchant binding, read from memory.
type Binding struct {
	TerminalID string
	MerchantID string
	StoreID    string
	State      State
	// Currency and MCC are the merchant's.
	Currency string
	MCC      string
	// TimeZone is the store's IANA zone ("" means UTC).
	TimeZone        string
	IdentityVersion uint64
	// CrossTerminalRefunds is the merchant's refund policy (see
	// Merchant.CrossTerminalRefunds).
	CrossTerminalRefunds bool
}

// CommandType is the kind of a remote command (protocol numbers).
type CommandType int32

// Remote command types.
const (
	CommandUnspecified CommandType = iota
	CommandReboot
	CommandUploadLogs
	CommandResyncConfig
	CommandLock
	// CommandRotateCredential asks the terminal to rotate its credential
	// (RotateCredential, then acknowledge with the new one).
	CommandRotateCredential
)

// CommandState is the delivery state of a remote command (protocol numbers).
type CommandState int32

// Command states.
const (
	CommandStateUnspecified CommandState = iota
	CommandPending
	CommandDelivered
	CommandSucceeded
	CommandFailed
	CommandExpired
)

// final reports whether no further change can happen.
func (s CommandState) final() bool { return s >= CommandSucceeded }

// Command is a remote command queued for a terminal.
type Command struct {
	ID         string            `json:"id"`
	TerminalID string            `json:"tid"`
	Type       CommandType       `json:"ty"`
	Parameters map[string]string `json:"p,omitempty"`
	Created    time.Time         `json:"ct"`
	Expires    time.Time         `json:"et"`
	State      CommandState      `json:"st"`
	Detail     string            `json:"d,omitempty"`
	Acked      time.Time         `json:"at,omitzero"`
}
