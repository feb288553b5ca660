package fabric

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// link is one directed link's in-process connections and its capacity.
type link struct {
	key  linkKey
	pace [2]pacer

	mu    sync.Mutex
	conns map[*linkConn]struct{}
}

func (l *link) killConns(rst bool) { killAll(&l.mu, l.conns, rst) }

func (l *link) connCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// linkConn is a link's connection inside the process: the dialing node's
// own TCP connection to the destination, with the link's rules applied in
// its Read and Write rather than by a proxy in between. While the rules
// leave a direction alone, Read and Write are the socket's own: no second
// hop, no copy, no goroutine. When a rule shapes a direction:
//
//   - Write (the dialing node's bytes) queues what it is given, up to
//     queueChunks*chunkSize, for a writer goroutine that delivers it under
//     the rules exactly as a proxy's pipe does (delay, pacing, blackhole,
//     loss, reset), and blocks while the queue is full, as on a full socket
//     buffer. Once the rules let go, the next Write waits until the queue is
//     delivered and goes to the socket again.
//   - Read takes from the socket only what the rules let through: nothing
//     under a blackhole or a loss that drew the connection (the peer's
//     bytes wait in the kernel, then in its socket buffer), a rate's worth
//     of bytes at a time, paced, under a bandwidth cap, and the first byte
//     under a reset, which then resets the connection.
//
// A rule change interrupts a Read or Write blocked in the socket through
// the socket's deadline (and restores the caller's), so a rule is in force
// on an open connection when it is applied. The caller's deadlines hold on
// every path; only the shaped writer ignores them, as the kernel does with
// bytes already in a socket buffer.
type linkConn struct {
	shaper
	net.Conn // the socket to the destination
	l        *link

	once       sync.Once
	rst        atomic.Bool // killed with a reset (otherwise closed, like a cut)
	userClosed atomic.Bool
	rdl, wdl   deadline

	rmu sync.Mutex // one Read at a time
	wmu sync.Mutex // one Write at a time; guards spell and handoff
	// spell is the shaped writer's queue while one runs; handoff is the end
	// of the spell once it has been queued.
	spell    chan chunk
	handoff  chan struct{}
	spelling atomic.Bool // spell != nil, for tests
	wclosed  bool        // CloseWrite was called
}

// dialLink dials addr for the link l and wraps the socket.
func (f *Fabric) dialLink(ctx context.Context, l *link, addr string) (net.Conn, error) {
	var d net.Dialer
	sock, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &linkConn{Conn: sock, l: l}
	c.init(f, l.key, &l.pace, c.kill)
	c.rdl.init(sock.SetReadDeadline)
	c.wdl.init(sock.SetWriteDeadline)
	l.mu.Lock()
	if len(l.conns) >= MaxConnsPerLink {
		l.mu.Unlock()
		resetConn(sock)
		return nil, errors.New("fabric: link " + l.key.from + "->" + l.key.to + ": too many connections")
	}
	l.conns[c] = struct{}{}
	l.mu.Unlock()
	select {
	case <-f.done: // closed while dialling: Close may have missed c
		c.kill(false)
		return nil, ErrClosed
	default:
	}
	if f.rules.Load().effect(l.key.from, l.key.to).cut { // cut while dialling
		c.kill(false)
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: tcpAddr(addr),
			Err: &cutError{link: Link{l.key.from, l.key.to}, cause: os.ErrDeadlineExceeded}}
	}
	return c, nil
}

