package fabric

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"slices"
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
	s1, s2 := p.f.seedPair()
	pc := &pipe{p: p, client: client, up: up, done: make(chan struct{}), rng: rand.New(rand.NewPCG(s1, s2))}
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

func (p *proxy) killConns(rst bool) {
	p.mu.Lock()
	cs := make([]*pipe, 0, len(p.conns))
	for c := range p.conns {
		cs = append(cs, c)
	}
	p.mu.Unlock()
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

type direction int

const (
	dirUp   direction = iota // from -> to (the dialing node's bytes)
	dirDown                  // to -> from
)

type chunk struct {
	buf  *[]byte // pooled, or nil
	data []byte
	at   time.Time
	// handoff, when set, marks the end of a shaped spell: the writer closes
	// it (everything queued before it has been delivered) and returns.
	handoff chan struct{}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// pipe is one proxied connection: client is the dialing node's side, up the
// destination's.
type pipe struct {
	p          *proxy
	client, up net.Conn
	done       chan struct{}
	once       sync.Once
	halves     atomic.Int32
	fastDirs   atomic.Int32 // directions on the fast path now (for tests)

	mu     sync.Mutex
	rng    *rand.Rand
	lost   map[uint64]bool // loss rule id -> this connection drawn silent
	linger *time.Timer     // set once one direction has ended
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
		pc.mu.Lock()
		if pc.linger != nil {
			pc.linger.Stop()
		}
		pc.mu.Unlock()
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
	pc.mu.Lock()
	defer pc.mu.Unlock()
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

// unshaped reports whether the rules of rs leave direction dir of this
// connection alone. Delay shapes only the dialing node's bytes (dirUp); a
// loss rule whose draw (once per connection and rule) spared this
// connection shapes nothing.
func (pc *pipe) unshaped(dir direction, rs *ruleSet) bool {
	e := rs.effect(pc.p.key.from, pc.p.key.to)
	if e.rate > 0 || e.blackhole || e.cut || e.reset || (dir == dirUp && (e.latency > 0 || e.jitter > 0)) {
		return false
	}
	return !pc.silenced(rs, e.loss)
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
	go pc.write(dir, dst, q)
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

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && !errors.Is(err, net.ErrClosed)
}

func (c chunk) release() {
	if c.buf != nil {
		bufPool.Put(c.buf)
	}
}

func (pc *pipe) write(dir direction, dst net.Conn, q <-chan chunk) {
	defer pc.p.f.wg.Done()
	var last time.Time // delivery times never go backwards: a stream keeps order
	for {
		var c chunk
		var ok bool
		select {
		case c, ok = <-q:
		case <-pc.done:
			return
		}
		if !ok {
			closeWrite(dst)
			pc.halfDone()
			return
		}
		if c.handoff != nil {
			close(c.handoff)
			return
		}
		alive := pc.deliver(dir, dst, c, &last)
		c.release()
		if !alive {
			return
		}
	}
}

// deliver applies the link's rules to one chunk and writes it; false means
// the pipe is finished.
func (pc *pipe) deliver(dir direction, dst net.Conn, c chunk, last *time.Time) bool {
	k := pc.p.key
	var jitterDraw time.Duration
	var drawnFor time.Duration = -1
	for {
		rs := pc.p.f.rules.Load()
		e := rs.effect(k.from, k.to)
		switch {
		case e.reset:
			pc.kill(true)
			return false
		case e.cut:
			pc.kill(false)
			return false
		case e.blackhole || pc.silenced(rs, e.loss):
			if !pc.wait(rs.changed, nil) {
				return false
			}
			continue
		}
		if dir == dirUp && e.latency > 0 {
			if e.jitter != drawnFor { // one draw per chunk and jitter setting
				drawnFor = e.jitter
				jitterDraw = 0
				if e.jitter > 0 {
					pc.mu.Lock()
					jitterDraw = time.Duration(pc.rng.Int64N(int64(2*e.jitter)+1)) - e.jitter
					pc.mu.Unlock()
				}
			}
			due := c.at.Add(e.latency + jitterDraw)
			if due.Before(*last) {
				due = *last
			}
			if d := time.Until(due); d > 0 {
				t := time.NewTimer(d)
				fired := pc.wait(rs.changed, t.C)
				t.Stop()
				if !fired {
					return false
				}
				if time.Now().Before(due) {
					continue // the rules changed: look again
				}
			}
			*last = due
		}
		if e.rate > 0 {
			return pc.paced(dir, dst, c.data, e.rate, rs)
		}
		_, err := dst.Write(c.data)
		if err != nil {
			pc.kill(isReset(err))
			return false
		}
		return true
	}
}

// paced writes data in slices of about 50 ms of the link's rate.
func (pc *pipe) paced(dir direction, dst net.Conn, data []byte, rate float64, rs *ruleSet) bool {
	slice := max(1, min(chunkSize, int(rate/20)))
	for len(data) > 0 {
		n := min(slice, len(data))
		at := pc.p.pace[dir].reserve(n, rate)
		if d := time.Until(at); d > 0 {
			t := time.NewTimer(d)
			ok := pc.wait(nil, t.C)
			t.Stop()
			if !ok {
				return false
			}
		}
		if _, err := dst.Write(data[:n]); err != nil {
			pc.kill(isReset(err))
			return false
		}
		data = data[n:]
		if cur := pc.p.f.rules.Load(); cur != rs && len(data) > 0 {
			e := cur.effect(pc.p.key.from, pc.p.key.to)
			if e.rate <= 0 || e.blackhole || e.cut || e.reset || pc.silenced(cur, e.loss) {
				// the cap changed or something worse arrived: the rest goes
				// through the full rules again
				return pc.deliver(dir, dst, chunk{data: data, at: time.Now()}, new(time.Time))
			}
			rate, rs = e.rate, cur
			slice = max(1, min(chunkSize, int(rate/20)))
		}
	}
	return true
}

// wait blocks until changed or fire fires (true) or the pipe or fabric ends
// (false).
func (pc *pipe) wait(changed <-chan struct{}, fire <-chan time.Time) bool {
	select {
	case <-changed:
		return true
	case <-fire:
		return true
	case <-pc.done:
		return false
	case <-pc.p.f.done:
		pc.kill(false)
		return false
	}
}

// silenced reports whether one of the loss rules of rs (loss is their
// combined list for this link) drew this connection; draws are made once
// per (connection, rule). Draws of rules no longer in force are forgotten,
// but only when rs is still the rule set in force: both directions ask,
// and one holding a set just replaced must not drop a draw the other made
// under the new one (it would be drawn again).
func (pc *pipe) silenced(rs *ruleSet, loss []lossRule) bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	current := pc.p.f.rules.Load() == rs // under pc.mu: no draw can slip in between
	if len(loss) == 0 {
		if current {
			clear(pc.lost)
		}
		return false
	}
	if pc.lost == nil {
		pc.lost = make(map[uint64]bool, len(loss))
	}
	out := false
	for _, l := range loss {
		hit, drawn := pc.lost[l.id]
		if !drawn {
			hit = pc.rng.Float64() < l.p
			pc.lost[l.id] = hit
		}
		out = out || hit
	}
	if current {
		for id := range pc.lost { // bounded by the rules in force
			if !slices.ContainsFunc(loss, func(l lossRule) bool { return l.id == id }) {
				delete(pc.lost, id)
			}
		}
	}
	return out
}

// pacer spaces a link direction's bytes at a rate: each reservation gets the
// time at which it has been "transmitted"; idle time earns no burst.
type pacer struct {
	mu   sync.Mutex
	next time.Time
}

func (p *pacer) reserve(n int, rate float64) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	p.next = p.next.Add(time.Duration(float64(n) / rate * float64(time.Second)))
	return p.next
}
