package server

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/audit"
)

// Pruned audit events are appended, with their IDs, to the export file of
// their month, one JSON line each, batch after batch.
func TestExportAuditAppendsJSONLines(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "export")
	at := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	batches := [][]audit.Event{
		{{ID: 1, Type: audit.BatchClosed, Time: at, TerminalID: "T0000001"}, {ID: 2, Type: audit.AuthFailure, Time: at}},
		{{ID: 3, Type: audit.MerchantMismatch, Time: at.Add(time.Hour), TerminalID: "T0000002"}},
	}
	for _, b := range batches {
		if err := exportAudit(dir, b); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(filepath.Join(dir, "audit-2026-02.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct {
			ID   uint64     `json:"id"`
			Type audit.Type `json:"t"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		ids = append(ids, line.ID)
	}
	if len(ids) != 3 || ids[0] != 1 || ids[2] != 3 {
		t.Fatalf("exported IDs: got %v, want [1 2 3]", ids)
	}
}
