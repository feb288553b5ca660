package fabric

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/soakd/soakd/internal/components"
)

// Bounds of the fabric; each is a named constant so a 72-hour run has a
// known ceiling.
const (
	// MaxProxies caps the per-link proxies (one per distinct from, to,
	// addr); a dial that would need more fails.
	MaxProxies = 4096
	// MaxConnsPerLink caps the open connections of one proxy; further
	// connections are refused (reset).
	MaxConnsPerLink = 1024
	// CutDialTimeout is how long a dial into a cut link waits (unless the
	// caller's deadline is sooner) before it fails with a timeout.
	CutDialTimeout = 2 * time.Second
	// upstreamDialTimeout bounds the proxy's own dial to the destination.
	upstreamDialTimeout = 5 * time.Second
	// chunkSize is the largest read the proxy forwards in one piece.
	chunkSize = 32 << 10
	// queueChunks bounds the chunks held in one direction of one connection
	// (so at most queueChunks*chunkSize bytes are in flight per direction).
	queueChunks = 128
)

// ErrClosed is returned by a closed fabric.
var ErrClosed = errors.New("fabric: closed")

// effect is what the rules in force do to one link.
type effect struct {
	latency, jitter time.Duration // applied from -> to
	rate            float64       // bytes/s each direction; 0: no cap
	blackhole       bool
	cut             bool
	reset           bool
	loss            []lossRule
}

type lossRule struct {
	id uint64
	p  float64
}

type rule struct {
	id   uint64
	kind string
	sel  Selector
	eff  effect
}

// ruleSet is an immutable snapshot of the rules in force; changed is closed
// (ctx is cancelled) when it is replaced, which wakes every stalled or
// delayed pipe and, through context.AfterFunc on ctx, interrupts every copy
// on the fast path.
type ruleSet struct {
	rules   []rule
	ctx     context.Context
	cancel  context.CancelFunc
	changed <-chan struct{} // ctx.Done()
	// fast counts the connection directions on the fast path under this
	// rule set; drained is closed once it is replaced and they have all
	// stopped, so a new rule is in force when apply returns.
	fast      atomic.Int64
	drained   chan struct{}
	drainOnce sync.Once
}

func newRuleSet(rules []rule) *ruleSet {
	ctx, cancel := context.WithCancel(context.Background())
	return &ruleSet{rules: rules, ctx: ctx, cancel: cancel, changed: ctx.Done(), drained: make(chan struct{})}
}

// enterFast and leaveFast bracket a fast-path copy under rs.
func (rs *ruleSet) enterFast() { rs.fast.Add(1) }

func (rs *ruleSet) leaveFast() {
	if rs.fast.Add(-1) == 0 && rs.ctx.Err() != nil {
		rs.drainOnce.Do(func() { close(rs.drained) })
	}
}

// retire cancels rs (every fast copy under it is interrupted) and, if no
// copy runs under it, marks it drained at once.
func (rs *ruleSet) retire() {
	rs.cancel()
	if rs.fast.Load() == 0 {
		rs.drainOnce.Do(func() { close(rs.drained) })
	}
}

// fastStopTimeout bounds how long apply waits for fast copies to stop (an
// interrupted copy stops at once; this only guards a wedged one).
const fastStopTimeout = time.Second

func (rs *ruleSet) effect(from, to string) effect {
	var e effect
	for i := range rs.rules {
		r := &rs.rules[i]
		if !r.sel.match(from, to) {
			continue
		}
		e.latency += r.eff.latency
		e.jitter += r.eff.jitter
		if r.eff.rate > 0 && (e.rate == 0 || r.eff.rate < e.rate) {
			e.rate = r.eff.rate
		}
		e.blackhole = e.blackhole || r.eff.blackhole
		e.cut = e.cut || r.eff.cut
		e.reset = e.reset || r.eff.reset
		e.loss = append(e.loss, r.eff.loss...)
	}
	return e
}

// InForce is what the rules in force now do to one link, for a fault that
// verifies itself: an effect another rule also puts on the link can mask
// its own.
type InForce struct {
	Latency, Jitter time.Duration
	Rate            float64 // bytes/s; 0: no cap
	Blackhole, Cut  bool
	Reset, Lossy    bool
}

// InForce reports the combined effect of the rules in force on l.
func (f *Fabric) InForce(l Link) InForce {
	e := f.rules.Load().effect(l.From, l.To)
	return InForce{Latency: e.latency, Jitter: e.jitter, Rate: e.rate, Blackhole: e.blackhole, Cut: e.cut,
		Reset: e.reset, Lossy: len(e.loss) > 0}
}

