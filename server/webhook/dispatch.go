package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/posfleet/posfleet/internal/buildinfo"
	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/store"
)

// worker delivers one endpoint's events, one at a time, in order.
type worker struct {
	id     string
	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}

	mu sync.Mutex // guards st
	// st is the endpoint's delivery state as last stored.
	st stateRec
}

// poke wakes the worker to re-read its endpoint (changed, or a redelivery
// queued).
func (wk *worker) poke() {
	select {
	case wk.wake <- struct{}{}:
	default:
	}
}

// stop ends the worker and waits for it.
func (wk *worker) stop() {
	wk.cancel()
	<-wk.done
}

func (wk *worker) status() Status {
	wk.mu.Lock()
	defer wk.mu.Unlock()
	st := wk.st
	out := Status{
		Delivered: st.Delivered, Failed: st.Failed, LastAttempt: st.LastAttempt, LastSuccess: st.LastSuccess,
		LastFailure: st.LastFailure, LastError: st.LastError, LastStatusCode: st.LastStatusCode,
		ConsecutiveFailures: st.ConsecutiveFailures,
	}
	if st.Head != 0 {
		out.PendingEventID = EventID(st.Head)
	}
	return out
}

func (wk *worker) state() stateRec {
	wk.mu.Lock()
	defer wk.mu.Unlock()
	return wk.st
}

// startLocked starts the worker of endpoint id from st. Called with mu held.
func (w *Webhooks) startLocked(id string, st stateRec) {
	ctx, cancel := context.WithCancel(w.ctx)
	wk := &worker{id: id, wake: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{}), st: st}
	w.workers[id] = wk
	go func() {
		defer close(wk.done)
		w.run(ctx, wk)
	}()
}

// config returns a copy of the endpoint's configuration, nil once deleted.
func (w *Webhooks) config(id string) *endpointRec {
	w.mu.Lock()
	defer w.mu.Unlock()
	rec := w.eps[id]
	if rec == nil {
		return nil
	}
	c := *rec
	return &c
}

// retryPause is the wait after a storage error in the worker.
const retryPause = time.Second

// run is the worker loop: continue the delivery in progress, or claim the
// next queued redelivery, or the next event from the log, and deliver it.
func (w *Webhooks) run(ctx context.Context, wk *worker) {
	for ctx.Err() == nil {
		ep := w.config(wk.id)
		if ep == nil {
			return
		}
		if ep.Disabled {
			w.sleep(ctx, wk, nil, 0)
			continue
		}
		settled := w.log.Settled()
		d, err := w.claim(ctx, wk, ep)
		if err != nil {
			if ctx.Err() == nil {
				w.logger.Error("webhook: reading the outbox failed", "endpoint", wk.id, "err", err)
				w.sleep(ctx, wk, nil, retryPause)
			}
			continue
		}
		if d == nil {
			w.sleep(ctx, wk, settled, 0)
			continue
		}
		w.deliver(ctx, wk, d)
	}
}

// sleep waits for ctx, a poke, settled (when not nil) or d (when positive).
func (w *Webhooks) sleep(ctx context.Context, wk *worker, settled <-chan struct{}, d time.Duration) {
	var timer <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-ctx.Done():
	case <-wk.wake:
	case <-settled:
	case <-timer:
	}
}

// claim returns the delivery to work on: the one in progress, else a queued
// redelivery, else the next event in the log that the endpoint takes (its
// delivery is stored as pending together with the advanced cursor). It
// returns nil when there is nothing to do.
func (w *Webhooks) claim(ctx context.Context, wk *worker, ep *endpointRec) (*deliveryRec, error) {
	st := wk.state()
	if st.Head != 0 {
		var d deliveryRec
		err := w.db.View(func(tx *store.Txn) error { return getRec(tx, keyDelivery(wk.id, st.Head), &d) })
		if errors.Is(err, store.ErrNotFound) {
			// Cannot happen: the head is stored with its delivery. Move on.
			st.Head = 0
			return nil, w.putState(wk, st, nil)
		}
		return &d, err
	}
	if d, err := w.claimRedelivery(wk, st); d != nil || err != nil {
		return d, err
	}
	types := typesFor(ep.Events)
	for {
		evs, upto, err := w.log.Tail(ctx, st.Cursor, types, 16)
		if err != nil {
			return nil, err
		}
		for _, e := range evs {
			name, ok := eventOf(&e)
			if !ok || !slices.Contains(ep.Events, name) {
				continue
			}
			now := w.now().UTC()
			d := &deliveryRec{AuditID: e.ID, Event: name, Status: StatusPending, Created: now}
			st.Cursor, st.Head = e.ID, e.ID
			return d, w.putState(wk, st, d)
		}
		if upto == st.Cursor {
			return nil, nil
		}
		// Only events the endpoint does not take: remember how far the
		// log was read (in memory; a restart reads them again). Unless
		// its events changed (or it was disabled) while the log was
		// read: then events it takes now may be among those skipped, so
		// the caller reads its configuration again and the log from the
		// old cursor.
		if cur := w.config(wk.id); cur == nil || cur.Disabled != ep.Disabled || !slices.Equal(cur.Events, ep.Events) {
			return nil, nil
		}
		st.Cursor = upto
		wk.mu.Lock()
		wk.st.Cursor = upto
		wk.mu.Unlock()
	}
}

