package fleet

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/store"
)

// Command IDs are "<terminal id>-<16 hex digits>": the terminal that owns a
// command is part of its ID, and the number orders its storage key.

func commandID(terminalID string, seq uint64) string {
	return fmt.Sprintf("%s-%016x", terminalID, seq)
}

// parseCommandID splits a command ID into its terminal and sequence number.
func parseCommandID(id string) (terminalID string, seq []byte, ok bool) {
	tid, hx, found := strings.Cut(id, "-")
	if !found || len(tid) != 8 || len(hx) != 16 {
		return "", nil, false
	}
	b, err := hex.DecodeString(hx)
	if err != nil {
		return "", nil, false
	}
	return tid, b, true
}

// commandKey returns the storage key of a (well-formed) command ID.
func commandKey(id string) []byte {
	tid, seq, _ := parseCommandID(id)
	return append(keyOf(prefixCommand, tid, ""), seq...)
}

// SendCommand queues a remote command for a terminal, deliverable for ttl
// (zero: the default). A terminal that is offline gets it when it returns,
// unless it expired by then.
func (f *Fleet) SendCommand(ctx context.Context, terminalID string, typ CommandType, params map[string]string, ttl time.Duration, who audit.Actor) (Command, error) {
	if err := ctx.Err(); err != nil {
		return Command{}, err
	}
	if typ <= CommandUnspecified || typ > CommandRotateCredential {
		return Command{}, invalid("type", "must be a known command type")
	}
	if ttl <= 0 {
		ttl = f.opts.CommandTTL
	}
	t, r, err := f.lookup(terminalID)
	if err != nil {
		return Command{}, err
	}
	if r.State == StateRetired {
		return Command{}, ErrTerminalRetired
	}
	now := f.now().UTC()
	c := Command{
		ID:         commandID(terminalID, f.cmdSeq.Add(1)),
		TerminalID: terminalID,
		Type:       typ,
		Parameters: maps.Clone(params),
		Created:    now,
		Expires:    now.Add(ttl),
		State:      CommandPending,
	}
	ev := audit.Event{Type: audit.CommandSent, Actor: who.Name, Peer: who.Peer, TerminalID: terminalID,
		MerchantID: r.MerchantID, StoreID: r.StoreID, Message: "remote command queued",
		Attributes: map[string]string{"command_id": c.ID, "type": c.Type.String(), "expires": c.Expires.Format(time.RFC3339)}}
	if err := f.put(commandKey(c.ID), &c, ev); err != nil {
		return Command{}, err
	}
	t.liveMu.Lock()
	t.cmds = append(t.cmds, &cmdEntry{cmd: c})
	t.liveMu.Unlock()
	f.pendMu.Lock()
	f.cmdTerms[t] = struct{}{}
	f.pendMu.Unlock()
	f.notifyCommand(terminalID)
	return c, nil
}

// String returns the command type's protocol name without prefix.
func (c CommandType) String() string {
	switch c {
	case CommandReboot:
		return "REBOOT"
	case CommandUploadLogs:
		return "UPLOAD_LOGS"
	case CommandResyncConfig:
		return "RESYNC_CONFIG"
	case CommandLock:
		return "LOCK"
	case CommandRotateCredential:
		return "ROTATE_CREDENTIAL"
	}
	return "UNSPECIFIED"
}

