package raft

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	hraft "github.com/hashicorp/raft"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/fsutil"
)

const (
	// transportMaxPool is the number of idle connections a node keeps per
	// peer. Raft needs one for pipelined appends plus one for votes and
	// heartbeats; more only adds sockets.
	transportMaxPool = 2
	// transportTimeout is the per-RPC I/O deadline (and dial timeout). On
	// loopback an RPC takes well under a millisecond; 2 s leaves room for
	// an fsync stall without letting a cut link hang replication.
	transportTimeout = 2 * time.Second
	// listenRetries and listenRetryDelay bound how long a restarting node
	// waits for its old port to become free again (about 2 s).
	listenRetries    = 20
	listenRetryDelay = 100 * time.Millisecond
	addrFile         = "addr"
)

// streamLayer is a hraft.StreamLayer whose outgoing connections go through
// the run's Dialer (the fault fabric's link hook) and which tracks every
// connection it dialled or accepted, so Close can cut them all at once the
// way a process crash does.
type streamLayer struct {
	ln      net.Listener
	from    string
	dial    components.Dialer
	resolve func(addr string) string // address -> node id

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
}

func newStreamLayer(ln net.Listener, from string, dial components.Dialer, resolve func(string) string) *streamLayer {
	return &streamLayer{ln: ln, from: from, dial: dial, resolve: resolve, conns: make(map[*trackedConn]struct{})}
}

// Accept implements net.Listener.
func (s *streamLayer) Accept() (net.Conn, error) {
	c, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	return s.track(c)
}

// Addr implements net.Listener.
func (s *streamLayer) Addr() net.Addr { return s.ln.Addr() }

// Dial implements hraft.StreamLayer: every node-to-node link goes through
// the Dialer hook.
func (s *streamLayer) Dial(address hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := s.dial(ctx, s.from, s.resolve(string(address)), string(address))
	if err != nil {
		return nil, err
	}
	return s.track(c)
}

func (s *streamLayer) track(c net.Conn) (net.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = c.Close()
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: c, s: s}
	s.conns[tc] = struct{}{}
	return tc, nil
}

// Close closes the listener and every open connection.
func (s *streamLayer) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	err := s.ln.Close()
	for c := range conns {
		_ = c.Conn.Close()
	}
	return err
}

type trackedConn struct {
	net.Conn
	s    *streamLayer
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

// listen binds the node's persisted address, or a fresh loopback port
// (persisted atomically) on first start. A node keeps its address for
// life: it is part of the Raft configuration in every peer's log.
func listen(dir string) (net.Listener, error) {
	path := filepath.Join(dir, addrFile)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		if err := writeFileAtomic(path, []byte(ln.Addr().String()+"\n")); err != nil {
			_ = ln.Close()
			return nil, err
		}
		return ln, nil
	case err != nil:
		return nil, err
	}
	addr := strings.TrimSpace(string(b))
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("raft: %s: bad address %q", path, addr)
	}
	for i := 0; ; i++ {
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			return ln, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) || i >= listenRetries {
			return nil, fmt.Errorf("raft: listen on persisted address %s: %w", addr, err)
		}
		time.Sleep(listenRetryDelay)
	}
}

func writeFileAtomic(path string, data []byte) error {
	return fsutil.WriteBytes(path, 0o600, data)
}
