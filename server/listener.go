package server

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/posfleet/posfleet/server/fleet"
)

// limitListener wraps a listener with connection caps: at most max open
// connections in all, and at most perPeer from one peer (an IPv4 address or
// an IPv6 /64, see fleet.PeerHost). A connection beyond a cap is accepted
// and closed at once, so that the kernel's backlog does not fill up and the
// client fails fast instead of hanging. Loopback peers are counted only
// against the global cap: a local reverse proxy or load generator speaks
// for many clients. It is safe for concurrent use.
type limitListener struct {
	net.Listener
	max, perPeer int
	logger       *slog.Logger
	// refused counts connections closed for a cap (both caps).
	refused atomic.Uint64
	// lastLog is when the last warning about refused connections was
	// logged (unix nanoseconds); warnings are spaced 10 s apart.
	lastLog atomic.Int64

	mu sync.Mutex // guards open and peers
	// open is the number of open connections.
	open int
	// peers counts open connections per non-loopback peer; a peer leaves
	// the map with its last connection, so its size is bounded by open.
	peers map[string]int
}

// newLimitListener caps the connections of lis; a cap of 0 is no cap.
func newLimitListener(lis net.Listener, max, perPeer int, logger *slog.Logger) *limitListener {
	return &limitListener{Listener: lis, max: max, perPeer: perPeer, logger: logger, peers: map[string]int{}}
}

// Accept returns the next connection within the caps, closing those beyond.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		peer, ok := l.admit(c.RemoteAddr())
		if ok {
			return &limitedConn{Conn: c, l: l, peer: peer}, nil
		}
		c.Close()
		n := l.refused.Add(1)
		// One warning per 10 s at most, with the running count: a flood of
		// connections must not become a flood of log lines.
		now := time.Now().UnixNano()
		if last := l.lastLog.Load(); now-last >= int64(10*time.Second) && l.lastLog.CompareAndSwap(last, now) {
			l.logger.Warn("connections refused: connection cap reached", "peer", peer, "refused_total", n,
				"max_connections", l.max, "max_connections_per_peer", l.perPeer)
		}
	}
}

// admit counts a new connection from addr if the caps allow it and returns
// its peer key ("" for loopback peers).
func (l *limitListener) admit(addr net.Addr) (string, bool) {
	peer := ""
	if addr != nil && !isLoopbackAddr(addr) {
		peer = fleet.PeerHost(addr.String())
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max > 0 && l.open >= l.max {
		return peer, false
	}
	if peer != "" && l.perPeer > 0 && l.peers[peer] >= l.perPeer {
		return peer, false
	}
	l.open++
	if peer != "" {
		l.peers[peer]++
	}
	return peer, true
}

// release forgets a closed connection.
func (l *limitListener) release(peer string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if peer == "" {
		return
	}
	if n := l.peers[peer]; n > 1 {
		l.peers[peer] = n - 1
	} else {
		delete(l.peers, peer)
	}
}

// isLoopbackAddr reports whether addr is a loopback IP address.
func isLoopbackAddr(addr net.Addr) bool {
	ap, err := netip.ParseAddrPort(addr.String())
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// limitedConn releases its slot in the listener's counts once, when closed.
type limitedConn struct {
	net.Conn
	l    *limitListener
	peer string
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.peer) })
	return err
}

// counts returns the open connections and those refused for a cap so far.
func (l *limitListener) counts() (open int, refused uint64) {
	l.mu.Lock()
	open = l.open
	l.mu.Unlock()
	return open, l.refused.Load()
}
