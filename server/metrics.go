package server

import (
	"net/http"
	"strings"
	"sync"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/configpush"
	"github.com/posfleet/posfleet/server/fleet"
	"github.com/posfleet/posfleet/server/payment"
)

// Buckets of the latency and size histograms, in seconds or decisions.
var (
	// rpcBuckets resolve the sub-millisecond to 10 s range of RPC
	// latencies; Authorize's SLO lives between 1 and 50 ms.
	rpcBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	// commitBuckets span a fast NVMe fsync (250 µs) to a stalled disk (1 s).
	commitBuckets = prometheus.ExponentialBuckets(.00025, 2, 13)
	// commitSizeBuckets span one decision to payment.Options.MaxBatchOps.
	commitSizeBuckets = prometheus.ExponentialBuckets(1, 2, 13)
	// propagationBuckets span a watched terminal (well under a second) to
	// a terminal that was off for a day.
	propagationBuckets = []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400}
)

// alertTypes are the audit event types counted as alerts, with their label.
var alertTypes = []struct {
	t     audit.Type
	label string
}{
	{audit.MerchantMismatch, "merchant_mismatch"},
	{audit.BatchOutOfBalance, "batch_out_of_balance"},
	{audit.IdentityCollision, "identity_collision"},
	{audit.RegistrationRefused, "registration_refused"},
}

// responseCodes are the Authorize response codes counted with their own
// label; any other counts as "other".
var responseCodes = []string{
	payment.CodeApproved, payment.CodeInvalidMerchant, payment.CodeDoNotHonour,
	payment.CodeInvalidTransaction, payment.CodeInvalidAmount, payment.CodeInvalidCard,
	payment.CodeInsufficientFunds, payment.CodeExpiredCard, payment.CodeNotPermitted,
	payment.CodeExceedsAmountLimit, payment.CodeExceedsFrequency,
	payment.CodeDuplicateTransmission, payment.CodeSystemError,
}

// Reasons of posfleet_rate_limited_total besides the quota classes
// ("quota_<class>").
const (
	limitAuthFailures = "auth_failures"
	limitRegistration = "registration"
)

// metrics are the server's Prometheus metrics on a registry of their own
// (several servers may run in one process, as in tests). The gRPC series
// come from go-grpc-middleware's provider; posfleet's own series start with
// posfleet_. Hot-path counters are resolved to their label children once,
// here, so that recording costs no allocation. No label carries a terminal,
// merchant or other unbounded value.
type metrics struct {
	reg  *prometheus.Registry
	grpc *grpcprom.ServerMetrics

	// authByCode holds posfleet_payment_authorizations_total's child of
	// each known response code; authOther the rest. Read-only after
	// newMetrics.
	authByCode map[string]prometheus.Counter
	authOther  prometheus.Counter
	// approved is posfleet_payment_approved_minor_units_total; its
	// children (one per ISO 4217 currency, a bounded set) are cached in
	// approvedBy.
	approved   *prometheus.CounterVec
	approvedBy sync.Map // currency → prometheus.Counter

	commitSize    prometheus.Histogram
	commitSeconds prometheus.Histogram
	propagation   prometheus.Histogram

	// limited counts refused calls by reason; limitedBy caches children
	// (quota classes and the reasons above, a bounded set).
	limited   *prometheus.CounterVec
	limitedBy sync.Map // reason → prometheus.Counter
}

