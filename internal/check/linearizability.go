package check

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
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

// KVOp is one finished client operation on a key-value store.
//
// Record keeps the byte slices; the caller must not modify them afterwards.
// A cas matches only a present key whose value equals Expect byte for byte
// (nil and empty are the same value); it never matches an absent key.
type KVOp struct {
	ClientID     int
	Call, Return time.Time
	Op           string // "put" | "get" | "cas"
	Key          string
	Value        []byte // put: value written; cas: new value
	Expect       []byte // cas: expected current value
	Output       []byte // get: value read (nil = not found, with Found=false)
	Found        bool   // get: key existed
	Swapped      bool   // cas: whether it swapped
	Outcome      components.Outcome
}

func (op KVOp) writes() bool { return op.Op == "put" || op.Op == "cas" }

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

func (l *Linearizability) initMetrics(reg prometheus.Registerer) error {
	checks := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "soakd_checks_total",
		Help: "Correctness checks run, by component, checker and result (ok, illegal, unknown). The linearizability checker counts one check per key per window.",
	}, []string{"component", "checker", "result"})
	violations := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "soakd_invariant_violations_total",
		Help: "Invariant violations found, by component and invariant.",
	}, []string{"component", "invariant"})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "soakd_check_dropped_ops_total",
		Help: "Operations a checker could not check, by component, checker and reason (buffer_full, late, invalid).",
	}, []string{"component", "checker", "reason"})
	forced := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "soakd_check_forced_cuts_total",
		Help: "Key-windows a checker cut while ops of the key were in flight (no quiescent moment for max key lag); those ops were checked only as optional writes.",
	}, []string{"component", "checker"})
	windows := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "soakd_check_windows_total",
		Help: "Windows of history a checker closed, by what closed them (ticker, pressure: early because the buffer filled, stop, call).",
	}, []string{"component", "checker", "trigger"})
	span := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "soakd_check_window_seconds",
		Help: "How much history the checker's last window closed (its cut minus the previous one).",
	}, []string{"component", "checker"})
	buffered := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "soakd_check_buffered_ops",
		Help: "Operations a checker holds in memory (buffered plus being checked).",
	}, []string{"component", "checker"})
	if reg != nil {
		var err error
		if checks, err = registerVec(reg, checks); err != nil {
			return err
		}
		if violations, err = registerVec(reg, violations); err != nil {
			return err
		}
		if dropped, err = registerVec(reg, dropped); err != nil {
			return err
		}
		if buffered, err = registerVec(reg, buffered); err != nil {
			return err
		}
		if forced, err = registerVec(reg, forced); err != nil {
			return err
		}
		if windows, err = registerVec(reg, windows); err != nil {
			return err
		}
		if span, err = registerVec(reg, span); err != nil {
			return err
		}
	}
	c := l.o.Component
	l.checks = checks.MustCurryWith(prometheus.Labels{"component": c, "checker": checkerLinearizability})
	for _, r := range []string{ResultOK, ResultIllegal, ResultUnknown} {
		l.checks.WithLabelValues(r)
	}
	l.violations = violations.WithLabelValues(c, checkerLinearizability)
	l.dropped = dropped.MustCurryWith(prometheus.Labels{"component": c, "checker": checkerLinearizability})
	for _, r := range []string{DropBufferFull, DropLate, DropInvalid} {
		l.dropped.WithLabelValues(r)
	}
	l.buffered = buffered.WithLabelValues(c, checkerLinearizability)
	l.forced = forced.WithLabelValues(c, checkerLinearizability)
	l.windows = windows.MustCurryWith(prometheus.Labels{"component": c, "checker": checkerLinearizability})
	for _, t := range []string{TriggerTicker, TriggerPressure, TriggerStop, TriggerCall} {
		l.windows.WithLabelValues(t)
	}
	l.span = span.WithLabelValues(c, checkerLinearizability)
	return nil
}

