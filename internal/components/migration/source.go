package migration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/soakd/soakd/internal/components/migration/codec"
	"github.com/soakd/soakd/internal/components/migration/xbzrle"
)

// Params configures one migration.
type Params struct {
	Streams    int
	Codec      string
	CacheBytes int // XBZRLE cache, split over the streams (0: no deltas)
	Policy     Policy
	DirtyLimit float64 // bytes/s cap on the guest while it migrates (0: none)
	Edge       bool    // check the one-edge invariant (sequential workloads of generated guests)
	// PriorBandwidth is the link's bandwidth from earlier migrations.
	PriorBandwidth float64
	// StallTimeout bounds any single write or read on the wire.
	StallTimeout time.Duration
	// Owner is the guest's owner record, claimed for the destination at
	// switch-over before it resumes (nil: none).
	Owner Ownership `json:"-"`
	// corruptDeltas is a test knob: every delta sent has a byte flipped,
	// a planted bug the destination's verification must catch.
	corruptDeltas bool
	// resumeBeforeClaim is a test knob: the destination resumes before the
	// owner record is claimed, and a failed claim rolls the source back
	// too, a planted bug the ownership invariant must catch.
	resumeBeforeClaim bool
}

// Report is what one migration did.
type Report struct {
	ID        uint64
	Rounds    []Round
	Decisions []Decision
	RawBytes  int64
	WireBytes int64
	ZeroPages int64
	Cache     xbzrle.CacheStats
	// Total runs from the first round to the resume on the destination
	// (or to the rollback); Verify is the frozen source's check after it.
	Total    time.Duration
	Verify   time.Duration
	Downtime time.Duration // pause to resume, as the source saw it
	// Ownership is how long claiming the owner record took (in Downtime).
	Ownership time.Duration
	// HeartbeatGap is the guest's own view of the downtime: its last beat
	// on the source to its first on the destination.
	HeartbeatGap time.Duration
	Throttle     float64
	// Outcome: ok, failed (rolled back: the guest runs on its source,
	// unchanged) or unknown (the commit's answer was lost; the caller
	// resolves it).
	Outcome string
	Err     error `json:"-"` // see wireReport
	// Mismatch lists the first pages found different, when verification
	// failed; Invariant names what failed.
	Mismatch  []int
	Invariant string
	moved     bool
}

// Moved reports whether the guest runs on the destination now.
func (r Report) Moved() bool { return r.moved }

// Bandwidth is what the rounds moved on the wire per second of sending.
func (r Report) Bandwidth() float64 {
	var bytes int64
	var took time.Duration
	for _, rd := range r.Rounds {
		bytes += rd.WireBytes
		took += rd.Took
	}
	if took <= 0 {
		return 0
	}
	return float64(bytes) / took.Seconds()
}

// LinkBandwidth estimates what the link can carry: wire bytes per second
// spent on the network (writing, and waiting for each round's sync), not
// copying and compressing pages. A sender held back by its codec spends
// little time writing, so the estimate stays above what it achieved: the
// codec choice can then see that a faster codec (or none) would do better.
func (r Report) LinkBandwidth() float64 {
	var bytes int64
	var net time.Duration
	for _, rd := range r.Rounds {
		bytes += rd.WireBytes
		net += max(rd.NetTime, rd.Took/100)
	}
	if net <= 0 {
		return 0
	}
	return float64(bytes) / net.Seconds()
}

// Outcomes.
const (
	OutcomeOK      = "ok"
	OutcomeFailed  = "failed"
	OutcomeUnknown = "unknown"
)

// Progress is told each round's measurements and decision.
type Progress func(r Round, d Decision, pending int, elapsed time.Duration)

// outgoing is the source side of one migration.
type outgoing struct {
	id     uint64
	g      *Guest
	p      Params
	codec  codec.Codec
	conns  []net.Conn
	fws    []*frameWriter
	frs    []*frameReader
	caches []*xbzrle.Cache
	sent   *region // per-page hash of the content last sent
	rep    Report
	mu     sync.Mutex // guards rep's counters from the stream senders
}

// dialFunc opens stream i to the destination.
type dialFunc func(ctx context.Context, stream int) (net.Conn, error)