// newMetrics builds the registry with the process, Go runtime and gRPC
// collectors, posfleet's own instruments, and s's state read at scrape time.
func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		grpc: grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
			grpcprom.WithHistogramBuckets(rpcBuckets))),
		authByCode: map[string]prometheus.Counter{},
		approved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "posfleet_payment_approved_minor_units_total",
			Help: "Sum of approved Authorize amounts in minor units of their currency (replays not counted).",
		}, []string{"currency"}),
		commitSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "posfleet_payment_commit_decisions",
			Help:    "Decisions made durable by one group commit of the payment engine.",
			Buckets: commitSizeBuckets,
		}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "posfleet_payment_commit_seconds",
			Help:    "Time the payment engine's group commit took to write and fsync one commit.",
			Buckets: commitBuckets,
		}),
		propagation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "posfleet_config_propagation_seconds",
			Help:    "Time from issuing a terminal's config version to the terminal acknowledging it as applied.",
			Buckets: propagationBuckets,
		}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "posfleet_rate_limited_total",
			Help: "Calls refused with ResourceExhausted by a rate limit, by reason: quota_<class> (per-credential quotas), auth_failures (failed authentications from one address), registration (registration attempts).",
		}, []string{"reason"}),
	}
	auths := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "posfleet_payment_authorizations_total",
		Help: "Authorize decisions by decision and ISO 8583 response code (replays not counted).",
	}, []string{"decision", "response_code"})
	for _, c := range responseCodes {
		m.authByCode[c] = auths.WithLabelValues(decisionLabel(c), c)
	}
	m.authOther = auths.WithLabelValues("declined", "other")
	for _, r := range []string{limitAuthFailures, limitRegistration, "quota_" + string(classPayment)} {
		// Present (at 0) from the start, for rate() and alerts.
		m.limitedBy.Store(r, m.limited.WithLabelValues(r))
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.grpc, auths, m.approved, m.commitSize, m.commitSeconds, m.propagation, m.limited,
		stateCollector{s},
	)
	return m
}

// decisionLabel is the decision label of a response code.
func decisionLabel(code string) string {
	if code == payment.CodeApproved {
		return "approved"
	}
	return "declined"
}

// authorized counts a decided Authorize: its response code and, for an
// approval, its amount. Replays and failed calls are not counted.
func (m *metrics) authorized(amount payment.Money, res payment.AuthorizeResult, err error) {
	if err != nil || res.Replayed {
		return
	}
	c, ok := m.authByCode[res.ResponseCode]
	if !ok {
		c = m.authOther
	}
	c.Inc()
	if res.Decision != payment.DecisionApproved || amount.MinorUnits <= 0 {
		return
	}
	v, ok := m.approvedBy.Load(amount.Currency)
	if !ok {
		v, _ = m.approvedBy.LoadOrStore(amount.Currency, m.approved.WithLabelValues(amount.Currency))
	}
	v.(prometheus.Counter).Add(float64(amount.MinorUnits))
}

// committed observes one group commit (payment.Options.OnCommit).
func (m *metrics) committed(decisions int, elapsed time.Duration) {
	m.commitSize.Observe(float64(decisions))
	m.commitSeconds.Observe(elapsed.Seconds())
}

// configApplied observes the propagation delay of a config version issued
// at published and acknowledged as applied now.
func (m *metrics) configApplied(published, now time.Time) {
	if published.IsZero() || now.Before(published) {
		return
	}
	m.propagation.Observe(now.Sub(published).Seconds())
}

// rateLimited counts a call refused for reason.
func (m *metrics) rateLimited(reason string) {
	v, ok := m.limitedBy.Load(reason)
	if !ok {
		v, _ = m.limitedBy.LoadOrStore(reason, m.limited.WithLabelValues(reason))
	}
	v.(prometheus.Counter).Inc()
}

// refusedCall counts err as a rate-limit refusal of a handler of method
// when it is one; refusals by authorize are counted there.
func (m *metrics) refusedCall(method string, err error) {
	if method == terminalSvc+"Register" && status.Code(err) == codes.ResourceExhausted {
		m.rateLimited(limitRegistration)
	}
}

