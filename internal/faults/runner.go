package faults

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/soakd/soakd/internal/config"
)

// Observer is told about every injection and revert; the leak checker uses
// it to measure what each fault leaves behind.
type Observer interface {
	FaultInjected(id, kind string)
	FaultReverted(id, kind string)
}

// ActiveFault is one fault in force, for the status API.
type ActiveFault struct {
	ID     string
	Kind   string
	Target string
	Since  time.Time
	Until  time.Time
	Stuck  bool // its revert failed; it blocks its target
}

// RunnerOptions configures NewRunner.
type RunnerOptions struct {
	Timeline []config.TimedFault
	Registry *Registry
	Clock    clockwork.Clock
	// Elapsed is the run's soak time; the timeline is laid on it, so a
	// resumed run continues the same schedule.
	Elapsed   func() time.Duration
	Event     func(typ string, fields map[string]any)
	Logger    *slog.Logger
	Metrics   prometheus.Registerer
	Observers []Observer
	Tick      time.Duration // default 1s
}

type activeFault struct {
	ActiveFault
	kind     string
	revert   Revert
	endAt    time.Duration // run elapsed at which to revert
	failures int
	nextTry  time.Duration // run elapsed before which a failed revert is not retried
}

// Runner injects the configured timeline at its offsets on the run's elapsed
// time and reverts each fault after its duration. A fault that is active
// when the daemon dies is re-applied for its remaining time on resume.
type Runner struct {
	o       RunnerOptions
	log     *slog.Logger
	metrics runnerMetrics

	mu     sync.Mutex
	active map[string]*activeFault // bounded by the timeline's length
	done   map[int]bool            // timeline entries handled this incarnation
	warned map[string]bool

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type runnerMetrics struct {
	injected *prometheus.CounterVec
	active   *prometheus.GaugeVec
	errors   *prometheus.CounterVec
}

// maxRevertFailuresBeforeStuck is when a failing revert is reported loudly.
const maxRevertFailuresBeforeStuck = 3

// NewRunner validates the timeline's parameters against the registered kinds.
func NewRunner(o RunnerOptions) (*Runner, error) {
	if o.Clock == nil {
		o.Clock = clockwork.NewRealClock()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Event == nil {
		o.Event = func(string, map[string]any) {}
	}
	if o.Tick <= 0 {
		o.Tick = time.Second
	}
	if o.Metrics == nil {
		o.Metrics = prometheus.NewRegistry()
	}
	r := &Runner{o: o, log: o.Logger, active: map[string]*activeFault{}, done: map[int]bool{}, warned: map[string]bool{}}
	r.metrics = runnerMetrics{
		injected: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "soakd", Name: "faults_injected_total",
			Help: "Faults injected, by kind."}, []string{"kind"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "soakd", Name: "faults_active",
			Help: "Faults in force now, by kind."}, []string{"kind"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "soakd", Name: "fault_errors_total",
			Help: "Failed fault injections and reverts, by kind."}, []string{"kind"}),
	}
	if err := registerAll(o.Metrics, r.metrics.injected, r.metrics.active, r.metrics.errors); err != nil {
		return nil, err
	}
	for i, tf := range o.Timeline {
		k, ok := o.Registry.Get(tf.Kind)
		if !ok {
			continue // reported once at its time: later issues add kinds
		}
		if err := k.Validate(tf.Params); err != nil {
			return nil, fmt.Errorf("faults.timeline[%d].params: %w", i, err)
		}
		r.metrics.active.WithLabelValues(tf.Kind)
	}
	return r, nil
}

func registerAll(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("faults: register metrics: %w", err)
		}
	}
	return nil
}

// Start runs the timeline in the background.
func (r *Runner) Start(ctx context.Context) error {
	ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	r.wg.Go(func() {
		t := r.o.Clock.NewTicker(r.o.Tick)
		defer t.Stop()
		r.step(ctx)
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.Chan():
				r.step(ctx)
			}
		}
	})
	return nil
}

// Stop halts the timeline and reverts every active fault.
func (r *Runner) Stop(ctx context.Context) error {
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	var firstErr error
	for id, af := range r.active {
		if err := r.revertLocked(ctx, id, af, "shutdown"); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// Active lists the faults in force, for /api/v1/status.
func (r *Runner) Active() []ActiveFault {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]ActiveFault, 0, len(r.active))
	for _, af := range r.active {
		out = append(out, af.ActiveFault)
	}
	return out
}