// migrate moves g to the destination dial reaches. On any failure before
// the commit the guest keeps running on the source, unchanged. After a
// resumed reply the source's frozen memory is verified against what was
// sent, then the caller frees it.
func migrate(ctx context.Context, id uint64, g *Guest, p Params, dial dialFunc, resolve resolveFunc, progress Progress) (rep Report) {
	start := time.Now()
	o := &outgoing{id: id, g: g, p: p}
	o.rep.ID = id
	defer func() {
		rep = o.rep
		if rep.Total == 0 {
			rep.Total = time.Since(start)
		}
		if rep.Err != nil && rep.Outcome == "" {
			rep.Outcome = OutcomeFailed
		}
	}()
	var err error
	if o.codec, err = codec.ByName(p.Codec); err != nil {
		o.rep.Err = err
		return
	}
	if o.sent, err = newRegion(g.Pages() * 8); err != nil {
		o.rep.Err = err
		return
	}
	defer o.sent.free()
	defer o.close()
	if err := o.open(ctx, dial); err != nil {
		o.rep.Err = err
		return
	}
	stop := context.AfterFunc(ctx, o.abortConns)
	defer stop()

	cpu, err := o.precopy(ctx, start, progress)
	if err != nil {
		o.rollback(nil)
		o.rep.Err = err
		return
	}
	o.switchOver(ctx, cpu, resolve, start)
	return
}

func (o *outgoing) open(ctx context.Context, dial dialFunc) error {
	n := max(o.p.Streams, 1)
	per := 0
	if o.p.CacheBytes > 0 {
		per = max(o.p.CacheBytes/n/PageSize*PageSize, PageSize)
	}
	for i := range n {
		c, err := dial(ctx, i)
		if err != nil {
			return fmt.Errorf("migration: dial stream %d: %w", i, err)
		}
		o.conns = append(o.conns, c)
		fw := newFrameWriter(c)
		o.fws = append(o.fws, fw)
		o.frs = append(o.frs, newFrameReader(c))
		if per > 0 {
			cache, err := xbzrle.NewCache(per, PageSize)
			if err != nil {
				return err
			}
			o.caches = append(o.caches, cache)
		}
		h := hello{Magic: wireMagic, ID: o.id, Stream: i, Streams: n, Guest: o.g.ID, Size: o.g.Size(),
			PageSize: PageSize, Codec: o.codec.Name(), Workload: o.g.wl, Edge: o.p.Edge}
		o.deadline(c)
		if err := fw.control(frameHello, h); err != nil {
			return fmt.Errorf("migration: hello on stream %d: %w", i, err)
		}
	}
	return nil
}

func (o *outgoing) deadline(c net.Conn) {
	if o.p.StallTimeout > 0 {
		_ = c.SetDeadline(time.Now().Add(o.p.StallTimeout))
	}
}

func (o *outgoing) abortConns() {
	for _, c := range o.conns {
		_ = c.Close()
	}
}

func (o *outgoing) close() {
	o.abortConns()
	for _, c := range o.caches {
		st := c.Stats()
		o.rep.Cache.Hits += st.Hits
		o.rep.Cache.Misses += st.Misses
		o.rep.Cache.Overflows += st.Overflows
		o.rep.Cache.Evictions += st.Evictions
		_ = c.Close()
	}
	o.caches = nil
}

// rollback leaves the guest running on the source.
func (o *outgoing) rollback(cpu *CPUState) {
	o.abortConns()
	o.g.setThrottle(0, 0)
	if cpu != nil {
		o.g.resume(*cpu)
	}
}

