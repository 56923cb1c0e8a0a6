package webhook

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/store"
)

// Sentinel errors. The server maps each to a gRPC status code.
var (
	// ErrNotFound: no endpoint with that ID.
	ErrNotFound = errors.New("webhook: endpoint not found")
	// ErrDeliveryNotFound: the endpoint has no delivery of that event.
	ErrDeliveryNotFound = errors.New("webhook: delivery not found")
	// ErrDeliveryPending: the delivery is still being attempted.
	ErrDeliveryPending = errors.New("webhook: delivery still pending")
	// ErrTooManyEndpoints: Config.MaxEndpoints are configured already.
	ErrTooManyEndpoints = errors.New("webhook: too many endpoints")
	// ErrBadPageToken: a page token this package did not issue.
	ErrBadPageToken = errors.New("webhook: invalid page token")
	// ErrClosed: the webhooks are shut down.
	ErrClosed = errors.New("webhook: shut down")
)

// Limits of endpoint fields.
const (
	MaxURLLength         = 2048
	MaxDescriptionLength = 200
)

// DeliveryStatus is where a delivery stands. Its values equal the
// protocol's WebhookDeliveryStatus numbers.
type DeliveryStatus int32

// Delivery statuses.
const (
	StatusUnspecified DeliveryStatus = iota
	// StatusPending: not yet accepted by the receiver; being retried.
	StatusPending
	// StatusDelivered: the receiver answered 2xx.
	StatusDelivered
	// StatusFailed: retried for Config.RetryFor without success.
	StatusFailed
)

// String returns the status's protocol name without prefix.
func (s DeliveryStatus) String() string {
	switch s {
	case StatusPending:
		return "PENDING"
	case StatusDelivered:
		return "DELIVERED"
	case StatusFailed:
		return "FAILED"
	}
	return "UNSPECIFIED"
}

// Config tunes delivery. The zero value of a field means its default.
type Config struct {
	// RequestTimeout bounds one delivery attempt, from connecting to the
	// end of the response. Default 10s.
	RequestTimeout time.Duration
	// RetryFor is how long an event is retried before its delivery is
	// marked failed and the endpoint moves on. Default 24h.
	RetryFor time.Duration
	// InitialBackoff is the wait after the first failed attempt; it doubles
	// with each further failure up to MaxBackoff, each wait drawn between
	// half and the whole of that (jitter). Default 5s.
	InitialBackoff time.Duration
	// MaxBackoff caps the wait between attempts. Default 30m.
	MaxBackoff time.Duration
	// Retention is how long finished deliveries stay listed. Default 720h.
	Retention time.Duration
	// MaxEndpoints caps the number of endpoints. Default 100.
	MaxEndpoints int
	// MaxRedirects is how many http(s) redirects a delivery follows; a
	// redirect to any other scheme is never followed. Default 3.
	MaxRedirects int
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		RequestTimeout: 10 * time.Second,
		RetryFor:       24 * time.Hour,
		InitialBackoff: 5 * time.Second,
		MaxBackoff:     30 * time.Minute,
		Retention:      720 * time.Hour,
		MaxEndpoints:   100,
		MaxRedirects:   3,
	}
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	for _, f := range []struct{ v, def *time.Duration }{
		{&c.RequestTimeout, &d.RequestTimeout}, {&c.RetryFor, &d.RetryFor}, {&c.InitialBackoff, &d.InitialBackoff},
		{&c.MaxBackoff, &d.MaxBackoff}, {&c.Retention, &d.Retention},
	} {
		if *f.v == 0 {
			*f.v = *f.def
		}
	}
	if c.MaxEndpoints == 0 {
		c.MaxEndpoints = d.MaxEndpoints
	}
	if c.MaxRedirects == 0 {
		c.MaxRedirects = d.MaxRedirects
	}
	return c
}

