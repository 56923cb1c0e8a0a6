package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/posfleet/posfleet/server/auth"
	"github.com/posfleet/posfleet/server/fleet"
)

// Quota is a token bucket: Burst calls at once, then Rate calls per second
// on average.
type Quota struct {
	// Rate is the sustained number of calls per second.
	Rate float64
	// Burst is how many calls may come at once.
	Burst int
}

// Quotas bound how often one credential (a terminal's, an admin token) may
// call each class of RPCs. A call beyond its quota gets ResourceExhausted
// with ErrorInfo RATE_LIMITED and a RetryInfo saying when to retry. Quotas
// are per credential, never per address: one flooding terminal does not
// slow down the others of its store behind the same NAT. Public methods
// (Register, health, reflection) are limited elsewhere (registration limits
// in the fleet, transport limits).
type Quotas struct {
	// Payment covers Authorize, Reverse, Refund and CloseBatch.
	Payment Quota
	// Heartbeat covers Heartbeat (a terminal sends one a minute).
	Heartbeat Quota
	// Config covers WatchConfig (each stream opened), AckConfig and
	// AckCommand.
	Config Quota
	// Identity covers VerifyMerchant and GetSigningKeys.
	Identity Quota
	// Credential covers RotateCredential: each rotation is audited, so its
	// rate bounds the audit trail's growth.
	Credential Quota
	// AdminRead covers operator methods an AUDITOR may call (Get*, List*,
	// reports).
	AdminRead Quota
	// AdminWrite covers the other operator methods.
	AdminWrite Quota
	// MaxCredentials bounds how many credentials each class tracks; beyond
	// it, those with full buckets are forgotten first.
	MaxCredentials int
	// Disabled turns every quota off (only for measuring the server's
	// ceiling with a load generator).
	Disabled bool
}

// DefaultQuotas returns quotas far above what a well-behaved terminal or
// operator tool needs and far below what floods a server.
func DefaultQuotas() Quotas {
	return Quotas{
		Payment:        Quota{Rate: 100, Burst: 200},
		Heartbeat:      Quota{Rate: 1, Burst: 10},
		Config:         Quota{Rate: 5, Burst: 20},
		Identity:       Quota{Rate: 2, Burst: 20},
		Credential:     Quota{Rate: 1.0 / 60, Burst: 5},
		AdminRead:      Quota{Rate: 50, Burst: 200},
		AdminWrite:     Quota{Rate: 500, Burst: 1000},
		MaxCredentials: 100_000,
	}
}

// Scale multiplies every rate and burst by f (bursts stay at least 1); a
// factor of 0 disables the quotas.
func (q Quotas) Scale(f float64) Quotas {
	if f == 0 {
		q.Disabled = true
		return q
	}
	for _, x := range q.all() {
		x.q.Rate *= f
		x.q.Burst = max(1, int(float64(x.q.Burst)*f))
	}
	return q
}

type namedQuota struct {
	class quotaClass
	q     *Quota
}

func (q *Quotas) all() []namedQuota {
	return []namedQuota{
		{classPayment, &q.Payment}, {classHeartbeat, &q.Heartbeat}, {classConfig, &q.Config},
		{classIdentity, &q.Identity}, {classCredential, &q.Credential},
		{classAdminRead, &q.AdminRead}, {classAdminWrite, &q.AdminWrite},
	}
}

// Validate reports the first unusable quota.
func (q Quotas) Validate() error {
	if q.Disabled {
		return nil
	}
	if q.MaxCredentials < 1 {
		return errors.New("server: Quotas.MaxCredentials must be positive")
	}
	for _, x := range q.all() {
		if x.q.Rate <= 0 || x.q.Burst < 1 {
			return fmt.Errorf("server: quota %s needs a positive rate and a burst of at least 1", x.class)
		}
	}
	return nil
}

// quotaClass groups RPCs that share a quota.
type quotaClass string

const (
	classPayment    quotaClass = "payment"
	classHeartbeat  quotaClass = "heartbeat"
	classConfig     quotaClass = "config"
	classIdentity   quotaClass = "identity"
	classCredential quotaClass = "credential"
	classAdminRead  quotaClass = "admin-read"
	classAdminWrite quotaClass = "admin-write"
)

// terminalQuotaClass is the class of each terminal method; operator methods
// are classed by their least role (see classOf).
var terminalQuotaClass = map[string]quotaClass{
	terminalSvc + "Heartbeat":        classHeartbeat,
	terminalSvc + "WatchConfig":      classConfig,
	terminalSvc + "AckConfig":        classConfig,
	terminalSvc + "AckCommand":       classConfig,
	terminalSvc + "VerifyMerchant":   classIdentity,
	terminalSvc + "GetSigningKeys":   classIdentity,
	terminalSvc + "RotateCredential": classCredential,
	paymentSvc + "Authorize":         classPayment,
	paymentSvc + "Reverse":           classPayment,
	paymentSvc + "Refund":            classPayment,
	paymentSvc + "CloseBatch":        classPayment,
	paymentSvc + "Capture":           classPayment,
	paymentSvc + "GetOpenBatch":      classPayment,
}

// classOf returns method's quota class, "" for public methods.
func classOf(method string) quotaClass {
	need := methodAccess[method]
	switch {
	case need.public:
		return ""
	case need.terminal:
		if c, ok := terminalQuotaClass[method]; ok {
			return c
		}
		return classConfig
	case need.role == auth.RoleAuditor:
		return classAdminRead
	}
	return classAdminWrite
}

// quotaLimiter enforces Quotas: one keyed limiter per class, keyed by the
// caller's actor name. It is safe for concurrent use.
type quotaLimiter struct {
	limits map[quotaClass]*fleet.Limiter // read-only after construction
	now    func() time.Time
}

func newQuotaLimiter(q Quotas) *quotaLimiter {
	if q.Disabled {
		return nil
	}
	l := &quotaLimiter{limits: map[quotaClass]*fleet.Limiter{}, now: time.Now}
	for _, x := range q.all() {
		l.limits[x.class] = fleet.NewLimiter(x.q.Rate, x.q.Burst, q.MaxCredentials)
	}
	return l
}

// take spends one call of the authenticated caller's quota for method. It
// returns a ResourceExhausted status error when the quota is spent. A nil
// limiter (quotas disabled) allows everything.
func (l *quotaLimiter) take(ctx context.Context, method string) error {
	if l == nil {
		return nil
	}
	p, ok := auth.FromContext(ctx)
	if !ok {
		return nil
	}
	class := classOf(method)
	lim := l.limits[class]
	if lim == nil {
		return nil
	}
	ok, wait := lim.Take(p.Actor(), l.now())
	if ok {
		return nil
	}
	return rateLimited(fmt.Sprintf("%s calls of this credential over quota; retry later", class), string(class), wait)
}

// rateLimited builds a ResourceExhausted status with ErrorInfo RATE_LIMITED
// naming the spent quota, and a RetryInfo carrying wait (rounded up to a
// millisecond).
func rateLimited(msg, quota string, wait time.Duration) error {
	return refusal{code: codes.ResourceExhausted, reason: reasonRateLimited, msg: msg,
		metadata: map[string]string{metaQuota: quota}, retryAfter: max(wait, time.Millisecond)}.err()
}
