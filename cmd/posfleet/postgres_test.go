package main

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/posfleet/posfleet/internal/pgtest"
	"github.com/posfleet/posfleet/server/store"
)

// --store and --database-url that do not go together are refused before
// anything is opened, with what to do about it.
func TestServeStoreUsageErrors(t *testing.T) {
	for _, c := range []struct {
		env  []string
		args []string
		want string
	}{
		{nil, []string{"--store", "postgres"}, "--store postgres needs --database-url"},
		{[]string{"POSFLEET_STORE=postgres"}, nil, "--store postgres needs --database-url"},
		{nil, []string{"--database-url", "postgres://127.0.0.1/x"}, "--database-url is used only with --store postgres"},
		{[]string{"POSFLEET_DATABASE_URL=postgres://127.0.0.1/x"}, nil, "--database-url is used only with --store postgres"},
		{nil, []string{"--store", "mysql"}, `--store "mysql": want badger or postgres`},
		{nil, []string{"--store", "postgres", "--database-url", "postgres://u:hunter2@db.example.com/x"}, "sslmode=require"},
	} {
		args := append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir()}, c.args...)
		out, code := runCLI(t, c.env, args...)
		if code == 0 || !strings.Contains(out, c.want) {
			t.Errorf("%v %v: exit %d, output %q; want a refusal saying %q", c.env, c.args, code, out, c.want)
		}
		if strings.Contains(out, "hunter2") {
			t.Errorf("%v: output %q shows the password", c.args, out)
		}
	}
}

// posfleet migrate brings a database to this binary's schema and says so;
// serve runs on it, keeps its data across a restart, and neither runs on a
// schema from a newer posfleet.
func TestMigrateAndServeOnPostgres(t *testing.T) {
	url := pgtest.NewDatabase(t)
	want := strconv.FormatUint(uint64(store.SchemaVersion()), 10)
	out, code := runCLI(t, nil, "migrate", "--database-url", url)
	if code != 0 || !strings.Contains(out, "schema version 0 -> "+want) {
		t.Fatalf("migrate: exit %d, output %q; want schema version 0 -> %s", code, out, want)
	}
	out, code = runCLI(t, []string{"POSFLEET_DATABASE_URL=" + url}, "migrate")
	if code != 0 || !strings.Contains(out, "schema version "+want+": up to date") {
		t.Fatalf("migrate again: exit %d, output %q; want up to date", code, out)
	}

	dir := t.TempDir()
	serve := func() *AdminCLI {
		p := StartServe(t, dir, "--store", "postgres", "--database-url", url)
		return &AdminCLI{t: t, P: p, TokenFile: filepath.Join(dir, "admin.token")}
	}
	stop := func(a *AdminCLI) {
		a.P.Cmd.Process.Signal(syscall.SIGTERM)
		if code := a.P.Wait(t); code != 0 {
			t.Fatalf("serve exit code after SIGTERM = %d, want 0\n%s", code, a.P.Logs)
		}
	}
	a := serve()
	a.Must("merchants", "create", "--id", "PGM1", "--legal-name", "Postgres Foods Ltd", "--mcc", "5411", "--currency", "NZD")
	stop(a)
	a = serve()
	a.Expect(a.Must("merchants", "get", "--id", "PGM1"), "Postgres Foods Ltd")
	out, code = runCLI(t, nil, "backup", "--target", a.P.Addr, "--admin-token-file", a.TokenFile, "--out", filepath.Join(t.TempDir(), "b"))
	if code == 0 || !strings.Contains(out, "pg_dump") {
		t.Errorf("online backup on PostgreSQL: exit %d, output %q; want a refusal naming pg_dump", code, out)
	}
	stop(a)

	// A schema from a newer posfleet.
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	newer := strconv.FormatUint(uint64(store.SchemaVersion())+1, 10)
	if _, err := conn.Exec(t.Context(), "UPDATE "+store.MigrationsTable+" SET version = "+newer); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"migrate", "--database-url", url},
		{"serve", "--listen", "127.0.0.1:0", "--data-dir", dir, "--store", "postgres", "--database-url", url},
	} {
		out, code := runCLI(t, nil, args...)
		if code == 0 || !strings.Contains(out, "schema version "+newer) || !strings.Contains(out, "up to "+want) {
			t.Errorf("%s on a newer schema: exit %d, output %q; want a refusal naming versions %s and %s", args[0], code, out, newer, want)
		}
	}
}