// registerVec registers c, or returns the collector of the same shape that
// another checker already registered.
func registerVec[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if ex, ok := are.ExistingCollector.(T); ok {
				return ex, nil
			}
		}
		var zero T
		return zero, fmt.Errorf("check: register metrics: %w", err)
	}
	return c, nil
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
		if op.writes() {
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
		if l.o.MaxOps >= l.wakeAt {
			l.wake()
		}
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
	if reason == DropInvalid || !op.writes() {
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
	cut := limit
	for k, until := range l.taint {
		// A backlogged key has yet to check the history up to limit.
		// (backlog changes only under checkMu, which this holds.)
		keyCut := cut
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
		l.logger.Info("linearizability window checked", "window_end", cut, "ok", ok, "illegal", illegal, "unknown", unknown)
	}
}

func (l *Linearizability) stateOf(key string) regState {
	if s, ok := l.states[key]; ok {
		return s
	}
	if l.o.InitialAbsent && !l.evicted {
		return single(absentVal, false)
	}
	return topState(false)
}

func (l *Linearizability) setState(key string, s regState) {
	if s.top && !l.o.InitialAbsent || s.top && l.evicted {
		delete(l.states, key) // "any" is the default
		return
	}
	s.lossy = false
	l.states[key] = s
}

// boundKeys forgets carried state past MaxKeys; a forgotten key's state
// becomes "any value", which is sound.
func (l *Linearizability) boundKeys() {
	if len(l.states) <= l.o.MaxKeys {
		return
	}
	if !l.evicted {
		l.evicted = true
		for k, s := range l.states {
			if s.top {
				delete(l.states, k)
			}
		}
	}
	for k := range l.states {
		if len(l.states) <= l.o.MaxKeys {
			break
		}
		delete(l.states, k)
	}
}

// checkKey checks one key's ops of the window (prev, cut] and carries its
// state forward. It returns "" when there was nothing to check.
func (l *Linearizability) checkKey(ctx context.Context, w keyWindow) (string, *Violation) {
	key, ops, prev, cut := w.key, w.ops, w.prev, w.cut
	init := l.stateOf(key)
	pend := l.pending[key]
	delete(l.pending, key)

	// New pending set: still-live carried ones plus this window's unknown
	// writes (they may still land after the cut).
	var nextPend []pendingOp
	for _, p := range pend {
		if p.expiry.After(cut) {
			nextPend = append(nextPend, p)
		}
	}
	for _, op := range ops {
		if op.Outcome == components.OutcomeUnknown && op.writes() {
			if exp := op.Call.Add(l.o.UnknownTTL); exp.After(cut) {
				nextPend = append(nextPend, pendingOp{op: op, expiry: exp})
			}
		}
	}
	if len(nextPend) > MaxPendingPerKey {
		var until time.Time
		for _, p := range nextPend {
			until = maxTime(until, p.expiry)
		}
		l.taint[key] = maxTime(l.taint[key], until)
		nextPend = nil
	}
	if len(nextPend) > 0 {
		l.pending[key] = nextPend
	}

	if until, tainted := l.taint[key]; tainted && until.After(prev) {
		l.setState(key, topState(false))
		if len(ops) == 0 {
			return "", nil
		}
		return ResultUnknown, nil
	}
	if ctx.Err() != nil {
		l.setState(key, topState(false))
		return ResultUnknown, nil
	}

	h := l.buildHistory(ops, pend, prev, cut)
	if !h.constrained {
		l.setState(key, closure(init, h.maybes))
		return "", nil
	}
	res, end, info := l.runChecks(init, h)
	l.setState(key, end)
	if res != ResultIllegal {
		return res, nil
	}
	v := &Violation{Key: key, WindowStart: prev, WindowEnd: cut, DetectedAt: l.clock.Now()}
	if v.WindowStart.IsZero() {
		v.WindowStart = l.epoch.Add(time.Duration(h.minCall))
	}
	v.Evidence = l.writeEvidence(key, registerModel(init, h.pending), info)
	l.violations.Inc()
	l.logger.Error("linearizability violation", "key", key, "window_start", v.WindowStart, "window_end", cut, "evidence", v.Evidence)
	if l.o.Event != nil {
		l.o.Event("invariant_violation", map[string]any{
			"component":    l.o.Component,
			"invariant":    checkerLinearizability,
			"key":          key,
			"window_start": v.WindowStart.UTC().Format(time.RFC3339Nano),
			"window_end":   cut.UTC().Format(time.RFC3339Nano),
			"evidence":     v.Evidence,
		})
	}
	return ResultIllegal, v
}

type keyHistory struct {
	ops         []porcupine.Operation
	maybes      []regInput // every optional write, for closure and candidates
	pending     []regInput // unknown writes of earlier windows, folded into the model
	cands       []cand     // end-state candidates from writes
	hasMand     bool       // a mandatory write exists
	maxMandCall int64
	constrained bool // some op constrains the state (a read or a mandatory write)
	minCall     int64
	maxCall     int64
}

type cand struct {
	value string
	ret   int64
}

// buildHistory turns one key's ops into porcupine operations (see doc.go
// for the rules).
func (l *Linearizability) buildHistory(ops []KVOp, pend []pendingOp, prev, cut time.Time) keyHistory {
	h := keyHistory{maxCall: l.nanos(cut), minCall: l.nanos(cut)}
	clients := map[int]int{}
	client := func(id int) int {
		c, ok := clients[id]
		if !ok {
			c = len(clients)
			clients[id] = c
		}
		return c
	}
	add := func(clientID int, in regInput, out regOutput, call, ret int64) {
		h.ops = append(h.ops, porcupine.Operation{ClientId: client(clientID), Input: in, Output: out, Call: call, Return: ret})
		h.minCall = min(h.minCall, call)
		h.maxCall = max(h.maxCall, call)
	}
	for _, op := range ops {
		prevStraddle := !prev.IsZero() && !op.Call.After(prev)
		nextStraddle := op.Return.After(cut)
		unknown := op.Outcome == components.OutcomeUnknown
		call, ret := l.nanos(op.Call), l.nanos(op.Return)
		switch op.Op {
		case "get":
			// A read's effect-free; an unknown read or one straddling a
			// cut (it may have been linearized in the other window) is
			// left out.
			if unknown || prevStraddle || nextStraddle {
				continue
			}
			val := absentVal
			if op.Found {
				val = encPresent(op.Output)
			}
			add(op.ClientID, regInput{kind: kindGet}, regOutput{value: val}, call, ret)
			h.constrained = true
			// From an "any value" state a read is what fixes the value,
			// so what it saw is an end-state candidate too.
			h.cands = append(h.cands, cand{value: val, ret: ret})
		case "put", "cas":
			in := regInput{kind: kindPut, value: encPresent(op.Value)}
			if op.Op == "cas" {
				in.kind = kindCas
				in.expect = encPresent(op.Expect)
			}
			out := regOutput{swapped: op.Swapped}
			maybe := unknown || prevStraddle || nextStraddle
			if maybe && op.Op == "cas" && !unknown && !op.Swapped {
				continue // an acknowledged failed cas is a read: left out when straddling
			}
			if unknown || nextStraddle {
				ret = infinity
			}
			in.maybe = maybe
			add(op.ClientID, in, out, call, ret)
			if maybe {
				h.maybes = append(h.maybes, in)
			} else {
				h.constrained = true
			}
			if maybe || op.Op == "put" || op.Swapped {
				h.cands = append(h.cands, cand{value: in.value, ret: ret})
				if !maybe {
					if !h.hasMand || call > h.maxMandCall {
						h.maxMandCall = call
					}
					h.hasMand = true
				}
			}
		}
	}
	for _, p := range pend {
		op := p.op
		in := regInput{kind: kindPut, value: encPresent(op.Value), maybe: true}
		if op.Op == "cas" {
			in.kind = kindCas
			in.expect = encPresent(op.Expect)
		}
		h.pending = append(h.pending, in)
		h.maybes = append(h.maybes, in)
		h.cands = append(h.cands, cand{value: in.value, ret: infinity})
	}
	sortOps(h.ops)
	return h
}

// nanos is t as porcupine's int64 time: an offset from epoch, monotonic
// when both readings carry the monotonic clock.
func (l *Linearizability) nanos(t time.Time) int64 { return int64(t.Sub(l.epoch)) }

// closure applies optional writes in every order until nothing changes: a
// sound over-approximation of the states reachable when none is constrained.
func closure(s regState, maybes []regInput) regState {
	for changed := true; changed && !s.top; {
		changed = false
		for _, in := range maybes {
			if in.kind == kindCas && !s.has(in.expect) {
				continue
			}
			n := s.add(in.value)
			if !stateEqual(n, s) {
				s, changed = n, true
			}
		}
	}
	return s
}

// runChecks decides the window for one key and computes its possible end
// states by probing: the history plus a synthetic read at the end, after
// every op, that succeeds only if the register may hold value v. The end
// set is exactly the set of candidates whose probed history is
// linearizable. Candidates are every value the register can hold at the
// end: the values written or read by ops not followed in real time by a
// mandatory write, and the initial values when the window has no mandatory
// write.
func (l *Linearizability) runChecks(init regState, h keyHistory) (string, regState, porcupine.LinearizationInfo) {
	model := registerModel(init, h.pending)
	deadline := time.Now().Add(l.o.Timeout)
	probeCall := h.maxCall + 1
	probe := func(in regInput) porcupine.CheckResult {
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return porcupine.Unknown
		}
		hist := append(h.ops[:len(h.ops):len(h.ops)], porcupine.Operation{
			ClientId: len(h.ops) + 1, Input: in, Output: regOutput{}, Call: probeCall, Return: infinity,
		})
		return porcupine.CheckOperationsTimeout(model, hist, remaining)
	}
	unknown := func() (string, regState, porcupine.LinearizationInfo) {
		return ResultUnknown, topState(false), porcupine.LinearizationInfo{}
	}

	var values []string
	seen := map[string]bool{}
	addValue := func(v string) {
		if !seen[v] {
			seen[v] = true
			values = append(values, v)
		}
	}
	all := map[string]bool{}
	for _, v := range init.vals {
		all[v] = true
		if !h.hasMand {
			addValue(v)
		}
	}
	for _, c := range h.cands {
		all[c.value] = true
		if h.hasMand && h.maxMandCall > c.ret {
			continue // definitely followed by an applied write
		}
		addValue(c.value)
	}
	lossyPossible := len(all) > MaxStates

	var end regState
	legal := false
	if init.top || lossyPossible {
		switch probe(regInput{kind: kindProbeTop}) {
		case porcupine.Unknown:
			return unknown()
		case porcupine.Ok:
			end, legal = topState(false), true
		}
	}
	if !legal {
		for _, v := range values {
			switch probe(regInput{kind: kindProbeVal, value: v}) {
			case porcupine.Unknown:
				return unknown()
			case porcupine.Ok:
				if !legal {
					end, legal = single(v, false), true
				} else {
					end = end.add(v)
				}
			}
		}
	}
	if !legal {
		// No end state is reachable, so no linearization exists; confirm
		// with a plain check, which also yields the visualization data.
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return unknown()
		}
		res, info := porcupine.CheckOperationsVerbose(model, h.ops, remaining)
		switch res {
		case porcupine.Illegal:
			return ResultIllegal, topState(false), info
		case porcupine.Unknown:
			return unknown()
		}
		l.logger.Error("linearizability: no end state found for a linearizable history; key state reset")
		return ResultOK, topState(false), porcupine.LinearizationInfo{}
	}
	if end.top && end.lossy {
		return ResultUnknown, end, porcupine.LinearizationInfo{}
	}
	if lossyPossible {
		switch probe(regInput{kind: kindProbeLossy}) {
		case porcupine.Ok, porcupine.Unknown:
			// The verdict leaned on an over-approximated set.
			return ResultUnknown, end, porcupine.LinearizationInfo{}
		}
	}
	return ResultOK, end, porcupine.LinearizationInfo{}
}

