package main

import (
	"strings"
	"testing"

	"github.com/posfleet/posfleet/server/store"
	"github.com/posfleet/posfleet/server/store/storetest"
)

func TestVerify(t *testing.T) {
	dir, tid := stoppedServerWithPayments(t, "MIDVER", "Verify Ltd")

	out, code := runCLI(t, []string{"POSFLEET_DATA_DIR=" + dir}, "verify")
	if code != 0 {
		t.Fatalf("verify of an intact database: exit %d\n%s", code, out)
	}
	for _, want := range []string{"payment transactions", "merchants                        1", "stores                           1", "OK: no problems found", "last transaction 3"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}

	// Damage: a commit chunk, a merchant and a terminal disappear.
	db := storetest.OpenDir(t, dir)
	err := db.Update(func(tx *store.Txn) error {
		if err := tx.Delete(store.AppendUint64([]byte("pay/lg/"), 1)); err != nil {
			return err
		}
		if err := tx.Delete([]byte("t/" + tid)); err != nil {
			return err
		}
		return tx.Delete([]byte("m/MIDVER"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	out, code = runCLI(t, nil, "verify", "--data-dir", dir)
	if code != 3 {
		t.Fatalf("verify of a damaged database: exit %d, want 3\n%s", code, out)
	}
	for _, want := range []string{"DAMAGED", "its merchant (\"m/MIDVER\") is missing", "the first commit chunk starts at sequence number",
		"payment transactions of " + tid + ": its terminal"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}
	if out, code := runCLI(t, nil, "serve", "--data-dir", dir, "--listen", "127.0.0.1:0"); code == 0 || !strings.Contains(out, "ledger is damaged") {
		t.Errorf("serve on the damaged database: exit %d, want non-zero saying the ledger is damaged\n%s", code, out)
	}
}
