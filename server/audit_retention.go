package server

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/posfleet/posfleet/server/audit"
)

// auditRetention returns the audit trail's retention settings of cfg:
// events older than cfg.AuditRetention are pruned hourly, each batch first
// appended as JSON lines to AUDIT_EXPORT_DIR/audit-YYYY-MM.jsonl (by the
// month of its first event) and synced when cfg.AuditExportDir is set.
func auditRetention(cfg *Config) audit.RetentionOptions {
	opts := audit.RetentionOptions{Retention: cfg.AuditRetention, Interval: time.Hour}
	if dir := cfg.AuditExportDir; dir != "" {
		opts.Export = func(evs []audit.Event) error { return exportAudit(dir, evs) }
	}
	return opts
}

// exportAudit appends evs as JSON lines (with their IDs) to the month's
// export file in dir and syncs it.
func exportAudit(dir string, evs []audit.Event) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	name := filepath.Join(dir, "audit-"+evs[0].Time.UTC().Format("2006-01")+".jsonl")
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for i := range evs {
		line := struct {
			ID uint64 `json:"id"`
			audit.Event
		}{evs[i].ID, evs[i]}
		if err := enc.Encode(line); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", name, err)
	}
	return f.Close()
}
