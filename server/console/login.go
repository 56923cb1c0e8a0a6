package console

import (
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// loginPage shows the sign-in form.
func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.write(w, "login", &view{L: pickLang(r), Title: "Sign in", Path: "/login", Form: r.URL.Query()})
}

// login signs in with an admin token: AdminService.WhoAmI checks it (and
// audits and rate limits failures per browser address), and the session
// keeps it in server memory only.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	l := pickLang(r)
	v := &view{L: l, Title: "Sign in", Path: "/login", Form: r.URL.Query()}
	// A sign-in form posted from another site would sign the victim in as
	// the attacker (login CSRF).
	if !sameOrigin(r) {
		w.WriteHeader(http.StatusForbidden)
		v.Err = l.T("The form has expired or did not come from this console. Reload the page and try again.")
		c.write(w, "login", v)
		return
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	if token == "" {
		w.WriteHeader(http.StatusUnauthorized)
		v.Err = l.T("Enter an admin token.")
		c.write(w, "login", v)
		return
	}
	ctx, cancel := c.callContext(r, token)
	defer cancel()
	who, err := c.admin.WhoAmI(ctx, &pb.WhoAmIRequest{})
	if err != nil {
		ce := toCallError(err)
		status := http.StatusUnauthorized
		v.Err = l.T("That token is not valid.")
		if ce.Code == codes.ResourceExhausted {
			status, v.Err = http.StatusTooManyRequests, l.T("Too many failed sign-ins from this address; wait a minute.")
		} else if ce.Code != codes.Unauthenticated && ce.Code != codes.PermissionDenied {
			status, v.Err = http.StatusBadGateway, l.T("The server could not answer:")+" "+ce.Message
		}
		w.WriteHeader(status)
		c.write(w, "login", v)
		return
	}
	// A fresh session ID at each sign-in (no fixation); any old one ends.
	if old := c.sessions.get(r); old != nil {
		c.sessions.drop(old.id)
	}
	c.sessions.create(w, token, who.GetAdminToken())
	c.logger.Info("console: signed in", "token_id", who.GetAdminToken().GetTokenId(), "role", who.GetAdminToken().GetRole().String(), "peer", r.RemoteAddr)
	next := r.URL.Query().Get("next")
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		next = "/"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// logout signs out.
func (c *Console) logout(q *request) {
	c.sessions.drop(q.sess.id)
	c.sessions.clearCookie(q.w)
	http.Redirect(q.w, q.r, "/login", http.StatusSeeOther)
}
