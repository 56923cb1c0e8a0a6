package webhook

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/posfleet/posfleet/server/store"
)

// Keys. Each endpoint has a config record (written by the administrative
// calls), a state record (written only by its delivery worker), its
// deliveries and its queued redeliveries.
var (
	prefixEndpoint   = []byte("wh/ep/") // wh/ep/<endpoint>: endpointRec
	prefixState      = []byte("wh/st/") // wh/st/<endpoint>: stateRec
	prefixDelivery   = []byte("wh/dl/") // wh/dl/<endpoint>/<audit id>: deliveryRec
	prefixRedelivery = []byte("wh/rd/") // wh/rd/<endpoint>/<audit id>: empty
	prefixDeleted    = []byte("wh/dd/") // wh/dd/<endpoint>: deleted, deliveries being swept
)

const schemaV1 = 1

// endpointRec is an endpoint's configuration. Secret is stored because
// every delivery is signed with it; it is never logged and is returned
// only by Create and RotateSecret.
type endpointRec struct {
	ID            string    `json:"id"`
	URL           string    `json:"u"`
	Events        []Event   `json:"ev"`
	Description   string    `json:"d,omitempty"`
	Disabled      bool      `json:"x,omitempty"`
	Secret        string    `json:"sec"`
	Created       time.Time `json:"c"`
	Updated       time.Time `json:"up"`
	SecretRotated time.Time `json:"sr"`
}

// stateRec is an endpoint's delivery progress.
type stateRec struct {
	// Cursor is the audit ID up to which the log has been read.
	Cursor uint64 `json:"cur"`
	// Head is the audit ID of the delivery in progress (0: none).
	Head                uint64    `json:"h,omitempty"`
	Delivered           uint64    `json:"ok,omitempty"`
	Failed              uint64    `json:"f,omitempty"`
	LastAttempt         time.Time `json:"la,omitzero"`
	LastSuccess         time.Time `json:"ls,omitzero"`
	LastFailure         time.Time `json:"lf,omitzero"`
	LastError           string    `json:"le,omitempty"`
	LastStatusCode      int       `json:"lc,omitempty"`
	ConsecutiveFailures uint32    `json:"cf,omitempty"`
}

// deliveryRec is the delivery of one event to one endpoint.
type deliveryRec struct {
	AuditID        uint64         `json:"a"`
	Event          Event          `json:"e"`
	Status         DeliveryStatus `json:"s"`
	Attempts       uint32         `json:"n,omitempty"`
	Redeliveries   uint32         `json:"r,omitempty"`
	Created        time.Time      `json:"c"`
	First          time.Time      `json:"fa,omitzero"`
	Last           time.Time      `json:"la,omitzero"`
	Next           time.Time      `json:"na,omitzero"`
	Finished       time.Time      `json:"fin,omitzero"`
	LastError      string         `json:"le,omitempty"`
	LastStatusCode int            `json:"lc,omitempty"`
}

func keyEndpoint(id string) []byte { return append(append([]byte{}, prefixEndpoint...), id...) }
func keyState(id string) []byte    { return append(append([]byte{}, prefixState...), id...) }
func keyDeleted(id string) []byte  { return append(append([]byte{}, prefixDeleted...), id...) }

// endpointPrefix returns "<prefix><endpoint>/".
func endpointPrefix(prefix []byte, id string) []byte {
	return append(append(append([]byte{}, prefix...), id...), '/')
}

func keyDelivery(id string, auditID uint64) []byte {
	return store.AppendUint64(endpointPrefix(prefixDelivery, id), auditID)
}

func keyRedelivery(id string, auditID uint64) []byte {
	return store.AppendUint64(endpointPrefix(prefixRedelivery, id), auditID)
}

func encode(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("webhook: encode: %w", err)
	}
	return append([]byte{schemaV1}, b...), nil
}

func decode(b []byte, v any) error {
	if len(b) == 0 || b[0] != schemaV1 {
		return fmt.Errorf("webhook: unknown schema version")
	}
	return json.Unmarshal(b[1:], v)
}

// setRec encodes v and stages it at key.
func setRec(tx *store.Txn, key []byte, v any) error {
	b, err := encode(v)
	if err != nil {
		return err
	}
	return tx.Set(key, b)
}

// getRec reads and decodes the record at key.
func getRec(tx *store.Txn, key []byte, v any) error {
	b, err := tx.Get(key)
	if err != nil {
		return err
	}
	return decode(b, v)
}

// deletePrefix deletes up to limit keys under prefix and reports how many.
func deletePrefix(db *store.DB, prefix []byte, limit int) (int, error) {
	var keys [][]byte
	err := db.View(func(tx *store.Txn) error {
		return tx.Iterate(prefix, nil, func(k, _ []byte) error {
			if len(keys) == limit {
				return store.ErrStop
			}
			keys = append(keys, append([]byte{}, k...))
			return nil
		})
	})
	if err != nil || len(keys) == 0 {
		return 0, err
	}
	return len(keys), db.UpdateReserved(func(tx *store.Txn) error {
		for _, k := range keys {
			if err := tx.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}