type linkKey struct {
	from, to, addr string
}

// Fabric routes component links through per-link proxies and applies link
// faults to them. It is safe for concurrent use.
type Fabric struct {
	log   *slog.Logger
	rules atomic.Pointer[ruleSet]
	done  chan struct{}
	wg    sync.WaitGroup
	// ctx is cancelled by Close; it bounds the proxies' own dials.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	closed  bool
	proxied bool               // Dialer goes through per-link proxies
	links   map[linkKey]*link  // in-process links (the default)
	proxies map[linkKey]*proxy // proxied links
	probes  map[*link]struct{} // probes in progress
	nextID  uint64
	rng     *rand.Rand
	// halfCloseLinger bounds a half-closed connection (see pipe.halfDone).
	halfCloseLinger time.Duration
}

// Option configures New.
type Option func(*Fabric)

// WithSeed seeds the fabric's random choices (jitter, loss draws).
func WithSeed(seed uint64) Option {
	return func(f *Fabric) { f.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }
}

// DefaultHalfCloseLinger is how long a connection one side has closed may
// wait for the other side to finish: soakd's components close whole
// connections, so a side still silent a minute after its peer's FIN is
// gone (a stuck or partitioned node) and only holds two sockets.
const DefaultHalfCloseLinger = time.Minute

// WithProxies makes Dialer route every link through a per-link TCP proxy on
// loopback instead of shaping the dialing node's own connection in the
// process: the way for a node that runs in another process, whose sockets
// the fabric cannot wrap. It costs a second loopback hop per byte.
func WithProxies() Option {
	return func(f *Fabric) { f.proxied = true }
}

// WithHalfCloseLinger sets how long a half-closed connection may wait for
// its other direction to end before both sides are reset.
func WithHalfCloseLinger(d time.Duration) Option {
	return func(f *Fabric) { f.halfCloseLinger = d }
}

// New returns an empty fabric; proxies are created on first dial.
func New(log *slog.Logger, opts ...Option) *Fabric {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &Fabric{
		log:     log.With("room", "network"),
		done:    make(chan struct{}),
		proxies: make(map[linkKey]*proxy),
		links:   make(map[linkKey]*link),
		probes:  make(map[*link]struct{}),

		halfCloseLinger: DefaultHalfCloseLinger,
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	WithSeed(1)(f)
	for _, o := range opts {
		o(f)
	}
	f.rules.Store(newRuleSet(nil))
	return f
}

// Dialer is the link hook to hand to components (components.Deps.Dial):
// each (from, to, addr) is a link whose connections the fabric shapes in
// the process, or, WithProxies, routes over the link's own proxy.
func (f *Fabric) Dialer() components.Dialer { return f.dial }

// DialerFor is Dialer with node names qualified as component/node, for
// components whose node ids could collide with another component's (raft's
// "node-1" and pbft's "node-1" are then different fabric nodes). A resolver
// for such a fabric returns qualified names.
func (f *Fabric) DialerFor(component string) components.Dialer {
	return func(ctx context.Context, from, to, addr string) (net.Conn, error) {
		return f.dial(ctx, component+"/"+from, component+"/"+to, addr)
	}
}

// LinkAddrFor is the components.Deps.LinkAddr hook of component's nodes
// when they run in other processes: the listen address of the proxy that
// carries link from -> to (names qualified as DialerFor does), created on
// first use and kept for the fabric's life, so a restarted node process
// gets the same one. Every rule applies to it as to an in-process link.
func (f *Fabric) LinkAddrFor(component string) func(from, to, addr string) (string, error) {
	return func(from, to, addr string) (string, error) {
		p, err := f.proxyFor(linkKey{component + "/" + from, component + "/" + to, addr})
		if err != nil {
			return "", err
		}
		return p.ln.Addr().String(), nil
	}
}

func (f *Fabric) dial(ctx context.Context, from, to, addr string) (net.Conn, error) {
	if err := f.gate(ctx, from, to, addr); err != nil {
		return nil, err
	}
	if !f.proxied {
		l, err := f.linkFor(linkKey{from, to, addr})
		if err != nil {
			return nil, err
		}
		return f.dialLink(ctx, l, addr)
	}
	p, err := f.proxyFor(linkKey{from, to, addr})
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", p.ln.Addr().String())
}

// gate blocks a dial into a cut link the way a SYN into a partition is
// never answered: until the cut heals (then the dial goes ahead), the
// caller's deadline, or CutDialTimeout.
func (f *Fabric) gate(ctx context.Context, from, to, addr string) error {
	var timer *time.Timer
	for {
		rs := f.rules.Load()
		if !rs.effect(from, to).cut {
			if timer != nil {
				timer.Stop()
			}
			return nil
		}
		if timer == nil {
			timer = time.NewTimer(CutDialTimeout)
			defer timer.Stop()
		}
		opErr := func(err error) error {
			return &net.OpError{Op: "dial", Net: "tcp", Addr: tcpAddr(addr),
				Err: &cutError{link: Link{from, to}, cause: err}}
		}
		select {
		case <-rs.changed:
		case <-ctx.Done():
			return opErr(ctx.Err())
		case <-timer.C:
			return opErr(os.ErrDeadlineExceeded)
		case <-f.done:
			return ErrClosed
		}
	}
}

// cutError is why a dial into a cut link failed; like a dial timeout it
// reports Timeout() when the wait ran out.
type cutError struct {
	link  Link
	cause error
}

func (e *cutError) Error() string {
	return "link " + e.link.String() + " partitioned: " + e.cause.Error()
}
func (e *cutError) Unwrap() error { return e.cause }
func (e *cutError) Timeout() bool {
	return errors.Is(e.cause, context.DeadlineExceeded) || errors.Is(e.cause, os.ErrDeadlineExceeded)
}
func (e *cutError) Temporary() bool { return e.Timeout() }

func tcpAddr(addr string) net.Addr {
	if a, err := net.ResolveTCPAddr("tcp", addr); err == nil {
		return a
	}
	return nil
}

func (f *Fabric) linkFor(k linkKey) (*link, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, ErrClosed
	}
	if l, ok := f.links[k]; ok {
		return l, nil
	}
	if len(f.links) >= MaxProxies {
		return nil, fmt.Errorf("fabric: more than %d links", MaxProxies)
	}
	l := &link{key: k, conns: make(map[*linkConn]struct{})}
	f.links[k] = l
	return l, nil
}