// Validate reports a setting that cannot work.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.RequestTimeout < 0 || c.RetryFor < 0 || c.InitialBackoff < 0 || c.MaxBackoff < 0 || c.Retention < 0:
		return errors.New("webhook: durations must not be negative")
	case c.MaxBackoff < c.InitialBackoff:
		return errors.New("webhook: MaxBackoff must be at least InitialBackoff")
	case c.MaxEndpoints < 0 || c.MaxRedirects < 0:
		return errors.New("webhook: MaxEndpoints and MaxRedirects must not be negative")
	}
	return nil
}

// Spec is what an endpoint is created with.
type Spec struct {
	// URL receives the deliveries; http or https only.
	URL string
	// Events are the events sent to it; at least one.
	Events []Event
	// Description is free text for operators.
	Description string
}

// Patch changes an endpoint; nil fields stay as they are.
type Patch struct {
	URL         *string
	Events      []Event
	Description *string
	Disabled    *bool
}

// Endpoint is a receiver of webhook deliveries, without its secret.
type Endpoint struct {
	ID            string
	URL           string
	Events        []Event
	Description   string
	Disabled      bool
	Created       time.Time
	Updated       time.Time
	SecretRotated time.Time
	Status        Status
}

// Status is an endpoint's delivery progress.
type Status struct {
	// PendingEventID is the event being delivered now ("" when idle);
	// later events wait for it.
	PendingEventID string
	// Delivered and Failed count finished deliveries.
	Delivered, Failed uint64
	// LastAttempt, LastSuccess and LastFailure are the times of the latest
	// attempt, success and failed attempt.
	LastAttempt, LastSuccess, LastFailure time.Time
	// LastError says why the latest failed attempt failed.
	LastError string
	// LastStatusCode is the HTTP status of the latest attempt that got an
	// answer.
	LastStatusCode int
	// ConsecutiveFailures counts failed attempts since the last success.
	ConsecutiveFailures uint32
}

// Delivery is the delivery of one event to one endpoint.
type Delivery struct {
	EndpointID string
	// EventID is the event's stable ID, as sent in Posfleet-Event-Id.
	EventID string
	Event   Event
	Status  DeliveryStatus
	// Attempts counts the attempts since the delivery was (re)queued.
	Attempts uint32
	// Redeliveries counts operator redeliveries.
	Redeliveries uint32
	Created      time.Time
	LastAttempt  time.Time
	// NextAttempt is when a pending delivery is tried next.
	NextAttempt    time.Time
	Finished       time.Time
	LastError      string
	LastStatusCode int
}

// EventID returns the stable ID of the event with the given audit ID.
func EventID(auditID uint64) string { return fmt.Sprintf("evt_%d", auditID) }

// parseEventID is the inverse of EventID.
func parseEventID(s string) (uint64, bool) {
	var id uint64
	rest, ok := strings.CutPrefix(s, "evt_")
	if !ok || rest == "" || len(rest) > 20 {
		return 0, false
	}
	for _, r := range rest {
		if r < '0' || r > '9' {
			return 0, false
		}
		id = id*10 + uint64(r-'0')
	}
	return id, id != 0
}

// Webhooks holds the endpoints and runs one delivery worker per endpoint.
// It is safe for concurrent use.
type Webhooks struct {
	db     *store.DB
	log    *audit.Log
	logger *slog.Logger
	cfg    Config
	client *http.Client
	now    func() time.Time

	ctx    context.Context
	cancel context.CancelFunc

	mu sync.Mutex // guards eps, workers, closed
	// eps holds each endpoint's configuration by ID.
	eps map[string]*endpointRec
	// workers holds each endpoint's delivery worker by ID.
	workers map[string]*worker
	closed  bool
}