// precopy sends rounds until the rule says switch over (it returns with
// the guest paused and its state) or cancel (an error, guest running).
func (o *outgoing) precopy(ctx context.Context, start time.Time, progress Progress) (*CPUState, error) {
	planner := NewPlanner(o.p.Policy, o.p.PriorBandwidth)
	o.g.setThrottle(0, o.p.DirtyLimit)
	o.g.dirty.setAll()
	var pages []int
	for n := 0; ; n++ {
		pages = o.g.dirty.collect(pages[:0])
		r, err := o.round(ctx, n, pages)
		if err != nil {
			return nil, err
		}
		pending := o.g.dirty.count()
		r.Dirtied = pending
		elapsed := time.Since(start)
		d := planner.Next(r, pending, elapsed)
		o.rep.Rounds = append(o.rep.Rounds, r)
		o.rep.Decisions = append(o.rep.Decisions, d)
		o.rep.Throttle = d.Throttle
		o.g.setThrottle(d.Throttle, o.p.DirtyLimit)
		if progress != nil {
			progress(r, d, pending, elapsed)
		}
		switch d.Action {
		case SwitchOver:
			cpu := o.g.pause()
			return &cpu, nil
		case Cancel:
			return nil, fmt.Errorf("migration: cancelled by %s after %d rounds", d.Rule, n+1)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// round sends pages, striped over the streams by page number.
func (o *outgoing) round(ctx context.Context, n int, pages []int) (Round, error) {
	t0 := time.Now()
	r := Round{N: n, Pages: len(pages)}
	streams := len(o.fws)
	var wg sync.WaitGroup
	errs := make([]error, streams)
	wire := make([]int64, streams)
	net := make([]time.Duration, streams)
	for s := range streams {
		wg.Go(func() {
			if wire[s], net[s], errs[s] = o.sendStream(s, uint64(n)+1, pages); errs[s] == nil {
				t := time.Now()
				errs[s] = o.sync(s)
				net[s] += time.Since(t)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return r, err
	}
	for s, w := range wire {
		r.WireBytes += w
		r.NetTime += net[s] / time.Duration(streams)
	}
	r.RawBytes = int64(len(pages)) * PageSize
	r.Took = time.Since(t0)
	o.mu.Lock()
	o.rep.RawBytes += r.RawBytes
	o.rep.WireBytes += r.WireBytes
	o.mu.Unlock()
	return r, ctx.Err()
}

// stripe is the stream page p travels on: always the same one, so a page's
// versions arrive in order.
func stripe(p, streams int) int { return p % streams }

// sync ends a round on stream s: it waits until the destination has
// applied everything sent before. A round's time is then what the link
// delivered, not what the socket and fabric buffers swallowed, so the
// bandwidth forecast is honest and no backlog is left for the downtime.
func (o *outgoing) sync(s int) error {
	o.deadline(o.conns[s])
	if err := o.fws[s].control(frameSync, struct{}{}); err != nil {
		return err
	}
	var ack struct{}
	return o.frs[s].control(frameSynced, &ack)
}

// appendPage appends page p's entry to batch. A zero page goes as a marker
// (were it written after the check, its dirty bit sends it again next
// round). Any other page is copied out of the running guest once, straight
// into the batch: what is hashed, cached and sent is that one version; a
// re-sent page whose delta against the cache is small goes as the delta.
func (o *outgoing) appendPage(batch, delta []byte, p int, gen uint64, cache *xbzrle.Cache) ([]byte, []byte, bool) {
	sent := o.sent.u64s()
	// A stream's pages are p ≡ s (mod streams): its cache is keyed by the
	// stream-local index, or the pages would crowd 1/streams of its sets.
	key := uint64(p / len(o.fws))
	if isZero(o.g.mem.page(p)) {
		sent[p] = zeroPageHash
		if cache != nil {
			cache.Invalidate(key)
		}
		return appendEntry(batch, p, gen, pageZero, nil), delta, true
	}
	mark := len(batch)
	batch = appendEntry(batch, p, gen, pageRaw, o.g.mem.page(p))
	snap := batch[len(batch)-PageSize:]
	sent[p] = pageHash(snap)
	if cache == nil {
		return batch, delta, false
	}
	var d []byte
	if gen > 1 { // round 0 sends every page: only a re-sent one has a base
		if old, ok := cache.Get(key); ok {
			var fits bool
			if d, fits = xbzrle.Encode(delta[:0], old, snap, PageSize*3/4); !fits {
				d = nil
				cache.Overflow()
			}
		}
	}
	cache.Put(key, snap)
	if d == nil {
		return batch, delta, false
	}
	if o.p.corruptDeltas && len(d) > 0 {
		d[len(d)-1] ^= 0x10
	}
	return appendEntry(batch[:mark], p, gen, pageDelta, d), d, false
}

// sendStream sends stream s's share of pages (page % streams == s) in
// batches. It returns the wire bytes and the time spent writing them (on
// the network, not copying and compressing pages).
func (o *outgoing) sendStream(s int, gen uint64, pages []int) (int64, time.Duration, error) {
	streams := len(o.fws)
	fw := o.fws[s]
	var cache *xbzrle.Cache
	if len(o.caches) > 0 {
		cache = o.caches[s]
	}
	batch := make([]byte, 0, batchPages*(PageSize+16))
	delta := make([]byte, 0, PageSize)
	identity := o.codec.Name() == "none"
	var out []byte
	var wire, zeros int64
	var net time.Duration
	inBatch := 0
	flush := func() error {
		if inBatch == 0 {
			return nil
		}
		out = batch // none: the batch goes as it is
		if !identity {
			var err error
			if out, err = o.codec.Compress(out[:0:0], batch); err != nil {
				return err
			}
		}
		o.deadline(o.conns[s])
		t := time.Now()
		err := fw.frame(framePages, len(batch), out)
		net += time.Since(t)
		if err != nil {
			return err
		}
		wire += int64(len(out)) + 9
		batch, inBatch = batch[:0], 0
		return nil
	}
	for _, p := range pages {
		if stripe(p, streams) != s {
			continue
		}
		var zero bool
		batch, delta, zero = o.appendPage(batch, delta, p, gen, cache)
		if zero {
			zeros++
		}
		if inBatch++; inBatch == batchPages {
			if err := flush(); err != nil {
				return wire, net, err
			}
		}
	}
	if err := flush(); err != nil {
		return wire, net, err
	}
	o.deadline(o.conns[s])
	t := time.Now()
	err := fw.flush()
	net += time.Since(t)
	o.mu.Lock()
	o.rep.ZeroPages += zeros
	o.mu.Unlock()
	return wire, net, err
}
