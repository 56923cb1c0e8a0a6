package conformance

import (
	"errors"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
)

// recycleGrace is how long a recycled connection's calls may run after
// its GOAWAY before the connection is closed (a stream still open then
// ends with Unavailable), as posfleet does at a connection's maximum age.
const recycleGrace = time.Second

// front serves the terminal's connections and recycles one on demand the
// way a server does at its maximum connection age: GOAWAY, a grace period
// for the calls in flight, then close. Each gRPC server can only drain
// all of its connections, so each accepted connection gets a server of
// its own.
type front struct {
	lis       net.Listener
	newServer func() *grpc.Server

	mu sync.Mutex // guards the fields below
	// servers holds the server of each open connection, by the remote
	// address of the connection.
	servers map[string]*grpc.Server
	stopped bool
	wg      sync.WaitGroup // the servers' Serve and drain goroutines
}

func newFront(lis net.Listener, newServer func() *grpc.Server) *front {
	return &front{lis: lis, newServer: newServer, servers: map[string]*grpc.Server{}}
}

// serve accepts connections until lis is closed.
func (f *front) serve() {
	for {
		conn, err := f.lis.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		if f.stopped {
			f.mu.Unlock()
			conn.Close()
			return
		}
		srv := f.newServer()
		addr := conn.RemoteAddr().String()
		f.servers[addr] = srv
		f.wg.Add(1)
		f.mu.Unlock()
		go func() {
			defer f.wg.Done()
			srv.Serve(&oneConn{conn: conn, done: make(chan struct{})})
			f.mu.Lock()
			if f.servers[addr] == srv {
				delete(f.servers, addr)
			}
			f.mu.Unlock()
		}()
	}
}

// recycle sends GOAWAY on the connection from addr, lets its calls run
// for recycleGrace, then closes it. It does not wait.
func (f *front) recycle(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	srv, ok := f.servers[addr]
	if !ok || f.stopped {
		return
	}
	delete(f.servers, addr)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		t := time.AfterFunc(recycleGrace, srv.Stop)
		srv.GracefulStop()
		t.Stop()
	}()
}

// stop closes the listener and every connection, and waits for the
// servers to end.
func (f *front) stop() {
	f.lis.Close()
	f.mu.Lock()
	f.stopped = true
	servers := f.servers
	f.servers = map[string]*grpc.Server{}
	f.mu.Unlock()
	for _, srv := range servers {
		srv.Stop()
	}
	f.wg.Wait()
}

// oneConn is a listener that hands out one connection, then blocks until
// closed: a gRPC server serving exactly one connection.
type oneConn struct {
	mu   sync.Mutex // guards conn
	conn net.Conn
	done chan struct{}
	once sync.Once
}

func (l *oneConn) Accept() (net.Conn, error) {
	l.mu.Lock()
	c := l.conn
	l.conn = nil
	l.mu.Unlock()
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, errors.New("conformance: listener closed")
}

func (l *oneConn) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *oneConn) Addr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}
}
