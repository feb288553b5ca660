package faults

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/tick"
)

// Observer is told about every injection and revert; the leak checker uses
// it to measure what each fault leaves behind.
type Observer interface {
	FaultInjected(id, kind string)
	FaultReverted(id, kind string)
}

// ParamObserver is an Observer that is also told each injection's
// parameters (the leak checker reads a leak canary's resource and rate).
type ParamObserver interface {
	Observer
	FaultInjectedWith(id, kind string, params map[string]string)
}

// ActiveFault is one fault in force, for the status API.
type ActiveFault struct {
	ID     string    `json:"id"`
	Kind   string    `json:"kind"`
	Target string    `json:"target"`
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until"`
	// Stuck marks a fault whose revert failed: it blocks its target.
	Stuck bool `json:"stuck,omitempty"`
}

// RunnerOptions configures NewRunner.
type RunnerOptions struct {
	// Plan is the run's fault timeline (see Plan and ReplayPlan).
	Plan []Planned
	// Kinds are the fault kinds built for the run (Registry.Build).
	Kinds Kinds
	// Resolvers name the nodes behind a component's target selectors at
	// injection time ("<component>/leader" → "<component>/node-2").
	Resolvers map[string]components.TargetResolver
	// BlastRadius caps, per component, how many nodes node-disrupting
	// faults (crash, partition, blackhole) may hold at once.
	BlastRadius map[string]int
	// Healthy reports whether every component is healthy; with
	// PauseWhenUnhealthy, no new fault starts while it is not.
	Healthy            func() (bool, string)
	PauseWhenUnhealthy bool
	// Settled lists plan ids an earlier incarnation already finished
	// (reverted at its end, skipped or failed to inject; see Settled), read
	// from the journal at resume: they are not injected again, so a kill -9
	// repeats neither a fault reverted just before it nor one that was
	// refused.
	Settled map[string]bool
	Clock   clockwork.Clock
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
	nodes    []string // resolved nodes, for the blast radius
	comp     string
	kind     string
	revert   Revert
	endAt    time.Duration // run elapsed at which to revert
	failures int
	nextTry  time.Duration // run elapsed before which a failed revert is not retried
}

