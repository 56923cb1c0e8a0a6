package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"
)

// Config configures a Server. Start from DefaultConfig and override fields;
// cmd/posfleet fills it from flags and POSFLEET_* environment variables.
type Config struct {
	// DataDir is where the database, signing key and generated admin token
	// live. Created if missing.
	DataDir string
	// TakeOwnership lets the server take over a data directory that belongs
	// to another user (e.g. one made for a service account, opened as
	// root): everything in it is made the running user's. Without it, New
	// refuses such a directory with ErrDataDirOwner.
	TakeOwnership bool
	// InMemory keeps all data in memory (tests only; nothing is durable).
	InMemory bool
	// AdminToken, when set, is the bootstrap admin token. When empty, a token
	// is generated into DataDir/admin.token (mode 0600) on first start.
	AdminToken string
	// TLS, when set, serves gRPC over TLS.
	TLS *tls.Config

	// MaxRecvMsgSize bounds the size of one request message in bytes.
	MaxRecvMsgSize int
	// MaxSendMsgSize bounds the size of one response message in bytes.
	MaxSendMsgSize int
	// MaxConcurrentStreams bounds concurrent calls per connection.
	MaxConcurrentStreams uint32
	// MaxCallTimeout caps the deadline of unary calls: a call without a
	// deadline, or with a longer one, gets this deadline. Streams are exempt.
	MaxCallTimeout time.Duration
	// KeepaliveTime is how long a connection may be idle before the server
	// pings it; KeepaliveTimeout how long it waits for the ping's answer.
	KeepaliveTime, KeepaliveTimeout time.Duration
	// MinClientPingInterval is the most frequent client keepalive ping the
	// server tolerates; faster pingers are disconnected.
	MinClientPingInterval time.Duration
	// MaxConnectionIdle closes connections without calls for this long.
	MaxConnectionIdle time.Duration
	// MaxConnectionAge and MaxConnectionAgeGrace bound a connection's life so
	// that clients rebalance; in-flight calls get the grace period.
	MaxConnectionAge, MaxConnectionAgeGrace time.Duration
	// ShutdownGrace is how long graceful shutdown waits for in-flight calls
	// before cutting them off.
	ShutdownGrace time.Duration
}

// DefaultConfig returns production defaults for a server keeping its data in
// dataDir.
func DefaultConfig(dataDir string) Config {
	return Config{
		DataDir:               dataDir,
		MaxRecvMsgSize:        256 << 10,
		MaxSendMsgSize:        4 << 20,
		MaxConcurrentStreams:  256,
		MaxCallTimeout:        30 * time.Second,
		KeepaliveTime:         2 * time.Minute,
		KeepaliveTimeout:      20 * time.Second,
		MinClientPingInterval: 20 * time.Second,
		MaxConnectionIdle:     30 * time.Minute,
		MaxConnectionAge:      4 * time.Hour,
		MaxConnectionAgeGrace: time.Minute,
		ShutdownGrace:         15 * time.Second,
	}
}

// Validate reports the first unusable setting.
func (c Config) Validate() error {
	switch {
	case c.DataDir == "" && !c.InMemory:
		return errors.New("server: DataDir is required")
	case c.MaxRecvMsgSize < 1<<10 || c.MaxRecvMsgSize > 4<<20:
		return fmt.Errorf("server: MaxRecvMsgSize %d out of range [1 KiB, 4 MiB]", c.MaxRecvMsgSize)
	case c.MaxSendMsgSize < 1<<10:
		return fmt.Errorf("server: MaxSendMsgSize %d below 1 KiB", c.MaxSendMsgSize)
	case c.MaxConcurrentStreams == 0:
		return errors.New("server: MaxConcurrentStreams must be positive")
	case c.MaxCallTimeout <= 0:
		return errors.New("server: MaxCallTimeout must be positive")
	case c.KeepaliveTime <= 0 || c.KeepaliveTimeout <= 0 || c.MinClientPingInterval <= 0:
		return errors.New("server: keepalive settings must be positive")
	case c.MaxConnectionIdle <= 0 || c.MaxConnectionAge <= 0 || c.MaxConnectionAgeGrace <= 0:
		return errors.New("server: connection ages must be positive")
	case c.ShutdownGrace <= 0:
		return errors.New("server: ShutdownGrace must be positive")
	case c.AdminToken != "" && len(c.AdminToken) < 16:
		return errors.New("server: AdminToken must be at least 16 characters")
	}
	return nil
}
