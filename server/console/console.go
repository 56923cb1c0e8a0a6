package console

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
	"github.com/posfleet/posfleet/server"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Config configures the console.
type Config struct {
	// SessionTTL is how long a sign-in lasts without being used; each
	// request renews it. Default 8h.
	SessionTTL time.Duration
	// SessionMaxAge caps a sign-in's life however busy it is. Default 24h.
	SessionMaxAge time.Duration
	// MaxSessions caps the signed-in sessions held in memory; beyond it the
	// least recently used is signed out. Default 10000.
	MaxSessions int
	// Secure marks the cookies Secure: set it when the console is served
	// over TLS.
	Secure bool
	// CallTimeout bounds each AdminService call. Default 10s.
	CallTimeout time.Duration
	// RefreshSeconds is how often the dashboard and rollout pages reload
	// their figures. Default 10.
	RefreshSeconds int
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{SessionTTL: 8 * time.Hour, SessionMaxAge: 24 * time.Hour, MaxSessions: 10000, CallTimeout: 10 * time.Second, RefreshSeconds: 10}
}

// Validate reports a setting out of range.
func (c Config) Validate() error {
	switch {
	case c.SessionTTL < time.Minute || c.SessionTTL > 7*24*time.Hour:
		return fmt.Errorf("console: session TTL %v out of range 1m..168h", c.SessionTTL)
	case c.SessionMaxAge < c.SessionTTL || c.SessionMaxAge > 30*24*time.Hour:
		return fmt.Errorf("console: session max age %v must be at least the TTL and at most 720h", c.SessionMaxAge)
	case c.MaxSessions < 1:
		return errors.New("console: max sessions must be positive")
	case c.CallTimeout <= 0:
		return errors.New("console: call timeout must be positive")
	case c.RefreshSeconds < 1:
		return errors.New("console: refresh interval must be positive")
	}
	return nil
}

// Console is the operator web console: an http.Handler.
type Console struct {
	cfg      Config
	admin    pb.AdminServiceClient
	logger   *slog.Logger
	sessions *sessions
	pages    map[string]*template.Template
	mux      *http.ServeMux
	static   http.Handler
}

// New builds a console that calls admin, a client of the server's own
// AdminService (see server.Server.InProcessConn), with the signed-in
// operator's token.
func New(cfg Config, admin pb.AdminServiceClient, logger *slog.Logger) (*Console, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	sub, err := fs.Sub(assets, "static")
	if err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, admin: admin, logger: logger, sessions: newSessions(cfg), pages: pages,
		static: http.StripPrefix("/static/", http.FileServerFS(sub))}
	c.mux = c.routes()
	return c, nil
}

// routes maps the console's URLs. Handlers taking a *request need a
// signed-in session; POST handlers also pass the CSRF check.
func (c *Console) routes() *http.ServeMux {
	m := http.NewServeMux()
	m.Handle("GET /static/", c.static)
	m.HandleFunc("GET /login", c.loginPage)
	m.HandleFunc("POST /login", c.login)
	m.HandleFunc("GET /lang/{lang}", c.setLang)
	get := func(p string, h func(*request)) { m.HandleFunc("GET "+p, c.signedIn(h, false)) }
	post := func(p string, h func(*request)) { m.HandleFunc("POST "+p, c.signedIn(h, true)) }
	post("/logout", c.logout)
	get("/{$}", c.dashboard)
	get("/terminals", c.terminals)
	get("/terminals/{id}", c.terminal)
	post("/terminals/{id}/{action}", c.terminalAction)
	get("/merchants", c.merchants)
	post("/merchants", c.createMerchant)
	get("/merchants/{id}", c.merchant)
	post("/merchants/{id}", c.updateMerchant)
	post("/merchants/{id}/stores", c.createStore)
	get("/config", c.configPage)
	post("/config", c.publishConfig)
	get("/rollouts/{id}", c.rollout)
	post("/rollouts/{id}/{action}", c.rolloutAction)
	get("/alerts", c.alerts)
	get("/audit", c.audit)
	get("/settlement", c.settlement)
	get("/settlement.csv", c.settlementCSV)
	get("/transactions", c.transactions)
	get("/tokens", c.tokens)
	post("/tokens", c.createToken)
	post("/tokens/{id}/revoke", c.revokeToken)
	return m
}

