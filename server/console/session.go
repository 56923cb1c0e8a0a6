package console

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"sync"
	"time"

	pb "github.com/posfleet/posfleet/proto/posfleet/v1"
)

// sessionCookie names the cookie that carries a session ID. The admin token
// never leaves the server: the cookie holds only a random ID.
const sessionCookie = "posfleet_session"

// session is one signed-in operator.
type session struct {
	id string
	// token is the operator's admin token, sent as bearer on every call.
	token string
	// csrf is the token every form of this session carries.
	csrf string
	// who is the token as WhoAmI returned it at sign-in.
	who     *pb.AdminToken
	created time.Time
	// used is when the session last served a request; guarded by
	// sessions.mu.
	used time.Time
}

// Role returns the session's role.
func (s *session) Role() pb.Role { return s.who.GetRole() }

// sessions holds the signed-in sessions in memory: a restart signs
// everyone out, and the tokens are never written anywhere.
type sessions struct {
	cfg Config
	now func() time.Time

	mu   sync.Mutex // guards byID and each session's used
	byID map[string]*session
}

func newSessions(cfg Config) *sessions {
	return &sessions{cfg: cfg, now: time.Now, byID: map[string]*session{}}
}

// randomID returns 32 random bytes, base64url.
func randomID() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create signs in a new session and sets its cookie.
func (s *sessions) create(w http.ResponseWriter, token string, who *pb.AdminToken) *session {
	now := s.now()
	sess := &session{id: randomID(), token: token, csrf: randomID(), who: who, created: now, used: now}
	s.mu.Lock()
	s.expireLocked(now)
	if len(s.byID) >= s.cfg.MaxSessions {
		var oldest *session
		for _, o := range s.byID {
			if oldest == nil || o.used.Before(oldest.used) {
				oldest = o
			}
		}
		delete(s.byID, oldest.id)
	}
	s.byID[sess.id] = sess
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: sess.id, Path: "/", HttpOnly: true, Secure: s.cfg.Secure,
		SameSite: http.SameSiteStrictMode, MaxAge: int(s.cfg.SessionMaxAge / time.Second),
	})
	return sess
}

// get returns the request's live session, renewing it, or nil.
func (s *sessions) get(r *http.Request) *session {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.byID[ck.Value]
	if sess == nil {
		return nil
	}
	if s.expired(sess, now) {
		delete(s.byID, sess.id)
		return nil
	}
	sess.used = now
	return sess
}

func (s *sessions) expired(sess *session, now time.Time) bool {
	return now.Sub(sess.used) > s.cfg.SessionTTL || now.Sub(sess.created) > s.cfg.SessionMaxAge
}

// expireLocked forgets expired sessions; s.mu is held.
func (s *sessions) expireLocked(now time.Time) {
	for id, sess := range s.byID {
		if s.expired(sess, now) {
			delete(s.byID, id)
		}
	}
}

// drop signs a session out.
func (s *sessions) drop(id string) {
	s.mu.Lock()
	delete(s.byID, id)
	s.mu.Unlock()
}

// clearCookie removes the session cookie from the browser.
func (s *sessions) clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true, Secure: s.cfg.Secure, SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// Name returns the name of the session's token.
func (s *session) Name() string { return s.who.GetName() }
