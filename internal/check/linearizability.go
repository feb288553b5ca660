package check

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/soakd/soakd/internal/components"
)

// Defaults and bounds of the linearizability checker.
const (
	DefaultWindow  = 10 * time.Second
	DefaultMaxOps  = 50_000
	DefaultTimeout = 5 * time.Second
	// DefaultMaxOpDuration is the components' op timeout plus slack for
	// the return path: every op called before now-MaxOpDuration has been
	// recorded. Ops that overrun it are counted as late, not lost.
	DefaultMaxOpDuration = components.DefaultOpTimeout + time.Second
	// DefaultUnknownTTL is how long an unknown write may still land: a
	// Raft entry appended by a deposed leader commits, if ever, soon after
	// the next election.
	DefaultUnknownTTL = 60 * time.Second
	DefaultMaxKeys    = 1 << 18
	// MaxBufferOps caps the buffer a Rate may ask for (a few hundred MiB
	// of ops); past it, ops are dropped and counted, never queued.
	MaxBufferOps = 2_000_000
	// MaxPendingPerKey bounds the unknown-outcome writes carried forward per
	// key; past it the key is left unchecked (unknown) until they expire.
	MaxPendingPerKey = 16
	// EvidenceKeep is how many evidence HTML files per component are kept.
	EvidenceKeep = 20
)

// Check results, the values of the result label of soakd_checks_total.
const (
	ResultOK      = "ok"
	ResultIllegal = "illegal"
	ResultUnknown = "unknown"
)

// Reasons an op is counted in soakd_check_dropped_ops_total.
const (
	DropBufferFull = "buffer_full" // buffer at MaxOps when the op arrived
	DropLate       = "late"        // arrived after the window holding it was checked
	DropInvalid    = "invalid"     // unknown Op or Outcome
)

// What closed a window, the values of the trigger label of
// soakd_check_windows_total.
const (
	TriggerTicker   = "ticker"   // every Window
	TriggerPressure = "pressure" // early: the buffer filled faster than Window
	TriggerStop     = "stop"     // the last, partial window at Stop
	TriggerCall     = "call"     // CheckNow or CheckUntil
)

const checkerLinearizability = "linearizability"

// EventInvariantViolation is the journal event type of an illegal window.
const EventInvariantViolation = components.EventInvariantViolation

// KVOp is one finished client operation on a key-value store (defined
// with the component contract; see components.KVOp).
type KVOp = components.KVOp

func writes(op KVOp) bool { return op.Op == "put" || op.Op == "cas" }

// LinearizabilityOptions configures a Linearizability checker. Zero values
// take the defaults.
type LinearizabilityOptions struct {
	Component string        // label value, e.g. "raft"
	Window    time.Duration // check every Window of history (by Return time), default 10s
	MaxOps    int           // hard bound on ops held (buffered + being checked), default from Rate
	// Rate is the expected ops/s. With MaxOps 0 it sizes the buffer to
	// hold twice MaxKeyLag+Window+MaxOpDuration of ops (the longest a key
	// can be held; at least DefaultMaxOps, at most MaxBufferOps), so
	// windows close on the ticker, not early.
	Rate    float64
	Timeout time.Duration // porcupine time budget per key per window, default 5s
	// MaxOpDuration is the longest an operation can be in flight (the
	// client's timeout including retries). The background loop cuts the
	// history at now-MaxOpDuration, so every op called before a cut has
	// been recorded when the cut is checked. Default DefaultMaxOpDuration.
	MaxOpDuration time.Duration
	// UnknownTTL is how long after its call an operation with outcome
	// unknown may still take effect. Default DefaultUnknownTTL.
	UnknownTTL time.Duration
	// MaxKeyLag is how long a key may go without a moment with none of
	// its ops in flight before it is cut anyway (a forced cut, which
	// checks the ops in flight only as optional writes). Keys are also
	// force-cut when the buffer fills (a check woken by pressure), rather
	// than dropping ops. Default Window.
	MaxKeyLag time.Duration
	// InitialAbsent: keys the checker has never seen start absent (a fresh
	// store). False (the default): they start as "any value", which is
	// right for a store resumed from disk.
	InitialAbsent bool
	// MaxKeys bounds the per-key state carried between windows. Past it,
	// keys are forgotten (their state becomes "any value"). Default 2^18.
	MaxKeys     int
	EvidenceDir string                // where to save porcupine's visualization HTML of a failing key
	Metrics     prometheus.Registerer // nil: metrics are kept but not registered
	Event       func(typ string, fields map[string]any)
	Clock       clockwork.Clock
	Logger      *slog.Logger
}