// ServeHTTP serves the console with its security headers on every answer.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// No inline script or style anywhere: everything comes from /static/.
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	if c.cfg.Secure {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	if !strings.HasPrefix(r.URL.Path, "/static/") {
		h.Set("Cache-Control", "no-store")
	}
	c.mux.ServeHTTP(w, r)
}

// request is one signed-in request.
type request struct {
	w    http.ResponseWriter
	r    *http.Request
	sess *session
	lang *lang
	c    *Console
}

// signedIn wraps a handler that needs a session; write handlers also need
// the session's CSRF token in the form and a same-origin Origin.
func (c *Console) signedIn(h func(*request), write bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess := c.sessions.get(r)
		if sess == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			http.Error(w, "signed out", http.StatusUnauthorized)
			return
		}
		req := &request{w: w, r: r, sess: sess, lang: pickLang(r), c: c}
		if write {
			r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
			if !sameOrigin(r) || subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(sess.csrf)) != 1 {
				c.logger.Warn("console: write refused: CSRF check failed", "path", r.URL.Path, "peer", r.RemoteAddr)
				req.fail(http.StatusForbidden, req.T("The form has expired or did not come from this console. Reload the page and try again."))
				return
			}
		}
		h(req)
	}
}

// sameOrigin reports whether a write came from a page of this console: the
// Origin header, or failing it the Referer, names this host. Browsers send
// Origin with every POST; a request with neither is refused.
func sameOrigin(r *http.Request) bool {
	src := r.Header.Get("Origin")
	if src == "" {
		src = r.Header.Get("Referer")
	}
	u, err := url.Parse(src)
	return err == nil && src != "" && u.Host == r.Host
}

// T translates s into the request's language.
func (q *request) T(s string) string { return q.lang.T(s) }

// ctx returns a context for one AdminService call made for the signed-in
// operator: their token as bearer, their address forwarded.
func (q *request) ctx() (context.Context, context.CancelFunc) {
	return q.c.callContext(q.r, q.sess.token)
}

func (c *Console) callContext(r *http.Request, token string) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(r.Context(), c.cfg.CallTimeout)
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token, server.ForwardedPeerMetadata, r.RemoteAddr)
	return ctx, cancel
}

// callError is an AdminService refusal as a page shows it.
type callError struct {
	Code    codes.Code
	Message string
	// Fields maps request field paths ("merchant.legal_name") to what is
	// wrong with them, from google.rpc.BadRequest.
	Fields map[string]string
}

func toCallError(err error) *callError {
	st := status.Convert(err)
	ce := &callError{Code: st.Code(), Message: st.Message(), Fields: map[string]string{}}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				ce.Fields[v.GetField()] = v.GetDescription()
			}
		}
	}
	return ce
}

// failed handles an AdminService error that ends the request: a token that
// stopped working signs the session out; other errors are shown. It
// returns the error for pages that show it next to a form instead
// (InvalidArgument, FailedPrecondition, AlreadyExists, NotFound).
func (q *request) failed(err error) *callError {
	ce := toCallError(err)
	switch ce.Code {
	case codes.Unauthenticated:
		q.c.sessions.drop(q.sess.id)
		http.Redirect(q.w, q.r, "/login", http.StatusSeeOther)
	case codes.PermissionDenied:
		q.fail(http.StatusForbidden, q.T("Your role may not do this.")+" ("+ce.Message+")")
	case codes.InvalidArgument, codes.FailedPrecondition, codes.AlreadyExists, codes.NotFound, codes.OutOfRange:
		return ce
	case codes.ResourceExhausted:
		q.fail(http.StatusTooManyRequests, q.T("Too many requests; wait a moment and try again."))
	default:
		q.c.logger.Warn("console: call failed", "code", ce.Code.String(), "err", ce.Message)
		q.fail(http.StatusBadGateway, q.T("The server could not answer:")+" "+ce.Message)
	}
	return nil
}

// fail renders an error page.
func (q *request) fail(code int, msg string) {
	q.w.WriteHeader(code)
	q.render("error", q.T("Error"), map[string]string{"Message": msg})
}

// httpStatus is the HTTP status for a refusal shown on a page.
func httpStatus(ce *callError) int {
	switch ce.Code {
	case codes.NotFound:
		return http.StatusNotFound
	case codes.InvalidArgument, codes.OutOfRange:
		return http.StatusBadRequest
	}
	return http.StatusConflict
}
