package alert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jonboulle/clockwork"
)

// Defaults and bounds of the Dispatcher.
const (
	DefaultResendInterval = time.Minute // well inside Alertmanager's default resolve_timeout (5m)
	DefaultQueueSize      = 256         // queued state changes per sink
	DefaultMaxBackoff     = time.Minute
	DefaultSendTimeout    = 30 * time.Second // one Send attempt, wall clock
	DefaultMaxActive      = 1024             // distinct firing alerts tracked for re-sends

	// MaxBatch is the most alerts one Send carries for queued state changes.
	MaxBatch = 64

	initialBackoff = time.Second
	// stopGrace is how long (wall clock) Stop waits for Send calls to return
	// after cancelling their context; a sink that ignores its context is
	// left behind after that rather than hanging shutdown.
	stopGrace = 5 * time.Second
)

// DispatcherOptions configure a Dispatcher. Zero values mean the defaults.
type DispatcherOptions struct {
	Sinks  []Sink
	Clock  clockwork.Clock // waits (backoff, re-sends) and timestamps; default real clock
	Logger *slog.Logger    // default slog.Default()
	// ResendInterval is how often firing alerts are re-sent to Resender
	// sinks (default 1m: Alertmanager drops alerts not re-sent within
	// resolve_timeout).
	ResendInterval time.Duration
	QueueSize      int           // per sink; default 256
	MaxBackoff     time.Duration // cap of the retry backoff; default 1m
	// SendTimeout bounds one Send attempt in wall-clock time (default 30s).
	SendTimeout time.Duration
	// MaxActive bounds the firing alerts remembered for re-sends (default
	// 1024). A firing alert beyond it is still delivered once but not
	// re-sent.
	MaxActive int
	// OnSendError is called after every failed Send attempt, OnSent after
	// every successful one (state changes and re-sends alike), from the
	// sink's goroutine: keep them fast.
	OnSendError func(sink string)
	OnSent      func(sink string)
}

// Dispatcher delivers alert state changes to its sinks, one goroutine and
// one bounded queue per sink. See the package documentation.
type Dispatcher struct {
	clock   clockwork.Clock
	log     *slog.Logger
	opts    DispatcherOptions
	limit   *logLimiter
	workers []*worker
	byName  map[string]*worker

	stopping  chan struct{} // closed by Stop: flush the queues, then exit
	runCtx    context.Context
	cancelRun context.CancelFunc

	mu        sync.Mutex // guards the fields below and orders enqueues
	active    map[string]Alert
	started   bool
	stopped   bool
	untracked int64 // firing alerts not remembered because of MaxActive
}

type worker struct {
	d      *Dispatcher
	sink   Sink
	name   string
	resend bool
	wake   chan struct{} // capacity 1: "the queue is not empty"
	done   chan struct{}

	mu    sync.Mutex
	queue ring

	dropped     atomic.Int64
	inflight    atomic.Int64
	loggedDrops int64 // dropped count already reported; worker goroutine only
	undelivered atomic.Int64
}