// Violation describes the last illegal key-window.
type Violation struct {
	Key         string
	WindowStart time.Time
	WindowEnd   time.Time
	Evidence    string // path of the visualization HTML, "" when none was written
	DetectedAt  time.Time
}

// Results are the checker's running totals. OK, Illegal and Unknown count
// key-windows (one porcupine check of one key's ops in one window).
type Results struct {
	Windows  uint64
	OK       uint64
	Illegal  uint64
	Unknown  uint64
	Recorded uint64 // ops passed to Record (failed-outcome ops included)
	Failed   uint64 // ops with outcome failed: not applied, so not part of the history
	Checked  uint64 // ops that left the buffer through a checked window
	Dropped  uint64 // ops not checked (buffer full, late, invalid); see soakd_check_dropped_ops_total
	// ForcedCuts counts key-windows cut with ops in flight (the key had
	// no quiescent moment for MaxKeyLag); those ops were checked only as
	// optional writes. See soakd_check_forced_cuts_total.
	ForcedCuts uint64
	// Triggered counts checks started early by buffer pressure rather
	// than by the Window ticker.
	Triggered uint64
	// LastSpan is how much history the last check closed (its cut minus
	// the previous one).
	LastSpan time.Duration
	Buffered int // ops held now (buffered plus being checked)
	// MaxBuffered is the high-water mark of Buffered.
	MaxBuffered   int
	LastViolation *Violation
}

type pendingOp struct {
	op     KVOp
	expiry time.Time
}

// Linearizability checks a KV history for linearizability in bounded
// windows. See the package documentation for the design.
type Linearizability struct {
	o      LinearizabilityOptions
	clock  clockwork.Clock
	logger *slog.Logger

	// epoch anchors the int64 times handed to porcupine: offsets from a
	// clock reading keep the monotonic clock, so a wall-clock step cannot
	// reorder two ops.
	epoch time.Time

	checks     *prometheus.CounterVec
	violations prometheus.Counter
	dropped    *prometheus.CounterVec
	forced     prometheus.Counter
	windows    *prometheus.CounterVec
	span       prometheus.Gauge
	buffered   prometheus.Gauge

	trigger chan struct{}

	mu       sync.Mutex // guards the fields below
	buf      []KVOp
	checking int // ops taken out of buf by the check in progress
	lastCut  time.Time
	// backlog holds the cut of each key still behind lastCut: one whose
	// ops were in flight at every moment since its own last cut. Every
	// key in it has ops in buf, so it is bounded by MaxOps.
	backlog   map[string]time.Time
	wakeAt    int                  // held ops that wake the loop early (half the free space after the last check)
	resets    map[string]struct{}  // keys whose carried state must become "any"
	dropTaint map[string]time.Time // keys left unchecked until the time
	res       Results

	checkMu sync.Mutex // serializes checks; guards the fields below
	states  map[string]regState
	pending map[string][]pendingOp
	taint   map[string]time.Time
	evicted bool

	lifeMu  sync.Mutex
	started bool
	stopCh  chan struct{}
	done    chan struct{}
	cancel  context.CancelFunc
}

