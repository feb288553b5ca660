package migration

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/soakd/soakd/internal/netutil"
)

// Bounds on what a hello may ask a host to allocate.
const (
	maxGuestBytes = 64 << 30
	maxStreams    = 64
	// maxRecent is how many finished incoming migrations a host remembers
	// for out-of-band resolution.
	maxRecent = 256
	// maxIncoming bounds the migrations a host receives at once: each maps
	// a guest's worth of memory.
	maxIncoming = 16
)

// Host is one migration host: a listener for incoming migrations and the
// guests that run on it.
type Host struct {
	ID    string
	clock clockwork.Clock
	log   *slog.Logger
	stall time.Duration
	// bind is the host's fixed listen address (a host process's, which its
	// peers' fabric proxies lead to); "" picks a fresh loopback port.
	bind string

	mu       sync.Mutex
	ln       net.Listener
	up       bool
	guests   map[string]*Guest
	incoming map[uint64]*incoming
	recent   map[uint64]bool // finished incoming migrations: resumed or not
	order    []uint64        // recent, oldest first
	outgoing map[uint64]context.CancelFunc
	outWG    sync.WaitGroup
	wg       sync.WaitGroup
}

func newHost(id string, clock clockwork.Clock, log *slog.Logger, stall time.Duration) *Host {
	return &Host{ID: id, clock: clock, log: log, stall: stall, guests: map[string]*Guest{},
		incoming: map[uint64]*incoming{}, recent: map[uint64]bool{}, outgoing: map[uint64]context.CancelFunc{}}
}

// start listens on a fresh loopback port and starts the host's guests
// (those installed while it was down).
func (h *Host) start() error {
	ln, err := net.Listen("tcp", cmp.Or(h.bind, "127.0.0.1:0"))
	// A fixed address may still be held a moment by the process before.
	for i := 0; err != nil && h.bind != "" && errors.Is(err, syscall.EADDRINUSE) && i < 50; i++ {
		time.Sleep(100 * time.Millisecond)
		ln, err = net.Listen("tcp", h.bind)
	}
	if err != nil {
		return fmt.Errorf("migration: %s: listen: %w", h.ID, err)
	}
	h.mu.Lock()
	h.ln, h.up = ln, true
	for _, g := range h.guests {
		if !g.running() {
			g.resume(g.state())
		}
	}
	h.mu.Unlock()
	h.wg.Go(func() { h.accept(ln) })
	return nil
}

// Addr is where the host listens ("" while down).
func (h *Host) Addr() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.up {
		return ""
	}
	return h.ln.Addr().String()
}

// Up reports whether the host runs.
func (h *Host) Up() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.up
}

// stop takes the host down as a crash would: its migrations in both
// directions fail (their guests stay where they were), its listener
// closes and its guests are lost with their memory; the component
// recreates them from their owner records when the host restarts.
func (h *Host) stop() {
	h.mu.Lock()
	if !h.up {
		h.mu.Unlock()
		return
	}
	h.up = false
	ln := h.ln
	for _, cancel := range h.outgoing {
		cancel()
	}
	ins := make([]*incoming, 0, len(h.incoming))
	for _, in := range h.incoming {
		ins = append(ins, in)
	}
	h.mu.Unlock()
	_ = ln.Close()
	for _, in := range ins {
		in.abort(errors.New("destination host down"))
	}
	h.outWG.Wait() // outgoing migrations roll back before the guests stop
	h.mu.Lock()
	lost := h.guests
	h.guests = map[string]*Guest{}
	h.mu.Unlock()
	for id, g := range lost {
		g.pause()
		if err := g.free(); err != nil {
			h.log.Warn("freeing a crashed host's guest", "guest", id, "err", err)
		}
	}
	h.wg.Wait()
}

// install places a guest on a host that is down; start starts it.
func (h *Host) install(g *Guest) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.up {
		return fmt.Errorf("migration: %s is up; guests are installed while it is down", h.ID)
	}
	if _, dup := h.guests[g.ID]; dup {
		return fmt.Errorf("migration: %s already has %s", h.ID, g.ID)
	}
	h.guests[g.ID] = g
	return nil
}

// close stops the host and frees its guests' memory.
func (h *Host) close() error {
	h.stop()
	h.mu.Lock()
	defer h.mu.Unlock()
	var errs []error
	for id, g := range h.guests {
		errs = append(errs, g.free())
		delete(h.guests, id)
	}
	return errors.Join(errs...)
}