func (f *Fabric) proxyFor(k linkKey) (*proxy, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, ErrClosed
	}
	if p, ok := f.proxies[k]; ok {
		return p, nil
	}
	if len(f.proxies) >= MaxProxies {
		return nil, fmt.Errorf("fabric: more than %d links", MaxProxies)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fabric: proxy for %s->%s: %w", k.from, k.to, err)
	}
	p := newProxy(f, k, ln)
	f.proxies[k] = p
	f.wg.Add(1)
	// The proxy's goroutines are the fabric's, whoever dialled first.
	go pprof.Do(context.Background(), pprof.Labels("stage", "fabric"), func(context.Context) { p.serve() })
	f.log.Debug("link proxy started", "from", k.from, "to", k.to, "addr", k.addr, "listen", ln.Addr().String())
	return p, nil
}

// Links lists the directed links the fabric has seen, sorted.
func (f *Fabric) Links() []Link {
	f.mu.Lock()
	defer f.mu.Unlock()
	seen := make(map[Link]bool, len(f.proxies)+len(f.links))
	out := make([]Link, 0, len(f.proxies)+len(f.links))
	add := func(k linkKey) {
		l := Link{k.from, k.to}
		if !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	for k := range f.proxies {
		add(k)
	}
	for k := range f.links {
		add(k)
	}
	slices.SortFunc(out, func(a, b Link) int {
		return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To))
	})
	return out
}

// Select lists the known links sel matches now.
func (f *Fabric) Select(sel Selector) []Link {
	var out []Link
	for _, l := range f.Links() {
		if sel.Match(l) {
			out = append(out, l)
		}
	}
	return out
}

// Close stops every proxy, closes every proxied connection and waits for
// every goroutine of the fabric. Rules are dropped. Close is idempotent.
func (f *Fabric) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	close(f.done)
	f.cancel()
	ps := make([]*proxy, 0, len(f.proxies))
	for _, p := range f.proxies {
		ps = append(ps, p)
	}
	ls := make([]*link, 0, len(f.links)+len(f.probes))
	for _, l := range f.links {
		ls = append(ls, l)
	}
	for l := range f.probes {
		ls = append(ls, l)
	}
	f.proxies = map[linkKey]*proxy{}
	f.links = map[linkKey]*link{}
	f.mu.Unlock()
	for _, l := range ls {
		l.killConns(false)
	}
	var errs []error
	for _, p := range ps {
		if err := p.close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	f.wg.Wait()
	return errors.Join(errs...)
}

