//go:build unix

package server_test

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/posfleet/posfleet/server"
	"github.com/posfleet/posfleet/server/store/storetest"
)

// requireRoot skips (or, under CI, fails) a test that must give files away
// to another user.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test must run as root in CI: it gives files to another user")
	}
	t.Skip("needs root to give files to another user")
}

// A data directory made for a service account and opened as root used to be
// taken over with a warning; the service account then failed on files it
// could not read. It is refused unless ownership is taken explicitly, and
// nothing in it changes.
func TestDataDirOfAnotherUser(t *testing.T) {
	storetest.RequireBadger(t, "the database files in the data directory")
	requireRoot(t)
	const other = 4242
	for _, tc := range []struct {
		name  string
		child bool // only a file inside belongs to the other user
		take  bool
	}{
		{name: "dir refused"},
		{name: "file inside refused", child: true},
		{name: "dir taken", take: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(dir, "admin.token")
			if err := os.WriteFile(file, []byte("pfa_0123456789abcdef0123\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(file, other, other); err != nil {
				t.Fatal(err)
			}
			if !tc.child {
				if err := os.Chown(dir, other, other); err != nil {
					t.Fatal(err)
				}
			}
			cfg := server.DefaultConfig(dir)
			cfg.TakeOwnership = tc.take
			srv, err := server.New(cfg, slog.New(slog.DiscardHandler))
			if !tc.take {
				if !errors.Is(err, server.ErrDataDirOwner) {
					if err == nil {
						srv.Close()
					}
					t.Fatalf("New on a directory of uid %d: %v, want ErrDataDirOwner", other, err)
				}
				entries, _ := os.ReadDir(dir)
				if len(entries) != 1 {
					t.Errorf("refused data dir holds %d entries, want only the token it had", len(entries))
				}
				return
			}
			if err != nil {
				t.Fatalf("New with TakeOwnership: %v", err)
			}
			srv.Close()
			for _, p := range []string{dir, file, filepath.Join(dir, "MANIFEST")} {
				st, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if uid := st.Sys().(*syscall.Stat_t).Uid; int(uid) != os.Geteuid() {
					t.Errorf("%s owned by uid %d after taking ownership, want %d", p, uid, os.Geteuid())
				}
			}
		})
	}
}
