package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/posfleet/posfleet/server/payment"
	"github.com/posfleet/posfleet/server/store"
)

// errDamaged makes verify exit with status 3 when it found damage; 1 stays
// for a verify that could not run.
type errDamaged struct{ problems int }

func (e errDamaged) Error() string {
	return fmt.Sprintf("%d problems found: restore the data directory from a backup (posfleet restore)", e.problems)
}

// ExitCode implements exitCoder.
func (errDamaged) ExitCode() int { return 3 }

func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("verify", stderr)
	dataDir := fs.String("data-dir", "./posfleet-data", "data directory of a stopped server to scan")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := requireDatabase(*dataDir); err != nil {
		return err
	}
	opts := store.DefaultOptions(*dataDir)
	opts.ReadOnly = true
	opts.GCInterval = 0
	// Opening checks every table's checksum, those recorded as verified
	// before too, and replays the write-ahead log without repairing it.
	opts.VerifyAllTables = true
	db, err := store.Open(opts, nil)
	replayed := false
	if errors.Is(err, store.ErrReadOnlyReplay) {
		// After a crash the log must be replayed, as serve would.
		opts.ReadOnly, replayed = false, true
		db, err = store.Open(opts, nil)
	}
	if err != nil {
		if errors.Is(err, store.ErrCorrupt) {
			fmt.Fprintf(stdout, "posfleet verify %s\nDAMAGED: %v\n", *dataDir, err)
			return errDamaged{problems: 1}
		}
		return fmt.Errorf("%w (is the server still running?)", err)
	}
	defer db.Close()

	rep, err := verifyRecords(ctx, db)
	if err != nil {
		return err
	}
	pay, err := payment.Verify(ctx, db)
	if err != nil {
		return err
	}
	for k, n := range pay.Records {
		rep.counts["payment "+k] += n
	}
	rep.problems = append(rep.problems, pay.Problems...)
	err = db.View(func(tx *store.Txn) error {
		for _, id := range pay.Terminals {
			if err := exists(tx, "t/"+id, "its terminal"); err != nil {
				if !errors.Is(err, errMissing) {
					return err
				}
				rep.problems = append(rep.problems, fmt.Sprintf("payment transactions of %s: %v", id, err))
			}
		}
		return nil
	})
	if err != nil {
		return err
	}

	fmt.Fprintf(stdout, "posfleet verify %s\n", *dataDir)
	fmt.Fprintln(stdout, "storage: every table read whole with its checksums verified (recorded as verified or not); MANIFEST and write-ahead log opened with checksums verified; every value read")
	if replayed {
		fmt.Fprintln(stdout, "storage: the write-ahead log was replayed and cut back to its last whole entry, as a server start does (the server did not stop cleanly)")
	}
	for _, k := range slices.Sorted(maps.Keys(rep.counts)) {
		fmt.Fprintf(stdout, "  %-32s %d\n", k, rep.counts[k])
	}
	fmt.Fprintf(stdout, "payment ledger: %d commits, last transaction %d\n", pay.Commits, pay.LastSequence)
	if len(rep.problems) == 0 {
		fmt.Fprintln(stdout, "OK: no problems found")
		return nil
	}
	fmt.Fprintf(stdout, "DAMAGED: %d problems\n", len(rep.problems))
	for _, p := range rep.problems {
		fmt.Fprintf(stdout, "  - %s\n", p)
	}
	return errDamaged{problems: len(rep.problems)}
}

// recordReport counts records by kind and lists problems.
type recordReport struct {
	counts   map[string]int
	problems []string
}

// family is a key family outside the payment engine and how its values
// are checked.
type family struct {
	prefix string
	kind   string
	check  func(tx *store.Txn, k, v []byte) error
}

// families are the key families of fleet, config push, operator tokens and
// the audit log (the payment engine checks its own, under "pay/"). Their
// records are a schema version byte (1) and a JSON document.
var families = []family{
	{"m/", "merchants", jsonRecord},
	{"s/", "stores", func(tx *store.Txn, k, v []byte) error {
		if err := jsonRecord(tx, k, v); err != nil {
			return err
		}
		merchant, _, ok := strings.Cut(string(k[len("s/"):]), "/")
		if !ok {
			return errors.New("malformed key")
		}
		return exists(tx, "m/"+merchant, "its merchant")
	}},
	{"t/", "terminals", jsonRecord},
	{"hb/", "heartbeats", jsonRecord},
	{"hh/", "status history samples", jsonRecord},
	{"cm/", "remote commands", jsonRecord},
	{"fl/", "faults", jsonRecord},
	{"fk/", "signing keys", jsonRecord},
	{"fka", "active signing key", func(tx *store.Txn, _, v []byte) error {
		return exists(tx, "fk/"+string(v), "the signing key it names")
	}},
	{"cp/seq", "config version counter", func(_ *store.Txn, _, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("%d bytes, want 8", len(v))
		}
		return nil
	}},
	{"cp/ro/", "config versions", jsonRecord},
	{"cp/ack/", "config acknowledgements", jsonRecord},
	{"cp/bind/", "config bindings", jsonRecord},
	{"tok/", "admin tokens", jsonRecord},
	{"au/", "audit events", jsonRecord},
	{"aut/", "audit index entries", auditIndex},
	{"aum/", "audit index entries", auditIndex},
	{"aux/", "audit index entries", auditIndex},
}

// jsonRecord checks a schema version 1 record holding a JSON document.
func jsonRecord(_ *store.Txn, _, v []byte) error {
	switch {
	case len(v) == 0:
		return errors.New("empty value")
	case v[0] != 1:
		return fmt.Errorf("unknown schema version %d", v[0])
	case !json.Valid(v[1:]):
		return errors.New("the JSON document does not parse")
	}
	return nil
}

// auditIndex checks that an audit index entry names an existing event.
func auditIndex(tx *store.Txn, k, _ []byte) error {
	if len(k) < 9 || k[len(k)-9] != '/' {
		return errors.New("malformed key")
	}
	return exists(tx, "au/"+string(k[len(k)-8:]), "the audit event it indexes")
}

// errMissing is a record another one refers to that does not exist.
var errMissing = errors.New("missing")

// exists reports an error unless key exists: errMissing when it does not.
func exists(tx *store.Txn, key, what string) error {
	if _, err := tx.Get([]byte(key)); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%s (%q) is %w", what, key, errMissing)
		}
		return err
	}
	return nil
}

// verifyRecords reads every key of db, so that every block's and value's
// checksum is verified, and checks the records of every family outside
// the payment engine.
func verifyRecords(ctx context.Context, db *store.DB) (*recordReport, error) {
	rep := &recordReport{counts: map[string]int{}}
	err := db.View(func(tx *store.Txn) error {
		return tx.Iterate(nil, nil, func(k, v []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if bytes.HasPrefix(k, []byte("pay/")) {
				return nil // payment.Verify
			}
			for _, f := range families {
				if !bytes.HasPrefix(k, []byte(f.prefix)) || (!strings.HasSuffix(f.prefix, "/") && len(k) != len(f.prefix)) {
					continue
				}
				rep.counts[f.kind]++
				if err := f.check(tx, k, v); err != nil {
					if errors.Is(err, store.ErrCorrupt) {
						return err
					}
					rep.problems = append(rep.problems, fmt.Sprintf("%s %q: %v", f.kind, k, err))
				}
				return nil
			}
			rep.counts["other keys"]++
			return nil
		})
	})
	if errors.Is(err, store.ErrCorrupt) {
		rep.problems = append(rep.problems, err.Error())
		err = nil
	}
	return rep, err
}