// Runner injects the plan's faults at their offsets on the run's elapsed
// time and reverts each after its duration. Targets resolve at injection
// time, the blast radius is enforced, and new faults pause while a
// component is unhealthy. A fault that is active when the daemon dies, or
// that Stop reverts, is re-applied for its remaining time on resume:
// in-process faults (links, crashed nodes, canaries) die with the process,
// so what the journal says is active would otherwise silently vanish, and
// a restart must not cut a fault short.
type Runner struct {
	o       RunnerOptions
	log     *slog.Logger
	metrics runnerMetrics

	mu     sync.Mutex
	active map[string]*activeFault // bounded by the plan's length
	done   map[int]bool            // plan entries handled this incarnation
	warned map[string]bool
	paused bool
	// healthyStreak counts healthy steps while paused (hysteresis).
	healthyStreak int

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type runnerMetrics struct {
	injected *prometheus.CounterVec
	active   *prometheus.GaugeVec
	errors   *prometheus.CounterVec
}

// Why a fault was reverted, in fault_reverted's "why" field.
const (
	// RevertDuration: its time was up. The fault is finished.
	RevertDuration = "duration"
	// RevertShutdown: soakd stopped while it was in force. It is not
	// finished; a resumed run re-applies it for its remaining time.
	RevertShutdown = "shutdown"
)

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
	for _, pf := range o.Plan {
		k, ok := o.Kinds[pf.Kind]
		if !ok {
			continue // reported once at its time
		}
		if err := k.Validate(pf.Params); err != nil {
			return nil, fmt.Errorf("%s (%s at %s) params: %w", pf.ID, pf.Kind, pf.At, err)
		}
		r.metrics.active.WithLabelValues(pf.Kind)
		r.metrics.injected.WithLabelValues(pf.Kind)
		r.metrics.errors.WithLabelValues(pf.Kind)
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
	t := r.o.Clock.NewTicker(r.o.Tick)
	r.wg.Go(func() {
		r.step(ctx)
		tick.Loop(ctx.Done(), t, func(time.Time) { r.step(ctx) })
	})
	return nil
}

// Stop halts the timeline and reverts every active fault (why: shutdown,
// so the faults are re-applied for their remaining time on resume).
func (r *Runner) Stop(ctx context.Context) error {
	if r.cancel != nil {
		r.cancel()
	}
	// A kind stuck in Inject holds the step; shutdown must not wait past
	// its deadline for it.
	waited := make(chan struct{})
	go func() { r.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
		return fmt.Errorf("faults: stop: an injection is still running: %w", ctx.Err())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var firstErr error
	for id, af := range r.active {
		if err := r.revertLocked(ctx, id, af, RevertShutdown); err != nil && firstErr == nil {
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
			_ = r.revertLocked(ctx, id, af, RevertDuration)
		}
	}
	healthy := r.healthLocked()
	for i, pf := range r.o.Plan {
		if r.done[i] || r.o.Settled[pf.ID] {
			continue
		}
		if el < pf.At {
			break // the plan is sorted by time
		}
		r.done[i] = true
		if el >= pf.End() {
			continue // wholly in the past (an earlier incarnation ran it)
		}
		if !healthy {
			r.o.Event(EventFaultSkipped, map[string]any{"id": pf.ID, "kind": pf.Kind, "target": pf.Target, "reason": "faults paused: a component is unhealthy"})
			continue
		}
		r.injectLocked(ctx, pf, el > pf.At+r.o.Tick)
	}
}

// healthyToResume is how many healthy steps in a row end a pause.
const healthyToResume = 10

// healthLocked applies pause_when_unhealthy with hysteresis: pause at the
// first unhealthy step, resume after healthyToResume healthy ones.
func (r *Runner) healthLocked() bool {
	if !r.o.PauseWhenUnhealthy || r.o.Healthy == nil {
		return true
	}
	ok, why := r.o.Healthy()
	switch {
	case !ok && !r.paused:
		r.paused, r.healthyStreak = true, 0
		r.log.Warn("faults paused: a component is unhealthy", "why", why)
		r.o.Event(EventFaultsPaused, map[string]any{"reason": why})
	case !ok:
		r.healthyStreak = 0
	case r.paused:
		r.healthyStreak++
		if r.healthyStreak >= healthyToResume {
			r.paused = false
			r.log.Info("faults resumed")
			r.o.Event(EventFaultsResumed, map[string]any{"healthy_steps": r.healthyStreak})
		}
	}
	return !r.paused
}

// takesNodesOut reports whether the kind says its faults take nodes out;
// those count against blast_radius.
func (r *Runner) takesNodesOut(kind string) bool {
	return r.o.Kinds[kind].TakesNodesOut
}

// resolveLocked turns a selector into concrete nodes and enforces the blast
// radius. It returns the resolved target to hand to the kind.
func (r *Runner) resolveLocked(pf Planned) (target, comp string, nodes []string, err error) {
	comp, sel, ok := strings.Cut(pf.Target, "/")
	res, known := r.o.Resolvers[comp]
	if !ok || !known {
		return pf.Target, comp, nil, nil // "self", or a component without nodes
	}
	// A replayed target names its nodes already: "node-1,node-3".
	for _, one := range strings.Split(sel, ",") {
		got, err := res.Resolve(one, fnvHash(pf.ID))
		if err != nil {
			return "", comp, nil, err
		}
		nodes = append(nodes, got...)
	}
	if r.takesNodesOut(pf.Kind) {
		if limit, set := r.o.BlastRadius[comp]; set {
			out := map[string]bool{}
			for _, af := range r.active {
				if af.comp == comp && r.takesNodesOut(af.kind) {
					for _, n := range af.nodes {
						out[n] = true
					}
				}
			}
			for _, n := range nodes {
				out[n] = true
			}
			if len(out) > limit {
				return "", comp, nil, fmt.Errorf("blast radius: %s would have %d nodes out, faults.blast_radius.%s is %d", comp, len(out), comp, limit)
			}
		}
	}
	return comp + "/" + strings.Join(nodes, ","), comp, nodes, nil
}

func fnvHash(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

func (r *Runner) injectLocked(ctx context.Context, pf Planned, resumed bool) {
	id, tf, endAt := pf.ID, pf, pf.End()
	k, ok := r.o.Kinds[tf.Kind]
	if !ok {
		if !r.warned[tf.Kind] {
			r.warned[tf.Kind] = true
			r.log.Warn("fault kind not built into this soakd; skipping", "kind", tf.Kind)
		}
		r.o.Event(EventFaultSkipped, map[string]any{"id": id, "kind": tf.Kind, "target": tf.Target, "reason": "kind not available"})
		return
	}
	target, comp, nodes, err := r.resolveLocked(pf)
	if err != nil {
		r.log.Warn("fault skipped", "id", id, "kind", tf.Kind, "target", tf.Target, "reason", err)
		r.o.Event(EventFaultSkipped, map[string]any{"id": id, "kind": tf.Kind, "target": tf.Target, "reason": err.Error()})
		return
	}
	for _, af := range r.active {
		if af.Stuck && af.comp == comp && (comp == "" || overlaps(af.nodes, nodes) || af.Target == target) {
			r.o.Event(EventFaultSkipped, map[string]any{"id": id, "kind": tf.Kind, "target": target, "reason": "target blocked by a fault that could not be reverted: " + af.ID})
			return
		}
	}
	ictx, verified := withVerified(withInjection(ctx, Injection{ID: id, At: tf.At, Remaining: endAt - r.o.Elapsed()}))
	revert, err := k.Inject(ictx, target, tf.Params)
	if err != nil {
		r.metrics.errors.WithLabelValues(tf.Kind).Inc()
		r.log.Error("fault injection failed", "id", id, "kind", tf.Kind, "err", err)
		r.o.Event(EventFaultFailed, map[string]any{"id": id, "kind": tf.Kind, "target": target, "params": tf.Params, "error": err.Error(), "phase": "inject"})
		return
	}
	now := r.o.Clock.Now()
	remaining := endAt - r.o.Elapsed()
	af := &activeFault{ActiveFault: ActiveFault{ID: id, Kind: tf.Kind, Target: target, Since: now, Until: now.Add(remaining)},
		kind: tf.Kind, comp: comp, nodes: nodes, revert: revert, endAt: endAt}
	r.active[id] = af
	r.metrics.injected.WithLabelValues(tf.Kind).Inc()
	r.metrics.active.WithLabelValues(tf.Kind).Inc()
	r.log.Info("fault injected", "id", id, "kind", tf.Kind, "target", target, "selector", tf.Target, "for", remaining.Round(time.Second), "resumed", resumed)
	r.o.Event(EventFaultInjected, map[string]any{"id": id, "kind": tf.Kind, "target": target, "selector": tf.Target, "params": tf.Params,
		"at_seconds": tf.At.Seconds(), "duration_seconds": remaining.Seconds(), "planned_duration_seconds": tf.Duration.Seconds(),
		"source": tf.Source, "resumed": resumed, "verified": verified.String()})
	for _, ob := range r.o.Observers {
		if po, ok := ob.(ParamObserver); ok {
			po.FaultInjectedWith(id, tf.Kind, tf.Params)
			continue
		}
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
			r.o.Event(EventFaultFailed, map[string]any{"id": id, "kind": af.kind, "target": af.Target, "error": err.Error(), "phase": "revert"})
		}
		return err
	}
	delete(r.active, id)
	r.metrics.active.WithLabelValues(af.kind).Dec()
	r.log.Info("fault reverted", "id", id, "kind", af.kind, "why", why)
	r.o.Event(EventFaultReverted, map[string]any{"id": id, "kind": af.kind, "target": af.Target, "why": why})
	for _, ob := range r.o.Observers {
		ob.FaultReverted(id, af.kind)
	}
	return nil
}

func overlaps(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}
