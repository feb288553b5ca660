package fabric

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
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
		c, err := p.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
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
	upQ := make(chan chunk, queueChunks)
	downQ := make(chan chunk, queueChunks)
	p.f.wg.Add(4)
	go pc.read(client, upQ)
	go pc.write(dirUp, up, upQ)
	go pc.read(up, downQ)
	go pc.write(dirDown, client, downQ)
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

type direction int

const (
	dirUp   direction = iota // from -> to (the dialing node's bytes)
	dirDown                  // to -> from
)

type chunk struct {
	buf  *[]byte // pooled, or nil
	data []byte
	at   time.Time
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

	mu   sync.Mutex
	rng  *rand.Rand
	lost map[uint64]bool // loss rule id -> this connection drawn silent
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
		pc.p.mu.Lock()
		delete(pc.p.conns, pc)
		pc.p.mu.Unlock()
	})
}

// halfDone is called when one direction has ended cleanly; the second
// closes the connection.
func (pc *pipe) halfDone() {
	if pc.halves.Add(1) == 2 {
		pc.kill(false)
	}
}

func (pc *pipe) read(src net.Conn, q chan<- chunk) {
	defer pc.p.f.wg.Done()
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
				return
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
			return
		}
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
			if tc, isTCP := dst.(*net.TCPConn); isTCP {
				_ = tc.CloseWrite()
			}
			pc.halfDone()
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
		case e.blackhole || pc.silenced(e.loss):
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
			if e.rate <= 0 || e.blackhole || e.cut || e.reset || pc.silenced(e.loss) {
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

// silenced reports whether one of the loss rules in force drew this
// connection; draws are made once per (connection, rule).
func (pc *pipe) silenced(loss []lossRule) bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if len(loss) == 0 {
		clear(pc.lost)
		return false
	}
	if pc.lost == nil {
		pc.lost = make(map[uint64]bool, len(loss))
	}
	out := false
	live := make(map[uint64]bool, len(loss))
	for _, l := range loss {
		live[l.id] = true
		hit, drawn := pc.lost[l.id]
		if !drawn {
			hit = pc.rng.Float64() < l.p
			pc.lost[l.id] = hit
		}
		out = out || hit
	}
	for id := range pc.lost { // bounded by the rules in force
		if !live[id] {
			delete(pc.lost, id)
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
