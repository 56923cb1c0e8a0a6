package fleet

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/store"
)

// prefixOffline marks terminals reported offline: fo/<terminal> → the last
// contact (RFC 3339) at the time of the report.
var prefixOffline = []byte("fo/")

// offlineBatch bounds the reports committed in one transaction.
const offlineBatch = 256

// OfflineDetector reports active terminals that went offline (no contact
// for more than ten heartbeat intervals, see Connectivity) with a
// TERMINAL_OFFLINE audit event, once per absence: the event is committed
// with a durable mark, which the terminal's next contact clears. Sweep is
// called periodically by the server; it is safe for concurrent use.
type OfflineDetector struct {
	f *Fleet
	// start is when the detector was made: a terminal is not offline until
	// ten intervals have passed since then too, so that a server down for
	// a while does not report the whole fleet before it could call in.
	start time.Time

	mu sync.Mutex // serializes Sweep; guards marked
	// marked holds the terminals reported offline and not seen since,
	// as stored under prefixOffline.
	marked map[string]bool
}

// NewOfflineDetector returns a detector that knows the reports stored
// before.
func (f *Fleet) NewOfflineDetector() (*OfflineDetector, error) {
	d := &OfflineDetector{f: f, start: f.now(), marked: map[string]bool{}}
	err := f.db.View(func(tx *store.Txn) error {
		return tx.Iterate(prefixOffline, nil, func(k, _ []byte) error {
			d.marked[string(k[len(prefixOffline):])] = true
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

func keyOffline(id string) []byte { return append(append([]byte{}, prefixOffline...), id...) }

// Sweep reports the terminals that went offline since the last sweep and
// clears the marks of those that came back. It returns how many it
// reported.
func (d *OfflineDetector) Sweep(ctx context.Context) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f := d.f
	now := f.now()
	type member struct {
		t *term
		r *terminalRec
	}
	f.mu.RLock()
	members := make([]member, 0, len(f.terms))
	for _, t := range f.terms {
		members = append(members, member{t, t.rec})
	}
	f.mu.RUnlock()

	var offline []audit.Event
	var marks, clears [][]byte
	var cleared []string
	for _, m := range members {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		id := m.r.ID
		m.t.liveMu.Lock()
		seen := m.t.seen
		m.t.liveMu.Unlock()
		ref := seen
		if ref.Before(d.start) {
			ref = d.start
		}
		iv := f.interval(id)
		active := !seen.IsZero() && m.r.State == StateActive
		off := active && connectivity(ref, now, iv) == Offline
		// Back: in contact again (judged by the contact itself, not by the
		// grace period after a restart), or no longer active.
		back := !active || connectivity(seen, now, iv) != Offline
		switch {
		case off && !d.marked[id]:
			marks = append(marks, keyOffline(id))
			offline = append(offline, audit.Event{
				Type: audit.TerminalOffline, Actor: "system", TerminalID: id, MerchantID: m.r.MerchantID, StoreID: m.r.StoreID,
				Message: fmt.Sprintf("terminal %s offline: no contact since %s", id, seen.UTC().Format(time.RFC3339)),
				Attributes: map[string]string{
					"last_seen": seen.UTC().Format(time.RFC3339), "heartbeat_interval": iv.String(),
				},
			})
		case back && d.marked[id]:
			clears = append(clears, keyOffline(id))
			cleared = append(cleared, id)
		}
	}
	reported := 0
	for len(offline) > 0 {
		n := min(len(offline), offlineBatch)
		evs, keys := offline[:n], marks[:n]
		err := f.commit(func(tx *store.Txn) error {
			for i, k := range keys {
				if err := tx.Set(k, []byte(evs[i].Attributes["last_seen"])); err != nil {
					return err
				}
			}
			return nil
		}, evs...)
		if err != nil {
			return reported, err
		}
		for _, e := range evs {
			d.marked[e.TerminalID] = true
		}
		reported += n
		offline, marks = offline[n:], marks[n:]
	}
	for len(clears) > 0 {
		n := min(len(clears), offlineBatch)
		err := f.db.Update(func(tx *store.Txn) error {
			for _, k := range clears[:n] {
				if err := tx.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return reported, err
		}
		for _, id := range cleared[:n] {
			delete(d.marked, id)
		}
		clears, cleared = clears[n:], cleared[n:]
	}
	return reported, nil
}