// writeEvidence saves porcupine's visualization of the failing key's window
// and keeps the newest EvidenceKeep files of this component.
func (l *Linearizability) writeEvidence(key string, model porcupine.Model, info porcupine.LinearizationInfo) string {
	if l.o.EvidenceDir == "" {
		return ""
	}
	if err := os.MkdirAll(l.o.EvidenceDir, 0o755); err != nil {
		l.logger.Warn("linearizability: evidence dir", "err", err)
		return ""
	}
	hash := fnv.New64a()
	_, _ = hash.Write([]byte(key))
	prefix := "linearizability-" + safeName(l.o.Component) + "-"
	name := fmt.Sprintf("%s%s-%016x.html", prefix, l.clock.Now().UTC().Format("20060102T150405.000000000Z"), hash.Sum64())
	path := filepath.Join(l.o.EvidenceDir, name)
	tmp, err := os.CreateTemp(l.o.EvidenceDir, ".tmp-"+prefix)
	if err != nil {
		l.logger.Warn("linearizability: evidence", "err", err)
		return ""
	}
	err = porcupine.Visualize(model, info, tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		l.logger.Warn("linearizability: evidence", "err", err)
		return ""
	}
	l.pruneEvidence(prefix)
	return path
}

func (l *Linearizability) pruneEvidence(prefix string) {
	entries, err := os.ReadDir(l.o.EvidenceDir)
	if err != nil {
		return
	}
	var names []string
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, prefix) && strings.HasSuffix(n, ".html") {
			names = append(names, n)
		}
	}
	sort.Strings(names) // the timestamp sorts chronologically
	for len(names) > EvidenceKeep {
		_ = os.Remove(filepath.Join(l.o.EvidenceDir, names[0]))
		names = names[1:]
	}
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
