package payment_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/posfleet/posfleet/internal/testclock"
	"github.com/posfleet/posfleet/server/payment"
	"github.com/posfleet/posfleet/server/store"
	"github.com/posfleet/posfleet/server/store/storetest"
)

var idPattern = regexp.MustCompile(`^[AR][0-9A-F]{32}$`)

// restoreInto restores backup into a new database in a new directory.
func restoreInto(t *testing.T, backup []byte) string {
	t.Helper()
	dir := t.TempDir()
	db := storetest.OpenDir(t, dir)
	if err := db.Restore(bytes.NewReader(backup)); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestIDsNeverReused restores an older backup, so that the ledger's
// sequence goes back, and checks that the sequence numbers decided again
// get new authorization IDs while the kept ones replay unchanged.
func TestIDsNeverReused(t *testing.T) {
	storetest.RequireBadger(t, "copies the store with a backup")
	v := newEnv(t)
	first := v.authorize(sale(term1, "a1", 100))
	var backup bytes.Buffer
	if err := v.db.Backup(t.Context(), &backup); err != nil {
		t.Fatal(err)
	}
	lost := v.authorize(sale(term1, "a2", 200))
	for _, id := range []string{first.AuthorizationID, lost.AuthorizationID} {
		if !idPattern.MatchString(id) {
			t.Errorf("ID %q does not match %s", id, idPattern)
		}
	}
	v.close()

	w := newEnvAt(t, restoreInto(t, backup.Bytes()))
	again := w.authorize(sale(term1, "a3", 300))
	if again.AuthorizationID == lost.AuthorizationID {
		t.Errorf("after restoring an older backup: a new request got %s, the ID of a lost one", again.AuthorizationID)
	}
	txs := w.transactions(payment.TxFilter{})
	if len(txs) != 2 || txs[0].Sequence != 2 {
		t.Fatalf("ledger after restore: %+v, want 2 transactions, the newest at sequence 2 (as the lost one was)", txs)
	}
	if r := w.authorize(sale(term1, "a1", 100)); !r.Replayed || r.AuthorizationID != first.AuthorizationID {
		t.Errorf("replay of a1: %s (replayed %v), want %s replayed", r.AuthorizationID, r.Replayed, first.AuthorizationID)
	}
}

// TestIDsUnguessable refunds against an authorization ID with one digit
// changed: it names no transaction.
func TestIDsUnguessable(t *testing.T) {
	v := newEnv(t)
	auth := v.authorize(sale(term1, "s1", 1000))
	other := v.authorize(sale(term1, "s2", 1000))
	id := auth.AuthorizationID
	forged := id[:len(id)-1] + string("0123456789ABCDEF"[(strings.IndexByte("0123456789ABCDEF", id[len(id)-1])+1)%16])
	tests := []struct {
		name, id, want string
	}{
		{"changed digit", forged, payment.CodeInvalidTransaction},
		{"sequence-style", "A0000000000000001", payment.CodeInvalidTransaction},
		{"genuine", id, payment.CodeApproved},
		{"other genuine", other.AuthorizationID, payment.CodeApproved},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := v.refund(term1, fmt.Sprint("r", i), tt.id, 10).ResponseCode; got != tt.want {
				t.Errorf("refund against %s: code %s, want %s", tt.id, got, tt.want)
			}
		})
	}
}

// TestOpenRefusesDamagedLedger damages the ledger's records one way at a
// time and checks that the engine refuses to start with ErrCorrupt.
func TestOpenRefusesDamagedLedger(t *testing.T) {
	chunkKey := func(seq uint64) []byte { return store.AppendUint64([]byte("pay/lg/"), seq) }
	tests := []struct {
		name   string
		damage func(tx *store.Txn) error
		want   string
	}{
		{"chunk deleted", func(tx *store.Txn) error { return tx.Delete(chunkKey(2)) }, "missing"},
		{"chunk changed", func(tx *store.Txn) error {
			v, err := tx.Get(chunkKey(2))
			if err != nil {
				return err
			}
			v[len(v)-1] ^= 1 // the terminal ID's last character
			return tx.Set(chunkKey(2), v)
		}, "hash"},
		{"newest chunk deleted", func(tx *store.Txn) error { return tx.Delete(chunkKey(4)) }, "ledger head"},
		{"head deleted", func(tx *store.Txn) error { return tx.Delete([]byte("pay/hd")) }, "head"},
		{"transaction deleted", func(tx *store.Txn) error {
			return tx.Delete(store.AppendUint64([]byte("pay/tx/"+term1+"/"), 3))
		}, "hold 3 of them"},
		{"record garbled", func(tx *store.Txn) error {
			return tx.Set(store.AppendUint64([]byte("pay/tx/"+term1+"/"), 3), []byte{1, 't', 0xff})
		}, "does not decode"},
		{"ID key deleted", func(tx *store.Txn) error { return tx.Delete([]byte("pay/key")) }, "ID key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newEnv(t)
			for i := range 4 {
				v.authorize(sale(term1, fmt.Sprint("d", i), 100))
			}
			v.close()
			db := storetest.OpenDir(t, v.path)
			if err := db.Update(tt.damage); err != nil {
				t.Fatal(err)
			}
			db.Close()
			err := openErr(t, v.path)
			if !errors.Is(err, payment.ErrCorrupt) || !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("open: got %v, want ErrCorrupt saying %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), "posfleet restore") {
				t.Errorf("open: %v does not point to the way back", err)
			}
		})
	}
}