// apply puts a rule in force and returns its idempotent revert.
func (f *Fabric) apply(kind string, sel Selector, eff effect) (func(context.Context) error, error) {
	if sel.match == nil {
		return nil, fmt.Errorf("fabric: %s: empty selector", kind)
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil, ErrClosed
	}
	f.nextID++
	id := f.nextID
	for i := range eff.loss {
		eff.loss[i].id = id
	}
	old := f.swapRulesLocked(func(rs []rule) []rule { return append(rs, rule{id: id, kind: kind, sel: sel, eff: eff}) })
	var hit []interface{ killConns(rst bool) }
	for k, p := range f.proxies {
		if sel.match(k.from, k.to) {
			hit = append(hit, p)
		}
	}
	for k, l := range f.links {
		if sel.match(k.from, k.to) {
			hit = append(hit, l)
		}
	}
	f.mu.Unlock()
	// In force on return: no byte written after this goes by the fast
	// path of an open connection the rule shapes.
	select {
	case <-old.drained:
	case <-time.After(fastStopTimeout):
		f.log.Warn("fabric: fast-path copies slow to stop", "kind", kind)
	}

	// Effects on connections already open.
	switch {
	case eff.cut:
		for _, p := range hit {
			p.killConns(false)
		}
	case eff.reset:
		for _, p := range hit {
			p.killConns(true)
		}
	}
	f.log.Info("link fault applied", "kind", kind, "links", sel.String(), "id", id)

	var once sync.Once
	return func(context.Context) error {
		once.Do(func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.closed {
				return
			}
			f.swapRulesLocked(func(rs []rule) []rule {
				return slices.DeleteFunc(rs, func(r rule) bool { return r.id == id })
			})
			f.log.Info("link fault reverted", "kind", kind, "links", sel.String(), "id", id)
		})
		return nil
	}, nil
}

// swapRulesLocked publishes a new rule set, wakes whoever waits on the
// old one and returns it. f.mu is held.
func (f *Fabric) swapRulesLocked(edit func([]rule) []rule) *ruleSet {
	old := f.rules.Load()
	f.rules.Store(newRuleSet(edit(slices.Clone(old.rules))))
	old.retire()
	return old
}

// Delay adds latency ± jitter to the bytes the dialing node sends over each
// selected link, so a request/response round trip takes about latency more.
func (f *Fabric) Delay(sel Selector, latency, jitter time.Duration) (func(context.Context) error, error) {
	if latency < 0 || jitter < 0 || jitter > latency {
		return nil, fmt.Errorf("fabric: delay: need 0 <= jitter <= latency, got %v ± %v", latency, jitter)
	}
	return f.apply("delay", sel, effect{latency: latency, jitter: jitter})
}

// Bandwidth caps each direction of each selected link at bytesPerSecond,
// shared by the link's connections.
func (f *Fabric) Bandwidth(sel Selector, bytesPerSecond float64) (func(context.Context) error, error) {
	if !(bytesPerSecond > 0) {
		return nil, fmt.Errorf("fabric: bandwidth: rate must be > 0, got %v", bytesPerSecond)
	}
	return f.apply("bandwidth", sel, effect{rate: bytesPerSecond})
}

// Blackhole makes the selected links accept connections and data and
// deliver nothing until reverted.
func (f *Fabric) Blackhole(sel Selector) (func(context.Context) error, error) {
	return f.apply("blackhole", sel, effect{blackhole: true})
}

// Reset resets the selected links' open connections now and new ones on
// their first byte.
func (f *Fabric) Reset(sel Selector) (func(context.Context) error, error) {
	return f.apply("reset", sel, effect{reset: true})
}

// Cut partitions the selected links: open connections are closed and new
// dials time out.
func (f *Fabric) Cut(sel Selector) (func(context.Context) error, error) {
	return f.apply("partition", sel, effect{cut: true})
}

// Loss makes each connection of the selected links go silent (both ways)
// with the given probability, drawn once per connection; see the package
// doc for why loss is per connection on a stream.
func (f *Fabric) Loss(sel Selector, probability float64) (func(context.Context) error, error) {
	if !(probability >= 0 && probability <= 1) {
		return nil, fmt.Errorf("fabric: loss: probability must be in [0, 1], got %v", probability)
	}
	return f.apply("loss", sel, effect{loss: []lossRule{{p: probability}}})
}

// seedPair draws seeds for a new connection's private random source.
func (f *Fabric) seedPair() (uint64, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rng.Uint64(), f.rng.Uint64()
}
