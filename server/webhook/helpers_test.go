package webhook_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/posfleet/posfleet/server/audit"
	"github.com/posfleet/posfleet/server/store"
	"github.com/posfleet/posfleet/server/store/storetest"
	"github.com/posfleet/posfleet/server/webhook"
)

// env is a database, its audit log and webhooks, closed at the end of the
// test.
type env struct {
	t     *testing.T
	dir   string
	db    *store.DB
	log   *audit.Log
	hooks *webhook.Webhooks
	cfg   webhook.Config
}

// fastConfig retries quickly so that tests take milliseconds.
func fastConfig() webhook.Config {
	return webhook.Config{RequestTimeout: 2 * time.Second, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
}

func newEnv(t *testing.T, cfg webhook.Config) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), cfg: cfg}
	e.open()
	t.Cleanup(e.close)
	return e
}

func (e *env) open() {
	e.t.Helper()
	var err error
	// Closed by e.close, after the engines on it.
	if e.db, err = storetest.TryOpenWith(e.t, store.DefaultOptions(e.dir)); err != nil {
		e.t.Fatal(err)
	}
	if e.log, err = audit.Open(e.t.Context(), e.db, nil); err != nil {
		e.t.Fatal(err)
	}
	if e.hooks, err = webhook.Open(e.t.Context(), e.db, e.log, e.cfg, nil); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) close() {
	if e.db == nil {
		return
	}
	e.hooks.Close()
	e.log.Close()
	e.db.Close()
	e.db = nil
}

// commit commits audit events as a change would.
func (e *env) commit(evs ...audit.Event) {
	e.t.Helper()
	if err := e.log.Commit(func(*store.Txn) error { return nil }, evs...); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) create(url string, evs ...webhook.Event) (webhook.Endpoint, string) {
	e.t.Helper()
	ep, secret, err := e.hooks.Create(e.t.Context(), webhook.Spec{URL: url, Events: evs}, audit.Actor{Name: "admin:test"})
	if err != nil {
		e.t.Fatal(err)
	}
	return ep, secret
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// delivery is one request a receiver got.
type delivery struct {
	id, typ, sig, attempt string
	body                  []byte
	at                    time.Time
}

// receiver is a local webhook receiver whose answer tests choose.
type receiver struct {
	mu sync.Mutex // guards got, status
	// got holds every request received, in arrival order.
	got []delivery
	// status is the answer to the next requests (0: 200).
	status int
	srv    *http.Server
	addr   string
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{addr: lis.Addr().String()}
	r.serve(lis)
	t.Cleanup(r.stop)
	return r
}

func (r *receiver) url() string { return "http://" + r.addr + "/hooks" }

func (r *receiver) serve(lis net.Listener) {
	r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, delivery{
			id: req.Header.Get(webhook.EventIDHeader), typ: req.Header.Get(webhook.EventTypeHeader),
			sig: req.Header.Get(webhook.SignatureHeader), attempt: req.Header.Get(webhook.AttemptHeader), body: b, at: time.Now(),
		})
		status := r.status
		r.mu.Unlock()
		if status == 0 {
			status = http.StatusOK
		}
		w.WriteHeader(status)
	})}
	go r.srv.Serve(lis)
}

// stop takes the receiver down: connections are refused.
func (r *receiver) stop() {
	if r.srv != nil {
		r.srv.Close()
		r.srv = nil
	}
}

// start brings the receiver back on its address.
func (r *receiver) start(t *testing.T) {
	t.Helper()
	var lis net.Listener
	var err error
	for range 50 {
		if lis, err = net.Listen("tcp", r.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("receiver cannot listen again on %s: %v", r.addr, err)
	}
	r.serve(lis)
}

func (r *receiver) setStatus(code int) {
	r.mu.Lock()
	r.status = code
	r.mu.Unlock()
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery{}, r.got...)
}

// count returns how many requests arrived.
func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// listDeliveries returns the endpoint's deliveries, newest first.
func (e *env) listDeliveries(id string, st webhook.DeliveryStatus) []webhook.Delivery {
	e.t.Helper()
	ds, _, err := e.hooks.ListDeliveries(context.Background(), id, st, 100, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return ds
}
