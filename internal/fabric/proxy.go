package fabric

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/soakd/soakd/internal/netutil"
)

// proxy is one link's TCP proxy: it accepts the dialing node's connections
// and forwards each to the destination address through the link's rules.
type proxy struct {
	f   *Fabric
	key linkKey
	ln  net.Listener // nil for a probe
	// pace is the link's capacity, one pacer per direction.
	pace [2]pacer

	mu     sync.Mutex
	closed bool
	conns  map[*pipe]struct{}
}

func newProxy(f *Fabric, k linkKey, ln net.Listener) *proxy {
	return &proxy{f: f, key: k, ln: ln, conns: make(map[*pipe]struct{})}
}

func (p *proxy) serve() {
	defer p.f.wg.Done()
	for {
		c, err := netutil.Accept(p.ln, nil)
		if err != nil {
			return // listener closed
		}
		if p.f.rules.Load().effect(p.key.from, p.key.to).cut {
			_ = c.Close()
			continue
		}
		p.f.wg.Add(1)
		go p.connect(c)
	}
}

// connect dials the destination for an accepted connection and starts the
// pipe; a destination that cannot be reached resets the dialer's connection.
func (p *proxy) connect(client net.Conn) {
	defer p.f.wg.Done()
	ctx, cancel := context.WithTimeout(p.f.ctx, upstreamDialTimeout)
	var d net.Dialer
	up, err := d.DialContext(ctx, "tcp", p.key.addr)
	cancel()
	if err != nil {
		resetConn(client)
		return
	}
	p.start(client, up)
}

// start pipes client <-> up through the link's rules.
func (p *proxy) start(client, up net.Conn) {
	pc := &pipe{p: p, client: client, up: up}
	pc.init(p.f, p.key, &p.pace, pc.kill)
	p.mu.Lock()
	if p.closed || len(p.conns) >= MaxConnsPerLink {
		p.mu.Unlock()
		resetConn(client)
		resetConn(up)
		return
	}
	p.conns[pc] = struct{}{}
	p.mu.Unlock()
	if p.f.rules.Load().effect(p.key.from, p.key.to).cut { // cut while connecting
		pc.kill(false)
		return
	}
	p.f.wg.Add(2)
	go pc.run(dirUp, client, up)
	go pc.run(dirDown, up, client)
}

func (p *proxy) killConns(rst bool) { killAll(&p.mu, p.conns, rst) }

// killAll kills every connection of set, which mu guards; each kill takes
// mu itself to leave the set, so the set is copied first.
func killAll[C interface {
	comparable
	kill(rst bool)
}](mu *sync.Mutex, set map[C]struct{}, rst bool) {
	mu.Lock()
	cs := make([]C, 0, len(set))
	for c := range set {
		cs = append(cs, c)
	}
	mu.Unlock()
	for _, c := range cs {
		c.kill(rst)
	}
}

func (p *proxy) connCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// fastCount counts the directions of p's connections on the fast path.
func (p *proxy) fastCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for c := range p.conns {
		n += int(c.fastDirs.Load())
	}
	return n
}

func (p *proxy) close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	var err error
	if p.ln != nil {
		err = p.ln.Close()
	}
	p.killConns(false)
	return err
}

func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// closeWrite half-closes c: the far side reads EOF, c can still be read.
func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// pipe is one proxied connection: client is the dialing node's side, up the
// destination's.
type pipe struct {
	shaper
	p          *proxy
	client, up net.Conn
	once       sync.Once
	halves     atomic.Int32
	fastDirs   atomic.Int32 // directions on the fast path now (for tests)

	lingerMu sync.Mutex
	linger   *time.Timer // set once one direction has ended
}

// kill closes both sides (with RST when rst) and stops the pipe.
func (pc *pipe) kill(rst bool) {
	pc.once.Do(func() {
		if rst {
			resetConn(pc.client)
			resetConn(pc.up)
		} else {
			_ = pc.client.Close()
			_ = pc.up.Close()
		}
		close(pc.done)
		pc.lingerMu.Lock()
		if pc.linger != nil {
			pc.linger.Stop()
		}
		pc.lingerMu.Unlock()
		pc.p.mu.Lock()
		delete(pc.p.conns, pc)
		pc.p.mu.Unlock()
	})
}

// halfDone is called when one direction has ended cleanly; the second
// closes the connection. The first gives the other direction the fabric's
// half-close linger to end, then resets both sides: a peer that neither
// answers nor closes would otherwise hold the connection (two sockets and
// a goroutine) for the rest of the run.
func (pc *pipe) halfDone() {
	if pc.halves.Add(1) == 2 {
		pc.kill(false)
		return
	}
	pc.lingerMu.Lock()
	defer pc.lingerMu.Unlock()
	select {
	case <-pc.done:
	default:
		pc.linger = time.AfterFunc(pc.p.f.halfCloseLinger, func() {
			pc.p.f.log.Debug("half-closed connection reset: the other side neither finished nor closed",
				"from", pc.p.key.from, "to", pc.p.key.to, "linger", pc.p.f.halfCloseLinger)
			pc.kill(true)
		})
	}
}