// claimRedelivery takes the oldest queued redelivery, if any.
func (w *Webhooks) claimRedelivery(wk *worker, st stateRec) (*deliveryRec, error) {
	var d *deliveryRec
	var key []byte
	err := w.db.View(func(tx *store.Txn) error {
		return tx.Iterate(endpointPrefix(prefixRedelivery, wk.id), nil, func(k, _ []byte) error {
			key = append([]byte{}, k...)
			return store.ErrStop
		})
	})
	if err != nil || key == nil {
		return nil, err
	}
	var auditID uint64
	for _, b := range key[len(key)-8:] {
		auditID = auditID<<8 | uint64(b)
	}
	err = w.db.UpdateReserved(func(tx *store.Txn) error {
		var rec deliveryRec
		if err := getRec(tx, keyDelivery(wk.id, auditID), &rec); err != nil {
			return err
		}
		rec.Status, rec.Attempts, rec.Next, rec.Finished = StatusPending, 0, time.Time{}, time.Time{}
		rec.First = time.Time{}
		rec.Redeliveries++
		d = &rec
		st.Head = auditID
		if err := tx.Delete(key); err != nil {
			return err
		}
		if err := setRec(tx, keyDelivery(wk.id, auditID), &rec); err != nil {
			return err
		}
		return setRec(tx, keyState(wk.id), &st)
	})
	if errors.Is(err, store.ErrNotFound) {
		// The delivery expired from the history: drop the request.
		err = w.db.UpdateReserved(func(tx *store.Txn) error { return tx.Delete(key) })
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	wk.mu.Lock()
	wk.st = st
	wk.mu.Unlock()
	return d, nil
}

// putState stores st (and d, when not nil) and makes st the worker's state.
// Deliveries that are finished get the retention period as their lifetime.
func (w *Webhooks) putState(wk *worker, st stateRec, d *deliveryRec) error {
	err := w.db.UpdateReserved(func(tx *store.Txn) error {
		if d != nil {
			b, err := encode(d)
			if err != nil {
				return err
			}
			k := keyDelivery(wk.id, d.AuditID)
			if d.Status == StatusPending {
				err = tx.Set(k, b)
			} else {
				err = tx.SetWithTTL(k, b, w.cfg.Retention)
			}
			if err != nil {
				return err
			}
		}
		return setRec(tx, keyState(wk.id), &st)
	})
	if err == nil {
		wk.mu.Lock()
		wk.st = st
		wk.mu.Unlock()
	}
	return err
}

// deliver attempts d until it is delivered or finally failed, waiting out
// the backoff between attempts. It returns early on shutdown, when the
// endpoint is disabled or deleted, and after a storage error.
func (w *Webhooks) deliver(ctx context.Context, wk *worker, d *deliveryRec) {
	e, err := w.log.Get(d.AuditID)
	if err != nil && !errors.Is(err, audit.ErrEventNotFound) {
		w.logger.Error("webhook: reading the event failed", "endpoint", wk.id, "event", EventID(d.AuditID), "err", err)
		w.sleep(ctx, wk, nil, retryPause)
		return
	}
	var body []byte
	if err == nil {
		body, err = payload(&e, d.Event)
	}
	tried := "" // the URL of the last attempt
	for ctx.Err() == nil {
		ep := w.config(wk.id)
		if ep == nil || ep.Disabled {
			return
		}
		if tried != "" && ep.URL != tried {
			d.Next = time.Time{} // an operator changed the URL: try it now
		}
		if wait := d.Next.Sub(w.now()); wait > 0 {
			w.sleep(ctx, wk, nil, wait)
			continue
		}
		tried = ep.URL
		var code int
		attemptErr := err // an event that cannot be read or encoded fails every attempt
		if attemptErr == nil {
			code, attemptErr = w.post(ctx, ep, d, body)
		}
		if ctx.Err() != nil {
			return // shutting down: the attempt is made again after restart
		}
		if !w.record(wk, d, code, attemptErr) {
			w.sleep(ctx, wk, nil, retryPause)
			return
		}
		if d.Status != StatusPending {
			return
		}
	}
}

// record stores the outcome of an attempt: delivered, failed for good
// after Config.RetryFor, or pending with the next attempt scheduled. It
// reports whether the outcome was stored.
func (w *Webhooks) record(wk *worker, d *deliveryRec, code int, attemptErr error) bool {
	now := w.now().UTC()
	st := wk.state()
	next := *d
	next.Attempts++
	next.Last, next.LastStatusCode = now, code
	if next.First.IsZero() {
		next.First = now
	}
	st.LastAttempt = now
	if code != 0 {
		st.LastStatusCode = code
	}
	if attemptErr == nil {
		next.Status, next.Finished, next.Next, next.LastError = StatusDelivered, now, time.Time{}, ""
		st.Head, st.Delivered, st.LastSuccess, st.ConsecutiveFailures = 0, st.Delivered+1, now, 0
	} else {
		next.LastError = attemptErr.Error()
		st.LastFailure, st.LastError = now, next.LastError
		st.ConsecutiveFailures++
		if now.Sub(next.First) >= w.cfg.RetryFor {
			next.Status, next.Finished, next.Next = StatusFailed, now, time.Time{}
			st.Head, st.Failed = 0, st.Failed+1
			w.logger.Warn("webhook delivery failed for good", "endpoint", wk.id, "event", EventID(d.AuditID),
				"attempts", next.Attempts, "err", next.LastError)
		} else {
			next.Next = now.Add(w.backoff(next.Attempts))
		}
	}
	if err := w.putState(wk, st, &next); err != nil {
		w.logger.Error("webhook: storing a delivery attempt failed", "endpoint", wk.id, "event", EventID(d.AuditID), "err", err)
		return false
	}
	*d = next
	return true
}

// backoff returns the wait after the n-th failed attempt: InitialBackoff
// doubled n-1 times, capped at MaxBackoff, drawn between half and all of it.
func (w *Webhooks) backoff(n uint32) time.Duration {
	b := w.cfg.InitialBackoff
	for i := uint32(1); i < n && b < w.cfg.MaxBackoff; i++ {
		b *= 2
	}
	b = min(b, w.cfg.MaxBackoff)
	if b <= 1 {
		return b
	}
	return b/2 + rand.N(b/2+1)
}

// body is the JSON body of a delivery.
type body struct {
	// ID is the event's stable ID, the same on every attempt.
	ID      string    `json:"id"`
	Type    Event     `json:"type"`
	Created time.Time `json:"created"`
	Data    data      `json:"data"`
}

type data struct {
	AuditEventID string            `json:"audit_event_id"`
	Actor        string            `json:"actor,omitempty"`
	MerchantID   string            `json:"merchant_id,omitempty"`
	StoreID      string            `json:"store_id,omitempty"`
	TerminalID   string            `json:"terminal_id,omitempty"`
	Message      string            `json:"message,omitempty"`
	Attributes   map[string]string `json:"attributes,omitempty"`
}

// payload encodes the body for event e (the same bytes on every attempt).
func payload(e *audit.Event, name Event) ([]byte, error) {
	return json.Marshal(body{
		ID: EventID(e.ID), Type: name, Created: e.Time.UTC(),
		Data: data{
			AuditEventID: strconv.FormatUint(e.ID, 10), Actor: e.Actor, MerchantID: e.MerchantID,
			StoreID: e.StoreID, TerminalID: e.TerminalID, Message: e.Message, Attributes: e.Attributes,
		},
	})
}

// post makes one attempt: the signed request, and the receiver's status.
// Only a 2xx answer counts as delivered.
func (w *Webhooks) post(ctx context.Context, ep *endpointRec, d *deliveryRec, b []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(b))
	if err != nil {
		return 0, errors.New("bad endpoint URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set(EventIDHeader, EventID(d.AuditID))
	req.Header.Set(EventTypeHeader, string(d.Event))
	req.Header.Set(AttemptHeader, strconv.FormatUint(uint64(d.Attempts)+1, 10))
	req.Header.Set(SignatureHeader, Sign(ep.Secret, w.now(), b))
	resp, err := w.client.Do(req)
	if err != nil {
		// The URL (whose query may hold a receiver's token) stays out of
		// the stored and logged error.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, fmt.Errorf("request failed: %v", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("receiver answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}

// newClient returns the HTTP client of deliveries: a timeout per attempt,
// and redirects followed only to http(s) URLs, at most cfg.MaxRedirects.
func newClient(cfg Config) *http.Client {
	return &http.Client{
		Timeout:   cfg.RequestTimeout,
		Transport: http.DefaultTransport.(*http.Transport).Clone(),
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if s := req.URL.Scheme; s != "http" && s != "https" {
				return fmt.Errorf("redirect to a %q URL refused", s)
			}
			if len(via) > cfg.MaxRedirects {
				return fmt.Errorf("stopped after %d redirects", cfg.MaxRedirects)
			}
			return nil
		},
	}
}

// userAgent names the sender and its version.
var userAgent = "posfleet-webhooks/" + buildinfo.Read().Version