func (h *Host) deadline(c net.Conn) {
	if h.stall > 0 {
		_ = c.SetDeadline(time.Now().Add(h.stall))
	}
}

func (h *Host) accept(ln net.Listener) {
	for {
		c, err := netutil.Accept(ln, func(err error) { h.log.Warn("migration host accept failed, retrying", "host", h.ID, "err", err) })
		if err != nil {
			return // the listener is closed
		}
		h.wg.Go(func() { h.serve(c) })
	}
}

// serve reads a stream's hello and hands the stream to its migration.
func (h *Host) serve(c net.Conn) {
	defer c.Close()
	h.deadline(c)
	fr := newFrameReader(c)
	var hi hello
	if err := fr.control(frameHello, &hi); err != nil || hi.Magic != wireMagic || hi.Stream < 0 || hi.Stream >= hi.Streams {
		h.log.Debug("migration stream refused", "host", h.ID, "err", err)
		return
	}
	in, err := h.incomingFor(hi)
	if err != nil {
		h.log.Warn("incoming migration refused", "host", h.ID, "guest", hi.Guest, "err", err)
		return
	}
	if !in.join(c) {
		return
	}
	// The reader keeps what it buffered past the hello: serve reads on.
	in.serveWith(c, fr, hi)
}

func (h *Host) incomingFor(hi hello) (*incoming, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.up {
		return nil, errors.New("host down")
	}
	if in, ok := h.incoming[hi.ID]; ok {
		if in.h.Guest != hi.Guest || in.h.Size != hi.Size || in.h.Streams != hi.Streams || in.h.Codec != hi.Codec {
			return nil, fmt.Errorf("stream %d of migration %d disagrees with its first stream", hi.Stream, hi.ID)
		}
		return in, nil
	}
	if _, done := h.recent[hi.ID]; done {
		return nil, fmt.Errorf("migration %d is over", hi.ID)
	}
	if _, here := h.guests[hi.Guest]; here {
		return nil, fmt.Errorf("guest %s already runs here", hi.Guest)
	}
	if len(h.incoming) >= maxIncoming {
		return nil, fmt.Errorf("%d migrations already arriving", maxIncoming)
	}
	in, err := newIncoming(h, hi)
	if err != nil {
		return nil, err
	}
	h.incoming[hi.ID] = in
	return in, nil
}

// forget moves a finished incoming migration to the recent outcomes.
func (h *Host) forget(id uint64, resumed bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.incoming, id)
	h.recent[id] = resumed
	h.order = append(h.order, id)
	if len(h.order) > maxRecent {
		delete(h.recent, h.order[0])
		h.order = h.order[1:]
	}
}

// adopt makes g one of the host's guests and starts it.
func (h *Host) adopt(g *Guest, cpu CPUState) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.up {
		// Resumed as the host crashed: lost with it, like its other
		// guests (its owner record names this host).
		_ = g.free()
		return 0
	}
	h.guests[g.ID] = g
	return g.resume(cpu)
}

// resolve answers, out of band, whether migration id resumed here; if it
// had not, it never will.
func (h *Host) resolve(id uint64) bool {
	h.mu.Lock()
	in, ok := h.incoming[id]
	resumedHere := h.recent[id]
	h.mu.Unlock()
	if ok {
		return in.resolveOutOfBand()
	}
	return resumedHere
}

// guest returns the named guest if it runs here.
func (h *Host) guest(id string) (*Guest, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	g, ok := h.guests[id]
	return g, ok
}

// release removes a guest that moved away and frees its memory.
func (h *Host) release(id string) error {
	h.mu.Lock()
	g, ok := h.guests[id]
	delete(h.guests, id)
	h.mu.Unlock()
	if !ok {
		return nil
	}
	return g.free()
}

// snapshot is whether the host is up and the guests it runs, at once.
func (h *Host) snapshot() (up bool, guests []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id := range h.guests {
		guests = append(guests, id)
	}
	return h.up, guests
}

// guestIDs lists the host's guests, sorted.
func (h *Host) guestIDs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.guests))
	for id := range h.guests {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// beginOutgoing registers a migration leaving the host, so a crash can
// cut it; false if the host is down.
func (h *Host) beginOutgoing(ctx context.Context, id uint64) (context.Context, func(), bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.up {
		return nil, nil, false
	}
	ctx, cancel := context.WithCancel(ctx)
	h.outgoing[id] = cancel
	h.outWG.Add(1)
	return ctx, func() {
		cancel()
		h.mu.Lock()
		delete(h.outgoing, id)
		h.mu.Unlock()
		h.outWG.Done()
	}, true
}