// kill closes the socket (rst: resets it) and ends the connection; later
// calls return what a peer's close or reset would.
func (c *linkConn) kill(rst bool) {
	c.once.Do(func() {
		c.rst.Store(rst)
		if rst {
			resetConn(c.Conn)
		} else {
			_ = c.Conn.Close()
		}
		close(c.done)
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
}

// Close closes the connection; its calls then fail with net.ErrClosed.
func (c *linkConn) Close() error {
	c.userClosed.Store(true)
	c.kill(false)
	return nil
}

// ended is the error for op once the connection has ended, nil before.
func (c *linkConn) ended(op string) error {
	select {
	case <-c.done:
	default:
		return nil
	}
	var err error
	switch {
	case c.userClosed.Load():
		err = net.ErrClosed
	case c.rst.Load():
		err = syscall.ECONNRESET
	case op == "read":
		return io.EOF
	default:
		err = syscall.EPIPE
	}
	return c.opError(op, err)
}

func (c *linkConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// socketErr is err from the socket, or the connection's end if a kill
// closed the socket under the call.
func (c *linkConn) socketErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if e := c.ended(op); e != nil {
		return e
	}
	return err
}

// underRules runs op, one Read or Write of the socket, while rs is in
// force: replacing rs interrupts it (interrupted) through the socket's
// deadline d, unless the caller's own deadline stopped it.
func (c *linkConn) underRules(rs *ruleSet, d *deadline, op func() (int, error)) (n int, err error, interrupted bool) {
	fired := make(chan struct{})
	stop := context.AfterFunc(rs.ctx, func() {
		d.hold(aLongTimeAgo)
		close(fired)
	})
	rs.enterFast()
	n, err = op()
	rs.leaveFast()
	if !stop() {
		<-fired
		d.release()
		if errors.Is(err, os.ErrDeadlineExceeded) && !d.expired() {
			return n, nil, true
		}
	}
	return n, err, false
}

func (c *linkConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		if err := c.ended("read"); err != nil {
			return 0, err
		}
		rs := c.f.rules.Load()
		if c.unshaped(dirDown, rs) {
			n, err, again := c.underRules(rs, &c.rdl, func() (int, error) { return c.Conn.Read(p) })
			if again && n == 0 {
				continue
			}
			return n, c.socketErr("read", err)
		}
		e := rs.effect(c.key.from, c.key.to)
		switch {
		case e.cut:
			c.kill(false)
			continue
		case e.blackhole || c.silenced(rs, e.loss):
			if err := c.await(&c.rdl, "read", rs.changed); err != nil {
				return 0, err
			}
			continue
		}
		// A reset or a rate: take the next bytes, then apply the rule.
		want := len(p)
		if e.rate > 0 {
			want = max(1, min(want, chunkSize, int(e.rate/20)))
		}
		n, err, again := c.underRules(rs, &c.rdl, func() (int, error) { return c.Conn.Read(p[:want]) })
		if n == 0 {
			if again {
				continue
			}
			return 0, c.socketErr("read", err)
		}
		if e.reset {
			c.kill(true)
			continue
		}
		if e.rate > 0 {
			if d := time.Until(c.pace[dirDown].reserve(n, e.rate)); d > 0 {
				t := time.NewTimer(d)
				alive := c.wait(nil, t.C)
				t.Stop()
				if !alive {
					return 0, c.ended("read")
				}
			}
		}
		return n, c.socketErr("read", err)
	}
}

func (c *linkConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wclosed {
		return 0, c.opError("write", syscall.EPIPE)
	}
	if len(p) == 0 {
		return 0, c.ended("write")
	}
	written := 0
	for written < len(p) {
		if err := c.ended("write"); err != nil {
			return written, err
		}
		rs := c.f.rules.Load()
		if !c.unshaped(dirUp, rs) {
			n, err := c.queue(p[written:])
			return written + n, err
		}
		if c.spell != nil {
			if err := c.endSpell(); err != nil {
				return written, err
			}
			continue
		}
		n, err, again := c.underRules(rs, &c.wdl, func() (int, error) { return c.Conn.Write(p[written:]) })
		written += n
		if !again {
			return written, c.socketErr("write", err)
		}
	}
	return written, nil
}

// queue hands p to the shaped writer, starting one if none runs, and
// blocks while the writer's queue is full.
func (c *linkConn) queue(p []byte) (int, error) {
	if c.handoff != nil { // a spell that was ending: let it end first
		if err := c.endSpell(); err != nil {
			return 0, err
		}
	}
	if c.spell == nil {
		c.f.mu.Lock()
		if c.f.closed {
			c.f.mu.Unlock()
			c.kill(false)
			return 0, c.ended("write")
		}
		c.f.wg.Add(1) // under f.mu: Close cannot be waiting yet
		c.f.mu.Unlock()
		c.spell = make(chan chunk, queueChunks)
		c.spelling.Store(true)
		c.wdl.hold(time.Time{}) // the writer's socket writes keep no caller deadline
		q := c.spell
		go pprof.Do(context.Background(), pprof.Labels("stage", "fabric"), func(context.Context) {
			c.write(dirUp, c.Conn, q, func() { closeWrite(c.Conn) })
		})
	}
	sent := 0
	for sent < len(p) {
		n := min(chunkSize, len(p)-sent)
		if err := c.send(chunk{data: bytes.Clone(p[sent : sent+n]), at: time.Now()}); err != nil {
			return sent, err
		}
		sent += n
	}
	return sent, nil
}

// CloseWrite half-closes the connection once everything written before it
// has been delivered: the peer reads EOF, and this side can still read.
func (c *linkConn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ended("write"); err != nil || c.wclosed {
		return err
	}
	if c.handoff != nil {
		if err := c.endSpell(); err != nil {
			return err
		}
	}
	c.wclosed = true
	if c.spell != nil {
		close(c.spell) // the writer delivers what is queued, then half-closes
		return nil
	}
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		return tc.CloseWrite()
	}
	return nil
}

