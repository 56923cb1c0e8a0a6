package server

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// AdminTokenFile is the name of the generated bootstrap admin token inside
// the data directory.
const AdminTokenFile = "admin.token"

// NewSecret returns a random URL-safe secret with the given prefix and 256
// bits of entropy, e.g. "pfa_…" for admin tokens.
func NewSecret(prefix string) string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error()) // unreachable on supported platforms
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// bootstrapAdminToken returns the bootstrap admin token: cfg.AdminToken when
// set, else the one in DataDir/admin.token, generated (mode 0600) on first
// start. path is the file it came from, or "".
func bootstrapAdminToken(cfg Config) (token, path string, err error) {
	if cfg.AdminToken != "" {
		return cfg.AdminToken, "", nil
	}
	if cfg.InMemory {
		return NewSecret("pfa_"), "", nil
	}
	path = filepath.Join(cfg.DataDir, AdminTokenFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		token = strings.TrimSpace(string(b))
		if len(token) < 16 {
			return "", path, fmt.Errorf("server: %s holds no valid token", path)
		}
		return token, path, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", path, fmt.Errorf("server: read admin token: %w", err)
	}
	token = NewSecret("pfa_")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", path, fmt.Errorf("server: create admin token: %w", err)
	}
	if _, err := f.WriteString(token + "\n"); err != nil {
		f.Close()
		return "", path, fmt.Errorf("server: write admin token: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", path, fmt.Errorf("server: sync admin token: %w", err)
	}
	return token, path, f.Close()
}
