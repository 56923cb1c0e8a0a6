package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/posfleet/posfleet/server/logsample"
	"github.com/posfleet/posfleet/server/store"
	"github.com/posfleet/posfleet/server/webhook"
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
	// VerifyAllTables makes the start read every table of the database and
	// verify all its checksums, not only the tables not verified before
	// (store.Options.VerifyAllTables).
	VerifyAllTables bool
	// InMemory keeps all data in memory (tests only; nothing is durable).
	InMemory bool
	// Store is the storage backend: StoreBadger (the default when empty;
	// the database lives in DataDir) or StorePostgres (in the PostgreSQL
	// database at DatabaseURL; DataDir still holds the generated admin
	// token).
	Store string
	// DatabaseURL is the PostgreSQL connection string of StorePostgres;
	// it must be empty otherwise. A host other than loopback or a unix
	// socket needs sslmode=require, verify-ca or verify-full.
	DatabaseURL string
	// OnStandby, when set, is called once if New finds another node
	// serving the PostgreSQL database (holding its writer role) and starts
	// waiting for it as a standby (see standby.go).
	OnStandby func()
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
	// MaxConnectionIdle closes connections without calls for this long, so
	// that idle connections do not pile up (a terminal heartbeats every
	// minute and keeps its connection).
	MaxConnectionIdle time.Duration
	// MaxHeaderListSize bounds the size of a call's header list (metadata)
	// in bytes; a bigger one is refused before it is buffered.
	MaxHeaderListSize uint32
	// MaxConnections bounds open connections in all (0: no bound); keep it
	// below the process's file descriptor limit. Connections beyond it are
	// closed at once.
	MaxConnections int
	// MaxConnectionsPerPeer bounds open connections from one peer, an IPv4
	// address or an IPv6 /64 (0: no bound). Loopback peers count only
	// against MaxConnections.
	MaxConnectionsPerPeer int
	// MaxConnectionAge and MaxConnectionAgeGrace bound a connection's life so
	// that clients rebalance; in-flight calls get the grace period.
	MaxConnectionAge, MaxConnectionAgeGrace time.Duration
	// ShutdownGrace is how long graceful shutdown waits for in-flight calls
	// before cutting them off.
	ShutdownGrace time.Duration
	// MaxPageBytes bounds the encoded items of one list page; a page that
	// would be bigger holds fewer items than asked for (with a next page
	// token). It must stay below MaxSendMsgSize.
	MaxPageBytes int

	// Quotas bound the call rate of each credential per class of RPCs.
	Quotas Quotas
	// LogSampling bounds repeated log lines (same level, message, method
	// and code): by default 20 per 10 s, then one line with the count of
	// those suppressed. Zero fields take the defaults.
	LogSampling logsample.Options
	// DiskReserve is the free space, in bytes, of the data directory's
	// filesystem below which writes are refused (Unavailable, reason
	// DISK_LOW) and health reports NOT_SERVING; reads still work and writes
	// resume by themselves once space returns. It is raised to the minimum
	// the store needs to finish its own writes (store.MinReserve); zero
	// means that minimum alone. Ignored for InMemory.
	DiskReserve int64
	// DiskCheckInterval is how often the free space is measured.
	DiskCheckInterval time.Duration
	// Webhooks tunes webhook deliveries (timeouts, retry period, backoff);
	// zero fields take webhook.DefaultConfig's values.
	Webhooks webhook.Config
	// AuditRetention is how long audit events are kept (default 400
	// days, past the year that PCI DSS asks for); older ones are pruned
	// hourly. Zero keeps them for good.
	AuditRetention time.Duration
	// AuditExportDir, when set, receives every audit event before it is
	// pruned, as JSON lines in audit-YYYY-MM.jsonl, synced before the
	// events are deleted. When empty, pruned events are gone: export them
	// first with `posfleet admin audit list`.
	AuditExportDir string
	// FaultRetention is how long terminal fault events are kept for the
	// fleet report; zero means 30 days.
	FaultRetention time.Duration

	// commitFault, when set (tests only), is the store's CommitFault
	// failpoint.
	commitFault func() error
	// statfs, when set (tests only), measures the data directory's free
	// bytes instead of statfs(2).
	statfs func() (int64, error)
}

