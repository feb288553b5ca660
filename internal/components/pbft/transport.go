package pbft

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/components/pbft/wire"
)

const (
	// peerQueue bounds the frames waiting for one peer link; past it a
	// frame is dropped (PBFT tolerates loss: timers and view changes
	// recover), so a dead peer never grows memory.
	peerQueue = 4096
	// dialTimeout and writeTimeout bound a dial and a write on a link.
	dialTimeout  = 2 * time.Second
	writeTimeout = 2 * time.Second
	// redialBackoff is the wait after a failed dial.
	redialBackoff = 50 * time.Millisecond
)

// peer is one outgoing link, from a node to another, with its own writer
// goroutine: frames queue and are written in order over one connection,
// dialled (through the fault fabric) when needed.
type peer struct {
	from, to string
	addr     func() string // the peer's address now ("" while down)
	dial     components.Dialer
	q        chan []byte
	dropped  func()

	mu     sync.Mutex
	conn   net.Conn
	closed bool
	done   chan struct{}
}

func newPeer(from, to string, addr func() string, dial components.Dialer, dropped func()) *peer {
	p := &peer{from: from, to: to, addr: addr, dial: dial, dropped: dropped, q: make(chan []byte, peerQueue),
		done: make(chan struct{})}
	go p.run()
	return p
}

// send queues a frame; false (and counted) when the queue is full.
func (p *peer) send(frame []byte) bool {
	select {
	case p.q <- frame:
		return true
	default:
		p.dropped()
		return false
	}
}

func (p *peer) run() {
	defer close(p.done)
	var w *bufio.Writer
	for frame := range p.q {
		if frame == nil {
			continue
		}
		for attempt := 0; attempt < 2; attempt++ {
			c := p.current()
			if c == nil {
				var err error
				if c, err = p.connect(); err != nil {
					break // dropped: the link is down
				}
				w = bufio.NewWriterSize(c, 64<<10)
			}
			_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
			err := wire.WriteFrame(w, frame)
			if err == nil && len(p.q) == 0 {
				err = w.Flush()
			}
			if err == nil {
				break
			}
			p.reset(c)
		}
	}
	p.reset(p.current())
}

func (p *peer) current() net.Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conn
}

func (p *peer) connect() (net.Conn, error) {
	addr := p.addr()
	if addr == "" {
		time.Sleep(redialBackoff)
		return nil, errors.New("peer down")
	}
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	c, err := p.dial(ctx, p.from, p.to, addr)
	if err != nil {
		time.Sleep(redialBackoff)
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return nil, errors.New("closed")
	}
	p.conn = c
	return c, nil
}

func (p *peer) reset(c net.Conn) {
	if c == nil {
		return
	}
	_ = c.Close()
	p.mu.Lock()
	if p.conn == c {
		p.conn = nil
	}
	p.mu.Unlock()
}

// close stops the writer and cuts the link, as a crash does.
func (p *peer) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	c := p.conn
	p.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
	close(p.q)
	<-p.done
}