// Descriptions of the series stateCollector reads at scrape time.
var (
	descTerminals = prometheus.NewDesc("posfleet_terminals",
		"Terminals that are not retired, by connectivity (from their last contact and heartbeat interval).", []string{"connectivity"}, nil)
	descWatchers = prometheus.NewDesc("posfleet_config_watchers",
		"Open WatchConfig streams.", nil, nil)
	descRollouts = prometheus.NewDesc("posfleet_config_rollouts",
		"Rollouts still in force, by state.", []string{"state"}, nil)
	descAlerts = prometheus.NewDesc("posfleet_alerts_total",
		"Alerts written to the audit trail since the server started, by type.", []string{"type"}, nil)
	descStoreSize = prometheus.NewDesc("posfleet_store_size_bytes",
		"Size of the database on disk by part (lsm, vlog); refreshed by the store about once a minute.", []string{"part"}, nil)
	descDiskFree = prometheus.NewDesc("posfleet_disk_free_bytes",
		"Free space of the data directory's filesystem at the last check.", nil, nil)
	descDiskReserve = prometheus.NewDesc("posfleet_disk_reserve_bytes",
		"Free space below which writes are refused (DISK_LOW).", nil, nil)
	descDiskLow = prometheus.NewDesc("posfleet_disk_low",
		"1 while writes are refused for want of disk space, else 0.", nil, nil)
	descPaymentsHealthy = prometheus.NewDesc("posfleet_payment_engine_healthy",
		"1 while the payment engine decides requests, 0 once a commit failed or it closed.", nil, nil)
	descConnsOpen = prometheus.NewDesc("posfleet_connections_open",
		"Open client connections.", nil, nil)
	descConnsRefused = prometheus.NewDesc("posfleet_connections_refused_total",
		"Connections closed at once because a connection cap was reached.", nil, nil)
)

// connectivities are the fleet's connectivity classes, all reported (0
// when empty) so that alerts compare like with like.
var connectivities = []fleet.Connectivity{fleet.Online, fleet.Stale, fleet.Offline, fleet.NeverSeen}

// rolloutStates are the states of rollouts in force, all reported.
var rolloutStates = []configpush.State{configpush.StateRunning, configpush.StatePaused, configpush.StateHalted, configpush.StateCompleted}

// stateCollector reports the server's state when scraped: the fleet,
// config push, alerts, storage and connections. It reads memory only.
type stateCollector struct{ s *Server }

// Describe implements prometheus.Collector.
func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTerminals, descWatchers, descRollouts, descAlerts, descStoreSize,
		descDiskFree, descDiskReserve, descDiskLow, descPaymentsHealthy, descConnsOpen, descConnsRefused} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	if s.eng.Fleet != nil {
		by := s.eng.Fleet.CountByConnectivity()
		for _, k := range connectivities {
			gauge(descTerminals, float64(by[k]), strings.ToLower(k.String()))
		}
	}
	if s.eng.Config != nil {
		gauge(descWatchers, float64(s.eng.Config.Watching()))
		by := s.eng.Config.RolloutsByState()
		for _, st := range rolloutStates {
			gauge(descRollouts, float64(by[st]), strings.ToLower(st.String()))
		}
	}
	if s.eng.Audit != nil {
		for _, a := range alertTypes {
			counter(descAlerts, float64(s.eng.Audit.Count(a.t)), a.label)
		}
	}
	if s.eng.DB != nil {
		lsm, vlog := s.eng.DB.Size()
		gauge(descStoreSize, float64(lsm), "lsm")
		gauge(descStoreSize, float64(vlog), "vlog")
	}
	if s.eng.Space != nil {
		st := s.eng.Space.Status()
		gauge(descDiskFree, float64(st.FreeBytes))
		gauge(descDiskReserve, float64(st.ReserveBytes))
		gauge(descDiskLow, boolValue(st.Low))
	}
	if s.eng.Payments() != nil {
		gauge(descPaymentsHealthy, boolValue(s.eng.Payments().Healthy()))
	}
	var open int
	var refused uint64
	if l := s.conns.Load(); l != nil {
		open, refused = l.counts()
	}
	gauge(descConnsOpen, float64(open))
	counter(descConnsRefused, float64(refused))
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// MetricsHandler serves the server's metrics in the Prometheus exposition
// formats (text, or OpenMetrics when the scraper asks for it).
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{
		Registry:          s.metrics.reg, // counts its own scrape errors
		EnableOpenMetrics: true,
		Timeout:           10 * time.Second,
	})
}