// NewLinearizability returns a checker; it registers its metrics with
// o.Metrics (sharing them with other checkers on the same registry).
func NewLinearizability(o LinearizabilityOptions) (*Linearizability, error) {
	if o.Component == "" {
		return nil, errors.New("check: linearizability: component must be set")
	}
	if o.Window < 0 || o.MaxOps < 0 || o.Timeout < 0 || o.MaxOpDuration < 0 || o.UnknownTTL < 0 || o.MaxKeys < 0 || o.MaxKeyLag < 0 || o.Rate < 0 {
		return nil, errors.New("check: linearizability: durations and bounds must not be negative")
	}
	if o.Window == 0 {
		o.Window = DefaultWindow
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxOpDuration == 0 {
		o.MaxOpDuration = DefaultMaxOpDuration
	}
	if o.UnknownTTL == 0 {
		o.UnknownTTL = DefaultUnknownTTL
	}
	if o.MaxKeyLag == 0 {
		o.MaxKeyLag = o.Window
	}
	if o.MaxOps == 0 {
		want := 2 * o.Rate * (o.MaxKeyLag + o.Window + o.MaxOpDuration).Seconds()
		o.MaxOps = int(min(max(want, DefaultMaxOps), MaxBufferOps))
	}
	if o.MaxOps < 2 {
		return nil, errors.New("check: linearizability: max ops must be at least 2")
	}
	if o.MaxKeys == 0 {
		o.MaxKeys = DefaultMaxKeys
	}
	l := &Linearizability{
		o:         o,
		clock:     o.Clock,
		logger:    o.Logger,
		trigger:   make(chan struct{}, 1),
		backlog:   map[string]time.Time{},
		wakeAt:    o.MaxOps / 2,
		resets:    map[string]struct{}{},
		dropTaint: map[string]time.Time{},
		states:    map[string]regState{},
		pending:   map[string][]pendingOp{},
		taint:     map[string]time.Time{},
	}
	if l.clock == nil {
		l.clock = clockwork.NewRealClock()
	}
	if l.logger == nil {
		l.logger = slog.New(slog.DiscardHandler)
	}
	l.epoch = l.clock.Now()
	l.logger = l.logger.With("component", o.Component, "checker", checkerLinearizability)
	if err := l.initMetrics(o.Metrics); err != nil {
		return nil, err
	}
	return l, nil
}

// Record adds one finished operation. It is safe for concurrent use, O(1),
// and never waits for a check: when half the buffer's free space is used it
// wakes the background loop, and when it is full the op is dropped and counted in
// soakd_check_dropped_ops_total (a dropped write also leaves its key
// unchecked, reported unknown, rather than risking a false alarm).
func (l *Linearizability) Record(op KVOp) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.res.Recorded++
	switch {
	case op.Outcome == components.OutcomeFailed:
		// Definitely not applied: not part of the history.
		l.res.Failed++
		return
	case op.Outcome != components.OutcomeOK && op.Outcome != components.OutcomeUnknown,
		op.Op != "put" && op.Op != "get" && op.Op != "cas",
		op.Return.Before(op.Call):
		l.dropLocked(op, DropInvalid)
		return
	}
	if cut := l.cutOfLocked(op.Key); !cut.IsZero() && !op.Call.After(cut) {
		// Called before a cut of its key that has already been checked:
		// that window's end state did not account for it.
		if writes(op) {
			l.resets[op.Key] = struct{}{}
		}
		if !op.Return.After(cut) {
			l.dropLocked(op, DropLate)
			return
		}
		// It straddles the cut: check it in the next window as a write
		// that may already have taken effect.
	}
	if len(l.buf)+l.checking >= l.o.MaxOps {
		l.dropLocked(op, DropBufferFull)
		l.wake() // wakeAt never exceeds MaxOps
		return
	}
	l.buf = append(l.buf, op)
	held := len(l.buf) + l.checking
	l.res.MaxBuffered = max(l.res.MaxBuffered, held)
	l.buffered.Set(float64(held))
	if held >= l.wakeAt {
		l.wake()
	}
}

// cutOfLocked is the moment up to which key's history has been checked.
func (l *Linearizability) cutOfLocked(key string) time.Time {
	if c, ok := l.backlog[key]; ok {
		return c
	}
	return l.lastCut
}

func (l *Linearizability) wake() {
	select {
	case l.trigger <- struct{}{}:
	default:
	}
}

// dropLocked counts a dropped op. A dropped write leaves its key unchecked
// until the op can no longer take effect.
func (l *Linearizability) dropLocked(op KVOp, reason string) {
	l.res.Dropped++
	l.dropped.WithLabelValues(reason).Inc()
	if reason == DropInvalid || !writes(op) {
		return
	}
	until := op.Return
	if op.Outcome == components.OutcomeUnknown {
		until = op.Call.Add(l.o.UnknownTTL)
	}
	if until.After(l.dropTaint[op.Key]) {
		l.dropTaint[op.Key] = until
	}
	l.resets[op.Key] = struct{}{}
}