// fastSlice bounds one io.Copy on the fast path (which takes what is
// queued on src, up to this): at most this much, taken from src before the
// rules changed, is still delivered unshaped after the change. Larger
// slices measured no faster.
const fastSlice = 256 << 10

// aLongTimeAgo is a read deadline that has passed: it stops a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

// run carries one direction of the connection, src -> dst, until it ends.
// While the link's rules leave the direction alone it is on the fast path
// (fast: io.Copy, splice(2) on Linux); while they shape it, it is on the
// shaped pipeline (shaped: read, write, deliver, paced). Every change of the
// rule set interrupts the fast path, which hands over to the shaped
// pipeline if the new rules shape the direction and otherwise resumes; the
// shaped pipeline hands back once the rules leave the direction alone and
// it has delivered all it read.
func (pc *pipe) run(dir direction, src, dst net.Conn) {
	defer pc.p.f.wg.Done()
	for {
		select {
		case <-pc.done:
			return
		default:
		}
		rs := pc.p.f.rules.Load()
		var more bool
		if pc.unshaped(dir, rs) {
			more = pc.fast(src, dst, rs)
		} else {
			more = pc.shaped(dir, src, dst, rs)
		}
		if !more {
			return
		}
	}
}

// fast copies src to dst with io.Copy (between two *net.TCPConn on Linux
// that is splice(2), no copy through user space) until the direction ends
// (false) or rs is replaced (true). Replacing rs cancels rs.ctx, whose
// AfterFunc sets src's read deadline in the past: that fails the copy's
// next read from src, never a write, and io.Copy (like the splice loop of
// (*net.TCPConn).ReadFrom) writes everything it has read before it reads
// again, so when fast returns true every byte taken from src is in dst and
// the next reader of src starts exactly where the copy stopped.
func (pc *pipe) fast(src, dst net.Conn, rs *ruleSet) bool {
	fired := make(chan struct{})
	stop := context.AfterFunc(rs.ctx, func() {
		_ = src.SetReadDeadline(aLongTimeAgo)
		close(fired)
	})
	pc.fastDirs.Add(1)
	rs.enterFast()
	lr := &io.LimitedReader{R: src}
	var err error
	eof := false
	for err == nil && !eof {
		want := int64(fastSlice)
		var n int
		if n, err = queued(src); err != nil {
			break
		}
		if n > 0 {
			want = min(want, int64(n))
		}
		lr.N = want
		var copied int64
		copied, err = io.Copy(dst, lr)
		eof = err == nil && copied < want
	}
	pc.fastDirs.Add(-1)
	rs.leaveFast()
	interrupted := !stop()
	if interrupted {
		<-fired // the deadline is set (and will not be again): lift it
		_ = src.SetReadDeadline(time.Time{})
	}
	switch {
	case eof:
		closeWrite(dst)
		pc.halfDone()
		return false
	case interrupted && errors.Is(err, os.ErrDeadlineExceeded):
		return true
	default:
		pc.kill(isReset(err))
		return false
	}
}

// shaped runs the direction through the rules: this goroutine reads src
// into a bounded queue (read) and a second one delivers the queue to dst
// under the rules in force (write). It returns false when the direction
// has ended, true when the rules leave the direction alone again and the
// writer has delivered everything read (the fast path takes over).
func (pc *pipe) shaped(dir direction, src, dst net.Conn, rs *ruleSet) bool {
	q := make(chan chunk, queueChunks)
	pc.p.f.wg.Add(1) // run holds a count: Close cannot have seen zero
	go pc.write(dir, dst, q, func() { closeWrite(dst); pc.halfDone() })
	return pc.read(dir, src, q, rs)
}

// read queues what src sends until src ends (false), or until, after a
// read, the rules no longer shape the direction and everything queued has
// been delivered (true). seen is the rule set that sent it here.
func (pc *pipe) read(dir direction, src net.Conn, q chan<- chunk, seen *ruleSet) bool {
	for {
		bp := bufPool.Get().(*[]byte)
		n, err := src.Read(*bp)
		if n > 0 {
			c := chunk{buf: bp, data: (*bp)[:n], at: time.Now()}
			if n < 4<<10 { // do not pin a whole buffer for a small read
				c = chunk{data: append([]byte(nil), (*bp)[:n]...), at: c.at}
				bufPool.Put(bp)
			}
			select {
			case q <- c:
			case <-pc.done:
				c.release()
				return false
			}
		} else {
			bufPool.Put(bp)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				close(q) // the writer drains and half-closes
			} else {
				pc.kill(isReset(err))
			}
			return false
		}
		if rs := pc.p.f.rules.Load(); rs != seen {
			seen = rs
			if pc.unshaped(dir, rs) {
				return pc.handBack(q)
			}
		}
	}
}

// handBack queues the end of the shaped spell behind the chunks already
// queued and waits until the writer has delivered them all (true), or the
// pipe ends (false).
func (pc *pipe) handBack(q chan<- chunk) bool {
	h := make(chan struct{})
	select {
	case q <- chunk{handoff: h}:
	case <-pc.done:
		return false
	}
	select {
	case <-h:
		return true
	case <-pc.done:
		return false
	}
}