// DefaultConfig returns production defaults for a server keeping its data in
// dataDir.
func DefaultConfig(dataDir string) Config {
	return Config{
		DataDir:               dataDir,
		AuditRetention:        400 * 24 * time.Hour,
		FaultRetention:        30 * 24 * time.Hour,
		MaxRecvMsgSize:        256 << 10,
		MaxSendMsgSize:        4 << 20,
		MaxConcurrentStreams:  256,
		MaxCallTimeout:        30 * time.Second,
		KeepaliveTime:         2 * time.Minute,
		KeepaliveTimeout:      20 * time.Second,
		MinClientPingInterval: 20 * time.Second,
		MaxConnectionIdle:     5 * time.Minute,
		MaxHeaderListSize:     16 << 10,
		MaxConnections:        10000,
		MaxConnectionsPerPeer: 1000,
		MaxConnectionAge:      4 * time.Hour,
		MaxConnectionAgeGrace: time.Minute,
		ShutdownGrace:         15 * time.Second,
		MaxPageBytes:          1 << 20,
		Quotas:                DefaultQuotas(),
		DiskCheckInterval:     store.DefaultSpaceOptions().Interval,
	}
}

// Validate reports the first unusable setting.
func (c Config) Validate() error {
	switch {
	case c.DataDir == "" && !c.InMemory:
		return errors.New("server: DataDir is required")
	case c.Store != "" && c.Store != StoreBadger && c.Store != StorePostgres:
		return fmt.Errorf("server: Store %q: want %s or %s", c.Store, StoreBadger, StorePostgres)
	case c.Store == StorePostgres && c.DatabaseURL == "":
		return errors.New("server: Store postgres needs a DatabaseURL")
	case c.Store != StorePostgres && c.DatabaseURL != "":
		return errors.New("server: a DatabaseURL is used only with Store postgres")
	case c.Store == StorePostgres && c.InMemory:
		return errors.New("server: InMemory is a Badger setting; it does not go with Store postgres")
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
	case c.MaxHeaderListSize < 1<<10:
		return fmt.Errorf("server: MaxHeaderListSize %d below 1 KiB", c.MaxHeaderListSize)
	case c.MaxConnections < 0 || c.MaxConnectionsPerPeer < 0:
		return errors.New("server: connection caps must not be negative")
	case c.MaxPageBytes < 1<<10 || c.MaxPageBytes > c.MaxSendMsgSize/2:
		return fmt.Errorf("server: MaxPageBytes %d out of range [1 KiB, MaxSendMsgSize/2]", c.MaxPageBytes)
	case c.ShutdownGrace <= 0:
		return errors.New("server: ShutdownGrace must be positive")
	case c.DiskReserve < 0:
		return errors.New("server: DiskReserve must not be negative")
	case c.AuditRetention < 0 || (c.AuditRetention > 0 && c.AuditRetention < 24*time.Hour):
		return errors.New("server: AuditRetention must be zero (keep for good) or at least 24h")
	case c.FaultRetention < 0 || (c.FaultRetention > 0 && c.FaultRetention < time.Hour):
		return errors.New("server: FaultRetention must be zero (30 days) or at least 1h")
	case !c.InMemory && c.DiskCheckInterval < 10*time.Millisecond:
		return errors.New("server: DiskCheckInterval must be at least 10ms")
	case c.AdminToken != "" && len(c.AdminToken) < 16:
		return errors.New("server: AdminToken must be at least 16 characters")
	}
	if c.Store == StorePostgres {
		if err := store.CheckPostgresURL(c.DatabaseURL); err != nil {
			return err
		}
	}
	if err := c.LogSampling.Validate(); err != nil {
		return err
	}
	if err := c.Webhooks.Validate(); err != nil {
		return err
	}
	return c.Quotas.Validate()
}
