package fleet

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/posfleet/posfleet/server/store"
)

// StatusSample is one entry of a terminal's status history: the status a
// heartbeat reported and when it arrived.
type StatusSample struct {
	// Seq numbers the terminal's samples from 1; it picks the sample's
	// storage slot (Seq modulo Options.StatusHistory).
	Seq uint64 `json:"n"`
	// Time is when the heartbeat arrived.
	Time time.Time `json:"t"`
	// Status is what the heartbeat reported.
	Status Status `json:"s"`
}

// Thresholds of a change-triggered sample: a move of the battery level or
// of the signal strength smaller than these waits for the sampling
// interval, so that a slowly draining battery does not fill the history.
const (
	sampleBatteryStep = 10 // percentage points
	sampleSignalStep  = 10 // dB
)

// prefixHistory keys status samples: hh/<terminal>/<slot>, slot a
// big-endian uint64 below Options.StatusHistory. A terminal's history is a
// ring of slots, so storage holds at most Options.StatusHistory samples per
// terminal without ever deleting one.
var prefixHistory = []byte("hh/")

// historyPrefix is the key prefix of terminal id's samples.
func historyPrefix(id string) []byte {
	return append(keyOf(prefixHistory, id), '/')
}

// sampleDue reports whether a heartbeat with status st arriving at now
// makes a new history sample after the previous one, prev (nil when there
// is none): the sampling interval has passed, or a tracked field changed —
// battery presence or charging, paper, network, signal presence, the
// battery level by sampleBatteryStep or the signal by sampleSignalStep.
func sampleDue(prev *StatusSample, st Status, now time.Time, interval time.Duration) bool {
	if prev == nil || now.Sub(prev.Time) >= interval {
		return true
	}
	p := prev.Status
	switch {
	case p.HasBattery != st.HasBattery, p.Charging != st.Charging, p.Paper != st.Paper,
		p.Network != st.Network, p.HasSignal != st.HasSignal:
		return true
	case st.HasBattery && absDiff(int64(p.BatteryPercent), int64(st.BatteryPercent)) >= sampleBatteryStep:
		return true
	case st.HasSignal && absDiff(int64(p.SignalDBm), int64(st.SignalDBm)) >= sampleSignalStep:
		return true
	}
	return false
}

func absDiff(a, b int64) int64 {
	if a > b {
		return a - b
	}
	return b - a
}

// sample records st as a new history sample of t when one is due. The
// sample waits in t.samples for the next batch flush; at most
// Options.StatusHistory wait, the oldest giving way. t.liveMu is held.
func (f *Fleet) sample(t *term, st Status, now time.Time) {
	if !sampleDue(t.lastSample, st, now, f.opts.StatusSampleInterval) {
		return
	}
	var seq uint64 = 1
	if t.lastSample != nil {
		seq = t.lastSample.Seq + 1
	}
	s := &StatusSample{Seq: seq, Time: now, Status: st}
	t.lastSample = s
	if len(t.samples) == f.opts.StatusHistory {
		copy(t.samples, t.samples[1:])
		t.samples = t.samples[:len(t.samples)-1]
	}
	t.samples = append(t.samples, *s)
}

// sampleWrites returns the storage writes of samples, terminal id's pending
// ones.
func (f *Fleet) sampleWrites(id string, samples []StatusSample) ([]kv, error) {
	out := make([]kv, 0, len(samples))
	for i := range samples {
		v, err := encode(&samples[i])
		if err != nil {
			return nil, err
		}
		slot := samples[i].Seq % uint64(f.opts.StatusHistory)
		out = append(out, kv{store.AppendUint64(historyPrefix(id), slot), v})
	}
	return out, nil
}

// StatusHistory returns terminal id's status history, newest first: a
// sample per Options.StatusSampleInterval while it sends heartbeats, and
// one whenever a tracked field (battery, paper, network, signal) changes,
// at most Options.StatusHistory of them.
//
// Samples are stored with the batched heartbeat flush, with the same
// durability as the latest status: they survive a clean restart, while a
// crash may lose those taken since the last flush (Options.FlushInterval).
func (f *Fleet) StatusHistory(ctx context.Context, id string) ([]StatusSample, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t, _, err := f.lookup(id)
	if err != nil {
		return nil, err
	}
	// Pending samples are taken first: a flush drops them from t.samples
	// only once they are stored, so a sample not among them is already
	// in storage when it is read below; duplicates are dropped by Seq.
	t.liveMu.Lock()
	out := slices.Clone(t.samples)
	var last uint64
	if t.lastSample != nil {
		last = t.lastSample.Seq
	}
	t.liveMu.Unlock()
	err = f.db.View(func(tx *store.Txn) error {
		return tx.Iterate(historyPrefix(id), nil, func(k, v []byte) error {
			var s StatusSample
			if err := decode(v, &s); err != nil {
				return fmt.Errorf("fleet: decode %s: %w", k, err)
			}
			out = append(out, s)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b StatusSample) int { return cmp.Compare(b.Seq, a.Seq) })
	out = slices.CompactFunc(out, func(a, b StatusSample) bool { return a.Seq == b.Seq })
	// Slots left over from a larger Options.StatusHistory, or from samples
	// numbered beyond the last one known (a record lost in a crash), are
	// not part of the history.
	keep := out[:0]
	for _, s := range out {
		if s.Seq <= last && last-s.Seq < uint64(f.opts.StatusHistory) {
			keep = append(keep, s)
		}
	}
	return keep, nil
}