// NewDispatcher returns a Dispatcher for o.Sinks; call Start to begin
// delivering. Sinks with the same Name get "#2", "#3", ... appended.
func NewDispatcher(o DispatcherOptions) *Dispatcher {
	if o.Clock == nil {
		o.Clock = clockwork.NewRealClock()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ResendInterval <= 0 {
		o.ResendInterval = DefaultResendInterval
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.SendTimeout <= 0 {
		o.SendTimeout = DefaultSendTimeout
	}
	if o.MaxActive <= 0 {
		o.MaxActive = DefaultMaxActive
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Dispatcher{
		clock:     o.Clock,
		log:       o.Logger.With("component", "alert"),
		opts:      o,
		limit:     newLogLimiter(o.Clock),
		byName:    map[string]*worker{},
		stopping:  make(chan struct{}),
		runCtx:    ctx,
		cancelRun: cancel,
		active:    map[string]Alert{},
	}
	for _, s := range o.Sinks {
		if s == nil {
			continue
		}
		name := s.Name()
		for i := 2; d.byName[name] != nil; i++ {
			name = fmt.Sprintf("%s#%d", s.Name(), i)
		}
		w := &worker{
			d:      d,
			sink:   s,
			name:   name,
			resend: wantsResend(s),
			wake:   make(chan struct{}, 1),
			done:   make(chan struct{}),
			queue:  newRing(o.QueueSize),
		}
		d.workers = append(d.workers, w)
		d.byName[name] = w
	}
	return d
}

// Start starts one goroutine per sink. Alerts notified before Start are
// delivered then. Start after Stop does nothing.
func (d *Dispatcher) Start() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.started || d.stopped {
		return
	}
	d.started = true
	for _, w := range d.workers {
		go w.run()
	}
}

// Notify records a state change of a — firing while a.EndsAt is zero,
// resolved once it is set — and queues it for every sink. It never blocks:
// a full queue drops its oldest entry. A zero StartsAt is taken from the
// firing alert with the same Key, or the clock. Notifying an alert that is
// already firing with the same content is not a state change and does
// nothing. Notify after Stop does nothing. Safe for concurrent use.
func (d *Dispatcher) Notify(a Alert) { d.notify(a, false) }

// Restore takes over a firing alert that an earlier incarnation notified
// and that is still firing: it is remembered for re-sends and sent at once
// to the Resender sinks (Alertmanager may have expired it while soakd was
// down), but not to the sinks that take state changes only: they were told
// when it fired, and a restart is not a new page. Its resolution later goes
// to every sink. A resolved alert is notified as by Notify.
func (d *Dispatcher) Restore(a Alert) { d.notify(a, a.Firing()) }

func (d *Dispatcher) notify(a Alert, restored bool) {
	a = a.clone()
	if a.Name == "" {
		if ok, n := d.limit.allow("notify:invalid"); ok {
			d.log.Error("alert without a name ignored", "labels", a.Labels, "suppressed", n)
		}
		return
	}
	key := a.Key()

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	prev, known := d.active[key]
	if a.StartsAt.IsZero() {
		if known {
			a.StartsAt = prev.StartsAt
		} else if a.Firing() {
			a.StartsAt = d.clock.Now()
		} else {
			a.StartsAt = a.EndsAt
		}
	}
	if a.Firing() {
		if known && sameState(prev, a) {
			return
		}
		if known || len(d.active) < d.opts.MaxActive {
			d.active[key] = a
		} else {
			d.untracked++
			if ok, n := d.limit.allow("notify:untracked"); ok {
				d.log.Error("too many firing alerts; this one will not be re-sent", "alert", key,
					"max_active", d.opts.MaxActive, "untracked_total", d.untracked, "suppressed", n)
			}
		}
	} else {
		delete(d.active, key)
		if a.EndsAt.Before(a.StartsAt) {
			a.EndsAt = a.StartsAt // Alertmanager rejects endsAt < startsAt
		}
	}
	for _, w := range d.workers {
		if w.resend || !restored {
			w.enqueue(a)
		}
	}
}

func (w *worker) enqueue(a Alert) {
	w.mu.Lock()
	if w.queue.push(a) {
		w.dropped.Add(1)
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Active returns the firing alerts, sorted by Key. The result is a copy.
func (d *Dispatcher) Active() []Alert {
	d.mu.Lock()
	out := make([]Alert, 0, len(d.active))
	for _, a := range d.active {
		out = append(out, a.clone())
	}
	d.mu.Unlock()
	slices.SortFunc(out, func(a, b Alert) int { return strings.Compare(a.Key(), b.Key()) })
	return out
}

// Dropped returns how many state changes sink lost: pushed out of a full
// queue, rejected by the receiver as invalid, or still undelivered when Stop
// gave up. Unknown sinks report 0.
func (d *Dispatcher) Dropped(sink string) int64 {
	if w := d.byName[sink]; w != nil {
		return w.dropped.Load()
	}
	return 0
}

// Queued returns how many state changes wait in sink's queue (at most
// QueueSize), not counting the batch being sent.
func (d *Dispatcher) Queued(sink string) int {
	w := d.byName[sink]
	if w == nil {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.queue.len()
}

// Sinks returns the names of the sinks, as Dropped and the hooks know them.
func (d *Dispatcher) Sinks() []string {
	out := make([]string, len(d.workers))
	for i, w := range d.workers {
		out[i] = w.name
	}
	return out
}

// Stop stops accepting alerts and flushes the queues until they are empty
// or ctx ends; then it cancels in-flight sends and waits for the sink
// goroutines. It returns nil if everything queued was delivered, otherwise
// an error counting what was not. Calling Stop again returns nil.
func (d *Dispatcher) Stop(ctx context.Context) error {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return nil
	}
	d.stopped = true
	started := d.started
	close(d.stopping)
	d.mu.Unlock()

	if started {
	flush:
		for _, w := range d.workers {
			select {
			case <-w.done:
			case <-ctx.Done():
				break flush
			}
		}
	}
	d.cancelRun()

	var stuck []string
	if started {
		grace := time.NewTimer(stopGrace)
		defer grace.Stop()
		for _, w := range d.workers {
			select {
			case <-w.done:
			case <-grace.C:
			}
			select {
			case <-w.done:
			default:
				stuck = append(stuck, w.name)
			}
		}
	}

	var lost []string
	total := int64(0)
	for _, w := range d.workers {
		w.mu.Lock()
		n := int64(w.queue.clear())
		w.mu.Unlock()
		n += w.undelivered.Load()
		if n > 0 {
			w.dropped.Add(n)
			total += n
			lost = append(lost, fmt.Sprintf("%s: %d", w.name, n))
		}
	}
	var errs []error
	if total > 0 {
		err := fmt.Errorf("alert: stopped with %d undelivered alert notification(s) (%s)", total, strings.Join(lost, ", "))
		if ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", err, context.Cause(ctx))
		}
		errs = append(errs, err)
	}
	if len(stuck) > 0 {
		errs = append(errs, fmt.Errorf("alert: sink(s) %s did not return from Send within %v of cancellation", strings.Join(stuck, ", "), stopGrace))
	}
	return errors.Join(errs...)
}

// run is the sink's goroutine: deliver queued changes, re-send firing
// alerts on the resend tick, and flush then exit once Stop is called.
func (w *worker) run() {
	defer close(w.done)
	d := w.d
	var tick <-chan time.Time
	if w.resend {
		t := d.clock.NewTicker(d.opts.ResendInterval)
		defer t.Stop()
		tick = t.Chan()
	}
	for {
		for {
			w.mu.Lock()
			batch := w.queue.pop(MaxBatch)
			w.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			if !w.deliver(batch) {
				return
			}
		}
		w.reportDrops()
		select {
		case <-d.runCtx.Done():
			return
		case <-d.stopping:
			w.mu.Lock()
			empty := w.queue.len() == 0
			w.mu.Unlock()
			if empty {
				return
			}
			continue
		default:
		}
		select {
		case <-d.runCtx.Done():
			return
		case <-d.stopping:
		case <-w.wake:
		case <-tick:
			if batch := d.firing(); len(batch) > 0 {
				if !w.deliver(batch) {
					return
				}
			}
		}
	}
}

// firing returns the alerts to re-send; they are never modified once
// stored, so the slice shares them.
func (d *Dispatcher) firing() []Alert {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Alert, 0, len(d.active))
	for _, a := range d.active {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b Alert) int { return strings.Compare(a.Key(), b.Key()) })
	return out
}

// deliver sends batch until it succeeds, is rejected as invalid, or the
// dispatcher is cancelled (then it returns false and the batch counts as
// undelivered).
func (w *worker) deliver(batch []Alert) bool {
	d := w.d
	b := &backoff.ExponentialBackOff{
		InitialInterval:     min(initialBackoff, d.opts.MaxBackoff),
		RandomizationFactor: backoff.DefaultRandomizationFactor,
		Multiplier:          2,
		MaxInterval:         d.opts.MaxBackoff,
	}
	b.Reset()
	stopping := d.stopping // a Stop cuts the current wait short, once
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(d.runCtx, d.opts.SendTimeout)
		err := w.sink.Send(ctx, batch)
		cancel()
		if err == nil {
			if d.opts.OnSent != nil {
				d.opts.OnSent(w.name)
			}
			if attempt > 1 {
				if ok, n := d.limit.allow(w.name + ":recovered"); ok {
					d.log.Info("alert sink recovered", "sink", w.name, "alerts", len(batch), "attempts", attempt, "suppressed", n)
				}
			}
			return true
		}
		if d.runCtx.Err() != nil {
			w.undelivered.Add(int64(len(batch)))
			return false
		}
		if d.opts.OnSendError != nil {
			d.opts.OnSendError(w.name)
		}
		var r interface{ Retryable() bool }
		if errors.As(err, &r) && !r.Retryable() {
			w.dropped.Add(int64(len(batch)))
			if ok, n := d.limit.allow(w.name + ":problem"); ok {
				d.log.Error("alert sink rejected alerts; dropped them", "sink", w.name, "alerts", len(batch), "err", err, "suppressed", n)
			}
			return true
		}
		wait := min(b.NextBackOff(), d.opts.MaxBackoff)
		if ok, n := d.limit.allow(w.name + ":problem"); ok {
			d.log.Warn("alert delivery failed; retrying", "sink", w.name, "alerts", len(batch), "attempt", attempt,
				"retry_in", wait, "queued", d.Queued(w.name), "dropped", w.dropped.Load(), "err", err, "suppressed", n)
		}
		t := d.clock.NewTimer(wait)
		select {
		case <-t.Chan():
		case <-stopping:
			stopping = nil
			t.Stop()
		case <-d.runCtx.Done():
			t.Stop()
			w.undelivered.Add(int64(len(batch)))
			return false
		}
	}
}

// reportDrops logs, rate-limited, queue overflows since the last report.
func (w *worker) reportDrops() {
	n := w.dropped.Load()
	if n == w.loggedDrops {
		return
	}
	if ok, s := w.d.limit.allow(w.name + ":problem"); ok {
		w.d.log.Warn("alert queue overflowed; dropped the oldest notifications", "sink", w.name,
			"dropped", n-w.loggedDrops, "dropped_total", n, "queue_size", w.d.opts.QueueSize, "suppressed", s)
		w.loggedDrops = n
	}
}