// ListCommands returns up to limit commands of a terminal, newest first,
// and the next page token.
func (f *Fleet) ListCommands(ctx context.Context, terminalID string, limit int, pageToken string) ([]Command, string, error) {
	t, _, err := f.lookup(terminalID)
	if err != nil {
		return nil, "", err
	}
	if limit <= 0 {
		limit = 100
	}
	prefix := keyOf(prefixCommand, terminalID, "")
	var start []byte
	if pageToken != "" {
		b, err := base64.RawURLEncoding.DecodeString(pageToken)
		if err != nil || len(b) != 8 {
			return nil, "", ErrBadPageToken
		}
		start = append(append([]byte{}, prefix...), b...)
	}
	var out []Command
	var next string
	err = f.db.View(func(tx *store.Txn) error {
		return tx.IterateReverse(prefix, start, func(k, v []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if len(out) == limit {
				next = base64.RawURLEncoding.EncodeToString(k[len(prefix):])
				return store.ErrStop
			}
			var c Command
			if err := decode(v, &c); err != nil {
				return fmt.Errorf("fleet: decode %s: %w", k, err)
			}
			out = append(out, c)
			return nil
		})
	})
	if err != nil {
		return nil, "", err
	}
	// Delivery and expiry are written in batches: memory is newer.
	now := f.now()
	t.liveMu.Lock()
	for i := range out {
		for _, e := range t.cmds {
			if e.cmd.ID == out[i].ID {
				out[i] = e.cmd
			}
		}
		if !out[i].State.final() && !now.Before(out[i].Expires) {
			out[i].State = CommandExpired
		}
	}
	t.liveMu.Unlock()
	return out, next, nil
}

// AckCommand records a terminal's result for one of its commands. Repeating
// the same acknowledgement succeeds; a different result for a finished
// command is ErrCommandFinished, an expired command ErrCommandExpired, a
// command of another terminal ErrCommandNotOwned.
func (f *Fleet) AckCommand(ctx context.Context, terminalID, commandID string, succeeded bool, detail string, who audit.Actor) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	owner, _, ok := parseCommandID(commandID)
	if !ok {
		return ErrCommandNotFound
	}
	if owner != terminalID {
		// Another terminal's command: audited like any refused access
		// (repeats from one terminal grouped).
		if ok, suppressed := f.auditRepeat.Admit("cmd-not-owned|"+terminalID, f.now()); ok {
			attrs := map[string]string{"command_id": commandID, "reason": "COMMAND_NOT_OWNED"}
			if suppressed > 0 {
				attrs["suppressed_repeats"] = strconv.FormatUint(suppressed, 10)
			}
			f.record(audit.Event{Type: audit.PermissionDenied, Actor: who.Name, Peer: who.Peer, TerminalID: terminalID,
				Message: "permission denied: acknowledgement of another terminal's command", Attributes: attrs})
		}
		return ErrCommandNotOwned
	}
	t, r, err := f.lookup(terminalID)
	if err != nil {
		return err
	}
	want := CommandFailed
	if succeeded {
		want = CommandSucceeded
	}
	f.cmdMu.Lock()
	defer f.cmdMu.Unlock()
	var c Command
	t.liveMu.Lock()
	var entry *cmdEntry
	for _, e := range t.cmds {
		if e.cmd.ID == commandID {
			entry, c = e, e.cmd
		}
	}
	t.liveMu.Unlock()
	if entry == nil {
		v, err := f.db.Get(commandKey(commandID))
		if errors.Is(err, store.ErrNotFound) {
			return ErrCommandNotFound
		}
		if err != nil {
			return err
		}
		if err := decode(v, &c); err != nil {
			return fmt.Errorf("fleet: decode command %s: %w", commandID, err)
		}
	}
	now := f.now().UTC()
	switch {
	case c.State == want:
		return nil
	case c.State.final() && c.State != CommandExpired:
		return ErrCommandFinished
	case c.State == CommandExpired || !now.Before(c.Expires):
		return ErrCommandExpired
	}
	c.State, c.Detail, c.Acked = want, detail, now
	ev := audit.Event{Type: audit.CommandAcked, Actor: who.Name, Peer: who.Peer, TerminalID: terminalID,
		MerchantID: r.MerchantID, StoreID: r.StoreID, Message: "remote command acknowledged",
		Attributes: map[string]string{"command_id": c.ID, "type": c.Type.String(), "result": stateName(want), "detail": detail}}
	if err := f.put(commandKey(c.ID), &c, ev); err != nil {
		return err
	}
	if entry != nil {
		t.liveMu.Lock()
		entry.cmd, entry.dirty = c, false
		t.liveMu.Unlock()
	}
	return nil
}

func stateName(s CommandState) string {
	switch s {
	case CommandSucceeded:
		return "SUCCEEDED"
	case CommandFailed:
		return "FAILED"
	}
	return "UNKNOWN"
}