func (r *Runner) step(ctx context.Context) {
	el := r.o.Elapsed()
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, af := range r.active {
		if (el >= af.endAt || af.Stuck) && el >= af.nextTry {
			_ = r.revertLocked(ctx, id, af, "duration")
		}
	}
	for i, tf := range r.o.Timeline {
		if r.done[i] {
			continue
		}
		at, end := tf.At.Std(), tf.At.Std()+tf.Duration.Std()
		if el < at {
			continue
		}
		r.done[i] = true
		if el >= end {
			continue // wholly in the past (an earlier incarnation ran it)
		}
		r.injectLocked(ctx, fmt.Sprintf("timeline-%d", i), tf, end, el > at+r.o.Tick)
	}
}

func (r *Runner) injectLocked(ctx context.Context, id string, tf config.TimedFault, endAt time.Duration, resumed bool) {
	k, ok := r.o.Registry.Get(tf.Kind)
	if !ok {
		if !r.warned[tf.Kind] {
			r.warned[tf.Kind] = true
			r.log.Warn("fault kind not built into this soakd; skipping", "kind", tf.Kind)
		}
		r.o.Event("fault_skipped", map[string]any{"id": id, "kind": tf.Kind, "target": tf.Target, "reason": "kind not available"})
		return
	}
	for _, af := range r.active {
		if af.Stuck && af.Target == tf.Target && tf.Target != "" {
			r.o.Event("fault_skipped", map[string]any{"id": id, "kind": tf.Kind, "target": tf.Target, "reason": "target blocked by a fault that could not be reverted: " + af.ID})
			return
		}
	}
	revert, err := k.Inject(ctx, tf.Target, tf.Params)
	if err != nil {
		r.metrics.errors.WithLabelValues(tf.Kind).Inc()
		r.log.Error("fault injection failed", "id", id, "kind", tf.Kind, "err", err)
		r.o.Event("fault_failed", map[string]any{"id": id, "kind": tf.Kind, "target": tf.Target, "params": tf.Params, "error": err.Error(), "phase": "inject"})
		return
	}
	now := r.o.Clock.Now()
	remaining := endAt - r.o.Elapsed()
	af := &activeFault{ActiveFault: ActiveFault{ID: id, Kind: tf.Kind, Target: tf.Target, Since: now, Until: now.Add(remaining)},
		kind: tf.Kind, revert: revert, endAt: endAt}
	r.active[id] = af
	r.metrics.injected.WithLabelValues(tf.Kind).Inc()
	r.metrics.active.WithLabelValues(tf.Kind).Inc()
	r.log.Info("fault injected", "id", id, "kind", tf.Kind, "target", tf.Target, "for", remaining.Round(time.Second), "resumed", resumed)
	r.o.Event("fault_injected", map[string]any{"id": id, "kind": tf.Kind, "target": tf.Target, "params": tf.Params,
		"duration_seconds": remaining.Seconds(), "resumed": resumed})
	for _, ob := range r.o.Observers {
		ob.FaultInjected(id, tf.Kind)
	}
}

func (r *Runner) revertLocked(ctx context.Context, id string, af *activeFault, why string) error {
	if err := af.revert(ctx); err != nil {
		af.failures++
		// Exponential backoff on the run's clock, capped at a minute.
		af.nextTry = r.o.Elapsed() + min(time.Second<<min(af.failures, 6), time.Minute)
		r.metrics.errors.WithLabelValues(af.kind).Inc()
		r.log.Error("fault revert failed; will retry", "id", id, "kind", af.kind, "attempt", af.failures, "err", err)
		if af.failures == maxRevertFailuresBeforeStuck {
			af.Stuck = true
			r.o.Event("fault_failed", map[string]any{"id": id, "kind": af.kind, "target": af.Target, "error": err.Error(), "phase": "revert"})
		}
		return err
	}
	delete(r.active, id)
	r.metrics.active.WithLabelValues(af.kind).Dec()
	r.log.Info("fault reverted", "id", id, "kind", af.kind, "why", why)
	r.o.Event("fault_reverted", map[string]any{"id": id, "kind": af.kind, "target": af.Target, "why": why})
	for _, ob := range r.o.Observers {
		ob.FaultReverted(id, af.kind)
	}
	return nil
}
