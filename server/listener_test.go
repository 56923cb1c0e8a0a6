package server

import (
	"log/slog"
	"net"
	"testing"
)

// fakeListener hands out pipe connections that claim the given remote
// addresses, so that the caps can be tested for any peer.
type fakeListener struct {
	addrs  chan net.Addr
	closed []*fakeConn
}

type fakeConn struct {
	net.Conn
	remote net.Addr
	closed bool
}

func (c *fakeConn) RemoteAddr() net.Addr { return c.remote }
func (c *fakeConn) Close() error         { c.closed = true; return nil }

func (l *fakeListener) Accept() (net.Conn, error) {
	a, ok := <-l.addrs
	if !ok {
		return nil, net.ErrClosed
	}
	c := &fakeConn{remote: a}
	l.closed = append(l.closed, c)
	return c, nil
}
func (l *fakeListener) Close() error   { return nil }
func (l *fakeListener) Addr() net.Addr { return &net.TCPAddr{} }

func tcpAddr(s string) net.Addr {
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		panic(err)
	}
	return a
}

func TestLimitListenerCaps(t *testing.T) {
	fl := &fakeListener{addrs: make(chan net.Addr, 100)}
	l := newLimitListener(fl, 5, 2, slog.New(slog.DiscardHandler))
	steps := []struct {
		addr string
		want bool // admitted
	}{
		{"198.51.100.7:1000", true},
		{"198.51.100.7:1001", true},
		{"198.51.100.7:1002", false},   // per-peer cap of 2
		{"[2001:db8::1]:1", true},      // IPv6 peers are /64s
		{"[2001:db8::2]:1", true},      // same /64
		{"[2001:db8::3]:1", false},     // /64 at its cap
		{"127.0.0.1:1", true},          // loopback: global cap only
		{"127.0.0.1:2", false},         // global cap of 5 reached
		{"[2001:db8:0:1::1]:1", false}, // global cap reached
	}
	var open []net.Conn
	for _, s := range steps {
		peer, ok := l.admit(tcpAddr(s.addr))
		if ok != s.want {
			t.Fatalf("admit %s = %v, want %v", s.addr, ok, s.want)
		}
		if ok {
			open = append(open, &limitedConn{Conn: &fakeConn{remote: tcpAddr(s.addr)}, l: l, peer: peer})
		}
	}
	// Closing one of the first peer's connections (twice: counted once)
	// frees a slot for it and one in the global cap.
	open[0].Close()
	open[0].Close()
	if _, ok := l.admit(tcpAddr("198.51.100.7:1003")); !ok {
		t.Error("peer refused after one of its connections closed")
	}
	for _, c := range open[1:] {
		c.Close()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open != 1 || len(l.peers) != 1 {
		t.Errorf("after closing: open %d, peers %v; want 1 and the one peer", l.open, l.peers)
	}
}

func TestLimitListenerAcceptClosesRefused(t *testing.T) {
	fl := &fakeListener{addrs: make(chan net.Addr, 10)}
	l := newLimitListener(fl, 0, 1, slog.New(slog.DiscardHandler))
	fl.addrs <- tcpAddr("198.51.100.7:1")
	fl.addrs <- tcpAddr("198.51.100.7:2")
	fl.addrs <- tcpAddr("198.51.100.8:1")
	var got []string
	for range 2 {
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, c.RemoteAddr().String())
	}
	if got[0] != "198.51.100.7:1" || got[1] != "198.51.100.8:1" {
		t.Errorf("accepted %v, want the first of 198.51.100.7 and 198.51.100.8", got)
	}
	if !fl.closed[1].closed || l.refused.Load() != 1 {
		t.Errorf("refused connection closed %v, refused count %d; want closed and 1", fl.closed[1].closed, l.refused.Load())
	}
	if open, refused := l.counts(); open != 2 || refused != 1 {
		t.Errorf("counts() = %d open, %d refused; want 2, 1", open, refused)
	}
}