// endSpell waits until the shaped writer has delivered everything queued
// and stopped, or the caller's write deadline passes.
func (c *linkConn) endSpell() error {
	if c.handoff == nil {
		h := make(chan struct{})
		if err := c.send(chunk{handoff: h}); err != nil {
			return err
		}
		c.handoff = h
	}
	if err := c.await(&c.wdl, "write", c.handoff); err != nil {
		return err
	}
	c.spell, c.handoff = nil, nil
	c.spelling.Store(false)
	c.wdl.release()
	return nil
}

// send queues ch for the shaped writer, waiting while the queue is full
// until the caller's write deadline.
func (c *linkConn) send(ch chunk) error {
	for {
		user, changed := c.wdl.caller()
		timer, fire := deadlineTimer(user)
		select {
		case c.spell <- ch:
			stopTimer(timer)
			return nil
		case <-changed:
			stopTimer(timer)
		case <-fire:
			return c.opError("write", os.ErrDeadlineExceeded)
		case <-c.done:
			stopTimer(timer)
			return c.ended("write")
		}
	}
}

// await blocks until ready is closed (nil), the caller's deadline d passes
// or the connection ends (their errors).
func (c *linkConn) await(d *deadline, op string, ready <-chan struct{}) error {
	for {
		user, changed := d.caller()
		timer, fire := deadlineTimer(user)
		select {
		case <-ready:
			stopTimer(timer)
			return nil
		case <-changed:
			stopTimer(timer)
		case <-fire:
			return c.opError(op, os.ErrDeadlineExceeded)
		case <-c.done:
			stopTimer(timer)
			return c.ended(op)
		case <-c.f.done:
			stopTimer(timer)
			c.kill(false)
			return c.ended(op)
		}
	}
}

func (c *linkConn) SetDeadline(t time.Time) error {
	return errors.Join(c.rdl.set(t), c.wdl.set(t))
}
func (c *linkConn) SetReadDeadline(t time.Time) error  { return c.rdl.set(t) }
func (c *linkConn) SetWriteDeadline(t time.Time) error { return c.wdl.set(t) }

// deadline is one direction's deadline as the caller set it, kept apart
// from the fabric's own use of the socket's deadline (to interrupt a call
// when the rules change, or to keep the shaped writer's writes free of it).
type deadline struct {
	mu      sync.Mutex
	socket  func(time.Time) error
	user    time.Time
	held    bool
	changed chan struct{} // closed when the caller sets a new deadline; nil while nobody waits
}

func (d *deadline) init(socket func(time.Time) error) { d.socket = socket }

// set is the caller's Set*Deadline. It is on the hot path (transports set
// a deadline per RPC), so it allocates nothing: a channel to close exists
// only while a shaped call waits on the deadline (caller).
func (d *deadline) set(t time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.user = t
	if d.changed != nil {
		close(d.changed)
		d.changed = nil
	}
	if d.held {
		return nil
	}
	return d.socket(t)
}

// hold puts the socket's deadline at t until release.
func (d *deadline) hold(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.held = true
	_ = d.socket(t)
}

// release gives the socket the caller's deadline back.
func (d *deadline) release() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.held = false
	_ = d.socket(d.user)
}

// caller is the caller's deadline and a channel closed when it changes.
func (d *deadline) caller() (time.Time, <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.changed == nil {
		d.changed = make(chan struct{})
	}
	return d.user, d.changed
}

func (d *deadline) expired() bool {
	t, _ := d.caller()
	return !t.IsZero() && !time.Now().Before(t)
}

// deadlineTimer fires at t (at once if t has passed); no deadline never
// fires.
func deadlineTimer(t time.Time) (*time.Timer, <-chan time.Time) {
	if t.IsZero() {
		return nil, nil
	}
	timer := time.NewTimer(time.Until(t))
	return timer, timer.C
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}