// Start runs the background loop: every Window on the clock, or when the
// buffer is half full, it checks the history up to now-MaxOpDuration.
func (l *Linearizability) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.lifeMu.Lock()
	defer l.lifeMu.Unlock()
	if l.started {
		return errors.New("check: linearizability: already started")
	}
	l.started = true
	loopCtx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.stopCh = make(chan struct{})
	l.done = make(chan struct{})
	ticker := l.clock.NewTicker(l.o.Window)
	go l.loop(loopCtx, ticker)
	return nil
}

func (l *Linearizability) loop(ctx context.Context, ticker clockwork.Ticker) {
	defer close(l.done)
	defer ticker.Stop()
	for {
		early := false
		select {
		case <-l.stopCh:
			return
		case <-ticker.Chan():
		case <-l.trigger:
			early = true
		}
		trigger := TriggerTicker
		if early {
			trigger = TriggerPressure
		}
		l.checkUntil(ctx, l.clock.Now().Add(-l.o.MaxOpDuration), trigger)
	}
}

// Stop stops the background loop and checks everything still buffered
// (the last, partial window). If ctx ends first, the keys not yet checked
// are counted unknown and ctx's error is returned.
func (l *Linearizability) Stop(ctx context.Context) error {
	l.lifeMu.Lock()
	if l.started {
		l.started = false
		close(l.stopCh)
		select {
		case <-l.done:
		case <-ctx.Done():
			l.cancel()
			<-l.done // bounded: each key's check is bounded by Timeout
		}
		l.cancel()
	}
	l.lifeMu.Unlock()
	l.checkAll(ctx, TriggerStop)
	return ctx.Err()
}

// CheckNow synchronously checks everything buffered, as if the window
// closed at the latest Return recorded, and returns the totals. Ops recorded
// later that were called before that point count as late.
func (l *Linearizability) CheckNow() Results {
	l.checkAll(context.Background(), TriggerCall)
	return l.Results()
}

// CheckUntil synchronously checks the history up to cut (ops with Return ≤
// cut; ops in flight at cut are carried). Every op called before cut must
// have been recorded already.
func (l *Linearizability) CheckUntil(cut time.Time) Results {
	l.checkUntil(context.Background(), cut, TriggerCall)
	return l.Results()
}

func (l *Linearizability) checkAll(ctx context.Context, trigger string) {
	l.mu.Lock()
	var cut time.Time
	for _, op := range l.buf {
		if op.Return.After(cut) {
			cut = op.Return
		}
	}
	l.mu.Unlock()
	if !cut.IsZero() {
		l.checkUntil(ctx, cut, trigger)
	}
}

// Results returns the running totals.
func (l *Linearizability) Results() Results {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.res
	r.Buffered = len(l.buf) + l.checking
	if r.LastViolation != nil {
		v := *r.LastViolation
		r.LastViolation = &v
	}
	return r
}

// keyWindow is one key's share of a check: its ops in (prev, cut].
type keyWindow struct {
	key       string
	prev, cut time.Time
	ops       []KVOp
}