// Open loads the endpoints from db and starts their delivery workers,
// which follow log. Close stops them.
func Open(ctx context.Context, db *store.DB, log *audit.Log, cfg Config, logger *slog.Logger) (*Webhooks, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	w := &Webhooks{
		db: db, log: log, logger: logger, cfg: cfg, now: time.Now,
		eps: map[string]*endpointRec{}, workers: map[string]*worker{},
	}
	w.client = newClient(cfg)
	w.ctx, w.cancel = context.WithCancel(context.WithoutCancel(ctx))
	states := map[string]stateRec{}
	err := db.View(func(tx *store.Txn) error {
		if err := tx.Iterate(prefixEndpoint, nil, func(k, v []byte) error {
			var r endpointRec
			if err := decode(v, &r); err != nil {
				return fmt.Errorf("webhook: decode %q: %w", k, err)
			}
			w.eps[r.ID] = &r
			return nil
		}); err != nil {
			return err
		}
		return tx.Iterate(prefixState, nil, func(k, v []byte) error {
			var st stateRec
			if err := decode(v, &st); err != nil {
				return fmt.Errorf("webhook: decode %q: %w", k, err)
			}
			states[string(k[len(prefixState):])] = st
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	for id := range w.eps {
		w.startLocked(id, states[id])
	}
	if err := w.sweepDeleted(ctx); err != nil {
		w.Close()
		return nil, err
	}
	logger.Info("webhooks loaded", "endpoints", len(w.eps))
	return w, nil
}

// Close stops the delivery workers; a delivery in flight is abandoned and
// sent again after the next Open.
func (w *Webhooks) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	workers := make([]*worker, 0, len(w.workers))
	for _, wk := range w.workers {
		workers = append(workers, wk)
	}
	w.mu.Unlock()
	w.cancel()
	for _, wk := range workers {
		<-wk.done
	}
	return nil
}

// Create adds an endpoint that receives the events committed from now on.
// It returns the endpoint and its signing secret, which is shown only here
// and by RotateSecret.
func (w *Webhooks) Create(ctx context.Context, spec Spec, who audit.Actor) (Endpoint, string, error) {
	var v violations
	u := checkURL(&v, "url", spec.URL)
	evs := checkEvents(&v, "events", spec.Events, true)
	checkDescription(&v, "description", spec.Description)
	if err := v.err(); err != nil {
		return Endpoint{}, "", err
	}
	secret, err := newSecret()
	if err != nil {
		return Endpoint{}, "", err
	}
	id, err := newID()
	if err != nil {
		return Endpoint{}, "", err
	}
	now := w.now().UTC()
	rec := &endpointRec{ID: id, URL: u, Events: evs, Description: spec.Description, Secret: secret,
		Created: now, Updated: now, SecretRotated: now}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return Endpoint{}, "", ErrClosed
	}
	if len(w.eps) >= w.cfg.MaxEndpoints {
		return Endpoint{}, "", fmt.Errorf("%w: at most %d", ErrTooManyEndpoints, w.cfg.MaxEndpoints)
	}
	// The endpoint gets the events after the last one that may already be
	// on disk; an event still being committed has a higher ID.
	st := stateRec{Cursor: w.log.Watermark() - 1}
	err = w.log.Commit(func(tx *store.Txn) error {
		if err := setRec(tx, keyEndpoint(id), rec); err != nil {
			return err
		}
		return setRec(tx, keyState(id), &st)
	}, w.changeEvent(rec, who, "created"))
	if err != nil {
		return Endpoint{}, "", err
	}
	w.eps[id] = rec
	w.startLocked(id, st)
	return w.endpointLocked(rec), secret, nil
}

// Get returns the endpoint with its delivery status.
func (w *Webhooks) Get(ctx context.Context, id string) (Endpoint, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	rec := w.eps[id]
	if rec == nil {
		return Endpoint{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return w.endpointLocked(rec), nil
}

// List returns every endpoint, oldest first.
func (w *Webhooks) List(ctx context.Context) []Endpoint {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]Endpoint, 0, len(w.eps))
	for _, rec := range w.eps {
		out = append(out, w.endpointLocked(rec))
	}
	slices.SortFunc(out, func(a, b Endpoint) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Update changes an endpoint's URL, events, description or disabled flag.
// A disabled endpoint keeps its place in the log and receives what it
// missed once enabled again.
func (w *Webhooks) Update(ctx context.Context, id string, p Patch, who audit.Actor) (Endpoint, error) {
	var v violations
	var u string
	if p.URL != nil {
		u = checkURL(&v, "url", *p.URL)
	}
	var evs []Event
	if p.Events != nil {
		evs = checkEvents(&v, "events", p.Events, true)
	}
	if p.Description != nil {
		checkDescription(&v, "description", *p.Description)
	}
	if err := v.err(); err != nil {
		return Endpoint{}, err
	}
	return w.change(id, who, "updated", func(rec *endpointRec) {
		if p.URL != nil {
			rec.URL = u
		}
		if p.Events != nil {
			rec.Events = evs
		}
		if p.Description != nil {
			rec.Description = *p.Description
		}
		if p.Disabled != nil {
			rec.Disabled = *p.Disabled
		}
	})
}

// RotateSecret replaces the endpoint's signing secret and returns the new
// one; deliveries from now on are signed with it.
func (w *Webhooks) RotateSecret(ctx context.Context, id string, who audit.Actor) (Endpoint, string, error) {
	secret, err := newSecret()
	if err != nil {
		return Endpoint{}, "", err
	}
	ep, err := w.change(id, who, "secret rotated", func(rec *endpointRec) {
		rec.Secret, rec.SecretRotated = secret, rec.Updated
	})
	if err != nil {
		return Endpoint{}, "", err
	}
	return ep, secret, nil
}

// change applies fn to a copy of the endpoint's record, commits it with its
// audit event, and wakes the endpoint's worker.
func (w *Webhooks) change(id string, who audit.Actor, what string, fn func(*endpointRec)) (Endpoint, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return Endpoint{}, ErrClosed
	}
	old := w.eps[id]
	if old == nil {
		return Endpoint{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	rec := *old
	rec.Events = slices.Clone(old.Events)
	rec.Updated = w.now().UTC()
	fn(&rec)
	err := w.log.Commit(func(tx *store.Txn) error { return setRec(tx, keyEndpoint(id), &rec) },
		w.changeEvent(&rec, who, what))
	if err != nil {
		return Endpoint{}, err
	}
	w.eps[id] = &rec
	w.workers[id].poke()
	return w.endpointLocked(&rec), nil
}

// Delete removes an endpoint, its pending and past deliveries.
func (w *Webhooks) Delete(ctx context.Context, id string, who audit.Actor) error {
	w.mu.Lock()
	wk := w.workers[id]
	if w.closed || wk == nil {
		w.mu.Unlock()
		if w.closed {
			return ErrClosed
		}
		return fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	w.mu.Unlock()
	// Stop the worker first, so that it writes nothing after the delete.
	wk.stop()
	w.mu.Lock()
	rec := w.eps[id]
	if rec == nil || w.workers[id] != wk { // deleted meanwhile
		w.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	err := w.log.Commit(func(tx *store.Txn) error {
		if err := tx.Delete(keyEndpoint(id)); err != nil {
			return err
		}
		if err := tx.Delete(keyState(id)); err != nil {
			return err
		}
		return tx.Set(keyDeleted(id), nil)
	}, w.changeEvent(rec, who, "deleted"))
	if err != nil {
		w.startLocked(id, wk.state())
		w.mu.Unlock()
		return err
	}
	delete(w.eps, id)
	delete(w.workers, id)
	w.mu.Unlock()
	return w.sweep(ctx, id)
}

// sweep deletes the deliveries and redeliveries of a deleted endpoint, in
// bounded transactions, then its tombstone. What a crash leaves is swept by
// the next Open.
func (w *Webhooks) sweep(ctx context.Context, id string) error {
	for _, p := range [][]byte{endpointPrefix(prefixDelivery, id), endpointPrefix(prefixRedelivery, id)} {
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			n, err := deletePrefix(w.db, p, 1000)
			if err != nil {
				return err
			}
			if n == 0 {
				break
			}
		}
	}
	return w.db.UpdateReserved(func(tx *store.Txn) error { return tx.Delete(keyDeleted(id)) })
}

// sweepDeleted finishes the sweeps of deleted endpoints that a crash
// interrupted.
func (w *Webhooks) sweepDeleted(ctx context.Context) error {
	var ids []string
	err := w.db.View(func(tx *store.Txn) error {
		return tx.Iterate(prefixDeleted, nil, func(k, _ []byte) error {
			ids = append(ids, string(k[len(prefixDeleted):]))
			return nil
		})
	})
	for _, id := range ids {
		if err == nil {
			err = w.sweep(ctx, id)
		}
	}
	return err
}

// Redeliver queues the event with ID eventID ("evt_...") for another
// delivery to the endpoint, after the delivery in progress. The event must
// have been delivered or failed there before.
func (w *Webhooks) Redeliver(ctx context.Context, id, eventID string, who audit.Actor) (Delivery, error) {
	var v violations
	auditID, ok := parseEventID(eventID)
	if !ok {
		v.add("event_id", "must be an event ID such as evt_123")
	}
	if err := v.err(); err != nil {
		return Delivery{}, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	rec := w.eps[id]
	if rec == nil {
		return Delivery{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	var d deliveryRec
	ev := w.changeEvent(rec, who, "redelivery of "+eventID+" queued")
	err := w.log.Commit(func(tx *store.Txn) error {
		err := getRec(tx, keyDelivery(id, auditID), &d)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: %s at %s", ErrDeliveryNotFound, eventID, id)
		}
		if err != nil {
			return err
		}
		if _, err := tx.Get(keyRedelivery(id, auditID)); err == nil || d.Status == StatusPending {
			return fmt.Errorf("%w: %s", ErrDeliveryPending, eventID)
		}
		return tx.Set(keyRedelivery(id, auditID), nil)
	}, ev)
	if err != nil {
		return Delivery{}, err
	}
	w.workers[id].poke()
	return delivery(id, &d), nil
}

// ListDeliveries returns up to limit deliveries of the endpoint, newest
// first, only those with the given status unless it is StatusUnspecified,
// and a token for the next page ("" on the last).
func (w *Webhooks) ListDeliveries(ctx context.Context, id string, status DeliveryStatus, limit int, pageToken string) ([]Delivery, string, error) {
	if limit <= 0 {
		limit = 50
	}
	w.mu.Lock()
	_, ok := w.eps[id]
	w.mu.Unlock()
	if !ok {
		return nil, "", fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	prefix := endpointPrefix(prefixDelivery, id)
	var start []byte
	if pageToken != "" {
		b, err := base64.RawURLEncoding.DecodeString(pageToken)
		if err != nil || len(b) != 8 {
			return nil, "", ErrBadPageToken
		}
		start = store.AppendUint64(slices.Clone(prefix), binary.BigEndian.Uint64(b))
	}
	var out []Delivery
	var next string
	err := w.db.View(func(tx *store.Txn) error {
		return tx.IterateReverse(prefix, start, func(k, v []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			var d deliveryRec
			if err := decode(v, &d); err != nil {
				return fmt.Errorf("webhook: decode %q: %w", k, err)
			}
			if status != StatusUnspecified && d.Status != status {
				return nil
			}
			if len(out) == limit {
				next = base64.RawURLEncoding.EncodeToString(store.AppendUint64(nil, d.AuditID))
				return store.ErrStop
			}
			out = append(out, delivery(id, &d))
			return nil
		})
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

func delivery(id string, d *deliveryRec) Delivery {
	return Delivery{
		EndpointID: id, EventID: EventID(d.AuditID), Event: d.Event, Status: d.Status,
		Attempts: d.Attempts, Redeliveries: d.Redeliveries, Created: d.Created, LastAttempt: d.Last,
		NextAttempt: d.Next, Finished: d.Finished, LastError: d.LastError, LastStatusCode: d.LastStatusCode,
	}
}

// endpointLocked returns the public view of rec. Called with mu held.
func (w *Webhooks) endpointLocked(rec *endpointRec) Endpoint {
	ep := Endpoint{
		ID: rec.ID, URL: rec.URL, Events: slices.Clone(rec.Events), Description: rec.Description,
		Disabled: rec.Disabled, Created: rec.Created, Updated: rec.Updated, SecretRotated: rec.SecretRotated,
	}
	if wk := w.workers[rec.ID]; wk != nil {
		ep.Status = wk.status()
	}
	return ep
}

// changeEvent is the audit event of an administrative change. It names the
// URL's scheme and host only: a query string may hold a receiver's token.
func (w *Webhooks) changeEvent(rec *endpointRec, who audit.Actor, what string) audit.Event {
	host := ""
	if u, err := url.Parse(rec.URL); err == nil {
		host = u.Scheme + "://" + u.Host
	}
	evs := make([]string, len(rec.Events))
	for i, e := range rec.Events {
		evs[i] = string(e)
	}
	return audit.Event{
		Type: audit.WebhookChanged, Actor: who.Name, Peer: who.Peer,
		Message: fmt.Sprintf("webhook %s %s", rec.ID, what),
		Attributes: map[string]string{
			"endpoint_id": rec.ID, "host": host, "events": strings.Join(evs, ","),
			"disabled": fmt.Sprint(rec.Disabled),
		},
	}
}

// newSecret returns a fresh signing secret: "whsec_" and 32 random bytes
// in base64url.
func newSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("webhook: secret: %w", err)
	}
	return "whsec_" + base64.RawURLEncoding.EncodeToString(b), nil
}

// newID returns a fresh endpoint ID: "we_" and 16 random lowercase
// letters (about 75 bits). Letters only, so that no ID ever reads as a card
// number to the server's detector, as a hex ID with only digits could.
func newID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("webhook: id: %w", err)
	}
	for i := range b {
		b[i] = 'a' + b[i]%26 // bias below 2%: acceptable for an identifier
	}
	return "we_" + string(b), nil
}

// checkURL validates an endpoint URL and returns it.
func checkURL(v *violations, field, s string) string {
	if s == "" {
		v.add(field, "is required")
		return ""
	}
	if len(s) > MaxURLLength {
		v.add(field, "must be at most %d bytes", MaxURLLength)
		return ""
	}
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		v.add(field, "must not contain spaces or control characters")
		return ""
	}
	u, err := url.Parse(s)
	switch {
	case err != nil:
		v.add(field, "is not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		v.add(field, "must be an http or https URL")
	case u.Host == "" || u.Hostname() == "":
		v.add(field, "must name a host")
	case u.User != nil:
		v.add(field, "must not carry a user name or password")
	case u.Fragment != "":
		v.add(field, "must not have a fragment")
	default:
		return s
	}
	return ""
}

// checkEvents validates a list of event names and returns it without
// duplicates.
func checkEvents(v *violations, field string, evs []Event, required bool) []Event {
	if len(evs) == 0 {
		if required {
			v.add(field, "must name at least one event (%s)", eventNames())
		}
		return nil
	}
	var out []Event
	for i, e := range evs {
		if !e.Valid() {
			v.add(fmt.Sprintf("%s[%d]", field, i), "unknown event %q (known: %s)", clip(string(e)), eventNames())
			continue
		}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out
}

func checkDescription(v *violations, field, s string) {
	switch {
	case !utf8.ValidString(s):
		v.add(field, "must be valid UTF-8")
	case utf8.RuneCountInString(s) > MaxDescriptionLength:
		v.add(field, "must be at most %d characters", MaxDescriptionLength)
	}
}

func eventNames() string {
	names := make([]string, len(Events))
	for i, e := range Events {
		names[i] = string(e)
	}
	return strings.Join(names, ", ")
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 40 {
		return strings.ToValidUTF8(s[:40], "") + "..."
	}
	return s
}
