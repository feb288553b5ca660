package fabric

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"
)

// shaper applies the rules in force to one connection, whichever way it is
// carried: a proxy's pipe (proxy.go) or a link connection inside the
// process (inline.go). Both shape the same way through it.
type shaper struct {
	f    *Fabric
	key  linkKey
	pace *[2]pacer // the link's, shared by its connections
	done chan struct{}
	kill func(rst bool) // closes (rst: resets) the connection, closes done

	mu   sync.Mutex
	rng  *rand.Rand
	lost map[uint64]bool // loss rule id -> this connection drawn silent
}

func (s *shaper) init(f *Fabric, k linkKey, pace *[2]pacer, kill func(bool)) {
	s1, s2 := f.seedPair()
	s.f, s.key, s.pace, s.kill = f, k, pace, kill
	s.done = make(chan struct{})
	s.rng = rand.New(rand.NewPCG(s1, s2))
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

func (c chunk) release() {
	if c.buf != nil {
		bufPool.Put(c.buf)
	}
}

// unshaped reports whether the rules of rs leave direction dir of this
// connection alone. Delay shapes only the dialing node's bytes (dirUp); a
// loss rule whose draw (once per connection and rule) spared this
// connection shapes nothing.
func (s *shaper) unshaped(dir direction, rs *ruleSet) bool {
	e := rs.effect(s.key.from, s.key.to)
	if e.rate > 0 || e.blackhole || e.cut || e.reset || (dir == dirUp && (e.latency > 0 || e.jitter > 0)) {
		return false
	}
	return !s.silenced(rs, e.loss)
}

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && !errors.Is(err, net.ErrClosed)
}

// write delivers the chunks of q to dst under the rules in force until q
// hands back (a handoff chunk), q is closed (eof, when set, is called) or
// the connection ends. It runs on its own goroutine, counted in f.wg.
func (s *shaper) write(dir direction, dst io.Writer, q <-chan chunk, eof func()) {
	defer s.f.wg.Done()
	var last time.Time // delivery times never go backwards: a stream keeps order
	for {
		var c chunk
		var ok bool
		select {
		case c, ok = <-q:
		case <-s.done:
			return
		}
		if !ok {
			if eof != nil {
				eof()
			}
			return
		}
		if c.handoff != nil {
			close(c.handoff)
			return
		}
		alive := s.deliver(dir, dst, c, &last)
		c.release()
		if !alive {
			return
		}
	}
}

// deliver applies the link's rules to one chunk and writes it; false means
// the pipe is finished.
func (s *shaper) deliver(dir direction, dst io.Writer, c chunk, last *time.Time) bool {
	k := s.key
	var jitterDraw time.Duration
	var drawnFor time.Duration = -1
	for {
		rs := s.f.rules.Load()
		e := rs.effect(k.from, k.to)
		switch {
		case e.reset:
			s.kill(true)
			return false
		case e.cut:
			s.kill(false)
			return false
		case e.blackhole || s.silenced(rs, e.loss):
			if !s.wait(rs.changed, nil) {
				return false
			}
			continue
		}
		if dir == dirUp && e.latency > 0 {
			if e.jitter != drawnFor { // one draw per chunk and jitter setting
				drawnFor = e.jitter
				jitterDraw = 0
				if e.jitter > 0 {
					s.mu.Lock()
					jitterDraw = time.Duration(s.rng.Int64N(int64(2*e.jitter)+1)) - e.jitter
					s.mu.Unlock()
				}
			}
			due := c.at.Add(e.latency + jitterDraw)
			if due.Before(*last) {
				due = *last
			}
			if d := time.Until(due); d > 0 {
				t := time.NewTimer(d)
				fired := s.wait(rs.changed, t.C)
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
			return s.paced(dir, dst, c.data, e.rate, rs)
		}
		_, err := dst.Write(c.data)
		if err != nil {
			s.kill(isReset(err))
			return false
		}
		return true
	}
}

// paced writes data in slices of about 50 ms of the link's rate.
func (s *shaper) paced(dir direction, dst io.Writer, data []byte, rate float64, rs *ruleSet) bool {
	slice := max(1, min(chunkSize, int(rate/20)))
	for len(data) > 0 {
		n := min(slice, len(data))
		at := s.pace[dir].reserve(n, rate)
		if d := time.Until(at); d > 0 {
			t := time.NewTimer(d)
			ok := s.wait(nil, t.C)
			t.Stop()
			if !ok {
				return false
			}
		}
		if _, err := dst.Write(data[:n]); err != nil {
			s.kill(isReset(err))
			return false
		}
		data = data[n:]
		if cur := s.f.rules.Load(); cur != rs && len(data) > 0 {
			e := cur.effect(s.key.from, s.key.to)
			if e.rate <= 0 || e.blackhole || e.cut || e.reset || s.silenced(cur, e.loss) {
				// the cap changed or something worse arrived: the rest goes
				// through the full rules again
				return s.deliver(dir, dst, chunk{data: data, at: time.Now()}, new(time.Time))
			}
			rate, rs = e.rate, cur
			slice = max(1, min(chunkSize, int(rate/20)))
		}
	}
	return true
}

// wait blocks until changed or fire fires (true) or the pipe or fabric ends
// (false).
func (s *shaper) wait(changed <-chan struct{}, fire <-chan time.Time) bool {
	select {
	case <-changed:
		return true
	case <-fire:
		return true
	case <-s.done:
		return false
	case <-s.f.done:
		s.kill(false)
		return false
	}
}

// silenced reports whether one of the loss rules of rs (loss is their
// combined list for this link) drew this connection; draws are made once
// per (connection, rule). Draws of rules no longer in force are forgotten,
// but only when rs is still the rule set in force: both directions ask,
// and one holding a set just replaced must not drop a draw the other made
// under the new one (it would be drawn again).
func (s *shaper) silenced(rs *ruleSet, loss []lossRule) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	current := s.f.rules.Load() == rs // under s.mu: no draw can slip in between
	if len(loss) == 0 {
		if current {
			clear(s.lost)
		}
		return false
	}
	if s.lost == nil {
		s.lost = make(map[uint64]bool, len(loss))
	}
	out := false
	for _, l := range loss {
		hit, drawn := s.lost[l.id]
		if !drawn {
			hit = s.rng.Float64() < l.p
			s.lost[l.id] = hit
		}
		out = out || hit
	}
	if current {
		for id := range s.lost { // bounded by the rules in force
			if !slices.ContainsFunc(loss, func(l lossRule) bool { return l.id == id }) {
				delete(s.lost, id)
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