// checkUntil checks the history up to limit: each key up to its latest
// quiescent moment ≤ limit (see quiescentCut), or at limit itself when the
// key has been busy for MaxKeyLag. Every op called before limit must have
// been recorded.
func (l *Linearizability) checkUntil(ctx context.Context, limit time.Time, trigger string) {
	l.checkMu.Lock()
	defer l.checkMu.Unlock()

	l.mu.Lock()
	lastCut := l.lastCut
	if !limit.After(lastCut) {
		l.mu.Unlock()
		return
	}
	byKey := map[string][]KVOp{}
	for _, op := range l.buf {
		byKey[op.Key] = append(byKey[op.Key], op)
	}
	keep := l.buf[:0]
	var windows []keyWindow
	closed, forced := 0, 0
	for _, key := range slices.Sorted(maps.Keys(byKey)) {
		ops := byKey[key]
		prev := l.cutOfLocked(key)
		cut, ok := quiescentCut(ops, prev, limit)
		// Busy since its cut, or since its first op when it has none yet.
		busySince := prev
		for _, op := range ops {
			if busySince.IsZero() || op.Call.Before(busySince) {
				busySince = op.Call
			}
		}
		// Under buffer pressure every key busy at limit is cut there
		// rather than its ops dropped: a forced cut loses less than a gap
		// in the history.
		force := !ok && limit.Sub(busySince) > l.o.MaxKeyLag ||
			trigger == TriggerPressure && (!ok || cut.Before(limit))
		if force {
			cut = limit
			forced++
		}
		if !ok && !force {
			l.backlog[key] = prev
			keep = append(keep, ops...)
			continue
		}
		w := keyWindow{key: key, prev: prev, cut: cut}
		for _, op := range ops {
			switch {
			case !op.Return.After(cut), op.Outcome == components.OutcomeUnknown && !op.Call.After(cut):
				// Closed here; an unknown op stays pending after it.
				w.ops = append(w.ops, op)
				closed++
			case !op.Call.After(cut): // in flight at a forced cut
				w.ops = append(w.ops, op)
				keep = append(keep, op)
			default:
				keep = append(keep, op)
			}
		}
		if cut.Equal(limit) {
			delete(l.backlog, key)
		} else {
			l.backlog[key] = cut
		}
		windows = append(windows, w)
	}
	for key := range l.backlog {
		if _, ok := byKey[key]; !ok {
			delete(l.backlog, key) // nothing of it held: caught up
		}
	}
	// Keys with nothing buffered but pending unknown writes are checked
	// too, so their pending set expires.
	for key := range l.pending {
		if _, ok := byKey[key]; !ok {
			windows = append(windows, keyWindow{key: key, prev: lastCut, cut: limit})
		}
	}
	clear(l.buf[len(keep):])
	l.buf = keep
	l.checking = closed
	l.lastCut = limit
	resets, dropTaint := l.resets, l.dropTaint
	l.resets, l.dropTaint = map[string]struct{}{}, map[string]time.Time{}
	l.mu.Unlock()

	defer func() {
		l.mu.Lock()
		l.checking = 0
		held := len(l.buf)
		// Early checks are rate-limited by ops, not time: at least
		// MaxOps/8 new ops between two, so the scans cost a bounded
		// amount per op and a check never closes only a sliver of history.
		l.wakeAt = min(held+max((l.o.MaxOps-held)/2, l.o.MaxOps/8), l.o.MaxOps)
		l.buffered.Set(float64(held))
		l.mu.Unlock()
	}()

	for k := range resets {
		l.setState(k, topState(false))
	}
	for k, until := range dropTaint {
		if until.After(l.taint[k]) {
			l.taint[k] = until
		}
	}
	slices.SortFunc(windows, func(a, b keyWindow) int { return strings.Compare(a.key, b.key) })

	var ok, illegal, unknown uint64
	var lastViolation *Violation
	for _, w := range windows {
		res, v := l.checkKey(ctx, w)
		switch res {
		case ResultOK:
			ok++
		case ResultIllegal:
			illegal++
			lastViolation = v
		case ResultUnknown:
			unknown++
		}
	}
	for k, until := range l.taint {
		// A backlogged key has yet to check the history up to limit.
		// (backlog changes only under checkMu, which this holds.)
		keyCut := limit
		if c, ok := l.backlog[k]; ok {
			keyCut = c
		}
		if !until.After(keyCut) {
			delete(l.taint, k)
		}
	}
	l.boundKeys()

	l.checks.WithLabelValues(ResultOK).Add(float64(ok))
	l.checks.WithLabelValues(ResultIllegal).Add(float64(illegal))
	l.checks.WithLabelValues(ResultUnknown).Add(float64(unknown))
	l.forced.Add(float64(forced))
	l.windows.WithLabelValues(trigger).Inc()
	l.mu.Lock()
	l.res.Windows++
	l.res.OK += ok
	l.res.Illegal += illegal
	l.res.Unknown += unknown
	l.res.Checked += uint64(closed)
	l.res.ForcedCuts += uint64(forced)
	if trigger == TriggerPressure {
		l.res.Triggered++
	}
	l.res.LastSpan = 0
	if !lastCut.IsZero() {
		l.res.LastSpan = limit.Sub(lastCut)
		l.span.Set(l.res.LastSpan.Seconds())
	}
	if lastViolation != nil {
		l.res.LastViolation = lastViolation
	}
	l.mu.Unlock()
	if illegal > 0 || unknown > 0 {
		l.logger.Info("linearizability window checked", "window_end", limit, "ok", ok, "illegal", illegal, "unknown", unknown)
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