// TestOpenRefusesLostCommits gives a database the watermark file of a
// later state of it: acknowledged commits are missing, as after a damaged
// write-ahead log.
func TestOpenRefusesLostCommits(t *testing.T) {
	storetest.RequireBadger(t, "the watermark file catches a write-ahead log that lost its tail")
	v := newEnv(t)
	v.authorize(sale(term1, "k1", 100))
	var backup bytes.Buffer
	if err := v.db.Backup(t.Context(), &backup); err != nil {
		t.Fatal(err)
	}
	v.authorize(sale(term1, "k2", 100))
	v.close()
	mark, err := os.ReadFile(filepath.Join(v.path, store.WatermarkFile))
	if err != nil {
		t.Fatal(err)
	}
	dir := restoreInto(t, backup.Bytes())
	// The restored database opens: its watermark starts from it.
	newEnvAt(t, dir).close()
	if err := os.WriteFile(filepath.Join(dir, store.WatermarkFile), mark, 0o600); err != nil {
		t.Fatal(err)
	}
	err = openErr(t, dir)
	if !errors.Is(err, payment.ErrCorrupt) || !strings.Contains(err.Error(), "acknowledged commits are missing") {
		t.Fatalf("open: got %v, want ErrCorrupt saying acknowledged commits are missing", err)
	}
}

// openErr opens an engine on path and returns the error; it fails the test
// when the engine opens.
func openErr(t *testing.T, path string) error {
	t.Helper()
	v := &env{t: t, path: path, opts: payment.DefaultOptions(),
		dir: &directory{pols: map[string]payment.Policy{}, def: basePolicy(""), auto: true}, clock: testclock.New(startTime)}
	v.opts.Now = v.clock.Now
	err := v.tryOpen()
	if err == nil {
		v.close()
		t.Fatal("the engine opened on a damaged ledger")
	}
	return err
}

// TestVerify checks a whole ledger, then one that lost a transaction and
// one whose request index points at another request's transaction.
func TestVerify(t *testing.T) {
	storetest.RequireBadger(t, "copies the store with a backup")
	v := newEnv(t)
	for i := range 5 {
		v.authorize(sale(term1, fmt.Sprint("v", i), 100))
	}
	v.reverse(term1, "rv", "v1")
	v.close()
	tests := []struct {
		name   string
		damage func(tx *store.Txn) error
		want   string
	}{
		{"intact", func(*store.Txn) error { return nil }, ""},
		{"transaction deleted", func(tx *store.Txn) error {
			return tx.Delete(store.AppendUint64([]byte("pay/tx/"+term1+"/"), 2))
		}, "lists transaction 2 of T0000001, which is missing"},
		{"index rewritten", func(tx *store.Txn) error {
			v, err := tx.Get([]byte("pay/ri/" + term1 + "/v3"))
			if err != nil {
				return err
			}
			return tx.Set([]byte("pay/ri/"+term1+"/v4"), v)
		}, "which is request \"v3\"'s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := restoreInto(t, backupOf(t, v.path))
			db := storetest.OpenDir(t, dir)
			defer db.Close()
			if err := db.Update(tt.damage); err != nil {
				t.Fatal(err)
			}
			rep, err := payment.Verify(t.Context(), db)
			if err != nil {
				t.Fatal(err)
			}
			if got := rep.Records["transactions"]; tt.want == "" && got != 5 {
				t.Errorf("transactions: got %d, want 5", got)
			}
			switch {
			case tt.want == "" && len(rep.Problems) > 0:
				t.Errorf("problems in an intact ledger: %q", rep.Problems)
			case tt.want != "" && !strings.Contains(strings.Join(rep.Problems, "\n"), tt.want):
				t.Errorf("problems %q, want one saying %q", rep.Problems, tt.want)
			}
		})
	}
}

// backupOf returns a backup of the closed database in dir.
func backupOf(t *testing.T, dir string) []byte {
	t.Helper()
	db := storetest.OpenDir(t, dir)
	defer db.Close()
	var b bytes.Buffer
	if err := db.Backup(t.Context(), &b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestWatermarkBeforeAnswer reads the watermark file from disk after each
// answer: it must already record the answer's transaction. Recording is
// slowed down, so that an answer released before it would be seen.
func TestWatermarkBeforeAnswer(t *testing.T) {
	storetest.RequireBadger(t, "the watermark file")
	v := newEnv(t, func(o *payment.Options) {
		payment.SetMarkHook(o, func() { time.Sleep(20 * time.Millisecond) })
	})
	for i := range 20 {
		v.authorize(sale(term1, fmt.Sprint("w", i), 100))
		mark, err := store.ReadWatermark(v.path)
		if err != nil {
			t.Fatal(err)
		}
		seq, err := payment.MarkSequence(mark)
		if err != nil {
			t.Fatal(err)
		}
		if want := uint64(i + 1); seq < want {
			t.Fatalf("after answer %d: the watermark records transaction %d, want at least %d", i+1, seq, want)
		}
	}
}
