package configpush

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/posfleet/posfleet/server/store"
)

// Storage keys. Versions are big-endian so that prefix iteration is in
// version order.
var (
	keySeq        = []byte("cp/seq")   // last issued version
	prefixRollout = []byte("cp/ro/")   // cp/ro/<version>: rolloutRec
	prefixAck     = []byte("cp/ack/")  // cp/ack/<version>/<terminal>: ackRec
	prefixBind    = []byte("cp/bind/") // cp/bind/<terminal>: bindRec
)

const schemaV1 = 1

func keyRollout(v uint64) []byte {
	return store.AppendUint64(append([]byte{}, prefixRollout...), v)
}

func keyAck(v uint64, terminalID string) []byte {
	k := store.AppendUint64(append([]byte{}, prefixAck...), v)
	return append(append(k, '/'), terminalID...)
}

func keyBind(terminalID string) []byte {
	return append(append([]byte{}, prefixBind...), terminalID...)
}

// parseAckKey splits cp/ack/<version>/<terminal>.
func parseAckKey(k []byte) (uint64, string, bool) {
	rest := k[len(prefixAck):]
	if len(rest) < 10 || rest[8] != '/' {
		return 0, "", false
	}
	return binary.BigEndian.Uint64(rest[:8]), string(rest[9:]), true
}

// rolloutRec is the stored form of a rollout, including its settings layer.
//
// The JSON names are short because every rollout, acknowledgement and
// binding is stored with them: they are the on-disk format and are kept as
// they are (renaming one would lose that field of every stored record).
// The Go field names say what each one is; a new field gets a new name.
type rolloutRec struct {
	Version     uint64    `json:"v"`
	Scope       Scope     `json:"sc"`
	Settings    *Settings `json:"s"`
	Plan        Plan      `json:"p"`
	Description string    `json:"d,omitempty"`
	Actor       string    `json:"a,omitempty"`
	State       State     `json:"st"`
	// Stage is the index of the current stage.
	Stage int `json:"stg"`
	// StageVersions[i] is the version issued to the terminals first included
	// at stage i; StageVersions[0] is Version. StageTimes[i] is when stage i
	// started.
	StageVersions []uint64    `json:"sv"`
	StageTimes    []time.Time `json:"stt"`
	// HealthSince starts the failure-ratio window of the current stage:
	// the stage start, or the resume of a halted rollout. HealthEpoch
	// counts those starts; an acknowledgement is in the window when it
	// carries the current epoch (records written before epochs existed
	// have 0 everywhere and fall back to comparing times).
	HealthSince time.Time `json:"hs"` // stored as "hs": health since
	HealthEpoch uint64    `json:"he,omitempty"`
	// Awaiting is set on a rollout paused because its stage is healthy and
	// the plan does not auto-advance: resuming advances.
	Awaiting bool   `json:"aw,omitempty"`
	Reason   string `json:"r,omitempty"`
	// Fallback is the version issued to the rollout's terminals when it was
	// aborted; FallbackTime when.
	Fallback     uint64    `json:"fb,omitempty"`
	FallbackTime time.Time `json:"fbt,omitzero"` // stored as "fbt": fallback time
	Created      time.Time `json:"ct"`
	Updated      time.Time `json:"ut"`
	// Dropped rollouts no longer affect any terminal (a later rollout at the
	// scope completed); Final holds their counters.
	Dropped bool    `json:"dr,omitempty"`
	Final   *counts `json:"fc,omitempty"`
	// RollbackOf is the version a rollback publish undid.
	RollbackOf uint64 `json:"rb,omitempty"`
}

// counts are a rollout's progress counters.
type counts struct {
	Targeted     uint64  `json:"tg"`
	Included     uint64  `json:"in"`
	Applied      uint64  `json:"ap"`
	Rejected     uint64  `json:"rj"`
	FailureRatio float64 `json:"fr"`
}

// ackRec is a terminal's latest acknowledgement of a rollout's version.
type ackRec struct {
	Result  AckResult `json:"r"`
	Detail  string    `json:"d,omitempty"`
	Version uint64    `json:"v"`
	Time    time.Time `json:"t"`
	// Epoch is the rollout's HealthEpoch when the acknowledgement came.
	Epoch uint64 `json:"ep,omitempty"`
}

// bindRec is the version issued to a terminal when it was last rebound.
type bindRec struct {
	Version uint64    `json:"v"`
	Time    time.Time `json:"t"`
}

func encode(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("configpush: encode: %w", err)
	}
	return append([]byte{schemaV1}, b...), nil
}

func decode(b []byte, v any) error {
	if len(b) == 0 || b[0] != schemaV1 {
		return errors.New("configpush: unknown record schema")
	}
	return json.Unmarshal(b[1:], v)
}

// setOp encodes v into a set of key.
func setOp(key []byte, v any) (op, error) {
	b, err := encode(v)
	if err != nil {
		return op{}, err
	}
	return op{key: key, val: b}, nil
}

func seqOp(v uint64) op {
	return op{key: keySeq, val: store.AppendUint64(nil, v)}
}
