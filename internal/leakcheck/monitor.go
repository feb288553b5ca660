package leakcheck

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/soakd/soakd/internal/alert"
	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/tick"
)

// AlertNames maps signals to the alertname soakd pushes (DESIGN.md §3,
// extended with RSS and threads).
var AlertNames = map[string]string{
	SignalHeap:       "SoakdHeapLeak",
	SignalGoroutines: "SoakdGoroutineLeak",
	SignalFDs:        "SoakdFDLeak",
	SignalRSS:        "SoakdRSSLeak",
	SignalThreads:    "SoakdThreadLeak",
}

// MonitorOptions configures NewMonitor.
type MonitorOptions struct {
	Config config.LeakCheck
	// Warmup is ignored by the detectors in every incarnation: a restarted
	// process warms its caches again, and that growth is not a leak.
	Warmup      time.Duration
	RunID       string
	EvidenceDir string
	// DiskDir is where the disk level of fault residue is read (the state
	// dir; "": not read).
	DiskDir string
	Clock   clockwork.Clock
	Logger  *slog.Logger
	Metrics prometheus.Registerer
	// Notify receives every firing and resolved alert (the dispatcher).
	Notify func(alert.Alert)
	// Restore receives, at Start, each alert an earlier incarnation left
	// firing whose signal is still judged (the dispatcher's Restore: re-sent
	// to Alertmanager, not paged again). Nil: Notify.
	Restore func(alert.Alert)
	// StatePath is the file that keeps the firing alerts across
	// incarnations (one entry per signal, replaced atomically on every fire
	// and resolve); empty: not kept, and a restart leaves them firing at the
	// receivers.
	StatePath string
	// Event journals an event.
	Event func(typ string, fields map[string]any)
	// ResidueSettle is how long after a fault's revert its residue is
	// measured (default: 4 sampling intervals, at least 30 s).
	ResidueSettle time.Duration
	// Targets lists the processes soaked beside soakd (node processes,
	// leakcheck.targets), asked at every sample; nil: none.
	Targets func() []Target
}

// FiringAlert is one firing leak alert, for /api/v1/status and alerts.
type FiringAlert struct {
	Name     string    `json:"name"`
	Signal   string    `json:"signal"`
	Node     string    `json:"node,omitempty"` // "component/node"; "": soakd itself
	Since    time.Time `json:"since"`
	Evidence string    `json:"evidence"`
	Slope    float64   `json:"slope_per_second"`
	// Canary is the leak canary fault whose expected result the alert is
	// (labelled canary="true", severity info), or, for SoakdCanaryMissed,
	// the canary that went unseen.
	Canary string `json:"canary,omitempty"`
}

type signalState struct {
	name     string
	ring     *Ring
	det      *Detector // nil: sampled, not judged (no threshold)
	fsm      AlertFSM
	alert    alert.Alert
	evidence string
	last     Evaluation
	extra    []*extraWindow // leakcheck.windows, judged beside the main one
}

// Monitor samples soakd's own signals every interval, judges each with
// its detector, drives the alert state machines, captures evidence when an
// alert fires and tells the sinks. All of its memory is fixed at start: a
// ring per signal, a few baseline profiles, a state per signal.
type Monitor struct {
	o         MonitorOptions
	cfg       config.LeakCheck
	interval  time.Duration
	log       *slog.Logger
	sampler   *Sampler
	read      func(time.Time) (Reading, error) // sampler.Read; tests feed their own
	residue   *ResidueTracker
	disturbed *disturbances
	base      *Baselines
	started   time.Time

	mu        sync.Mutex
	signals   []*signalState
	canaries  canaryBook
	warmSince time.Time              // first warm sample of this incarnation
	missed    map[string]alert.Alert // signal -> SoakdCanaryMissed, firing or just resolved
	js        judgeScratch
	nodes     map[string]*nodeState // by targetKey

	slope          *prometheus.GaugeVec
	lower          *prometheus.GaugeVec
	firing         *prometheus.GaugeVec
	alerts         *prometheus.CounterVec
	value          *prometheus.GaugeVec
	samples        *prometheus.CounterVec
	disturbedGauge *prometheus.GaugeVec
	detectable     *prometheus.GaugeVec
	windowSlope    *prometheus.GaugeVec
	thresh         *prometheus.GaugeVec
	evalErrs       prometheus.Counter
	canaryMetrics
	nm nodeMetrics
	ts *targetSampler

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// newSignalState builds a signal's windows and detectors from the config's
// thresholds (none: sampled, not judged).
func newSignalState(cfg config.LeakCheck, sig string, interval time.Duration) (*signalState, error) {
	mainConf, winConf, err := cfg.Confidences()
	if err != nil {
		return nil, err
	}
	st := &signalState{name: sig, ring: NewRing(RingCapacity(cfg.Window.Std(), interval)), fsm: AlertFSM{For: cfg.For}}
	th, ok := cfg.Thresholds[sig]
	if !ok {
		return st, nil
	}
	st.det, err = NewDetector(sig, DetectorConfig{Threshold: th.PerSecond(), Confidence: mainConf,
		Window: cfg.Window.Std(), Interval: interval})
	if err != nil {
		return nil, fmt.Errorf("leakcheck.thresholds.%s: %w", sig, err)
	}
	for i, w := range cfg.Windows {
		x, err := newExtraWindow(sig, w, th.PerSecond(), winConf[i], interval, cfg.For)
		if err != nil {
			return nil, err
		}
		st.extra = append(st.extra, x)
	}
	return st, nil
}

// judgeScratch is the buffers a judgement reuses.
type judgeScratch struct {
	samples []Sample
	evs     []Evaluation
	growing []bool
}

// judge evaluates every window of st (its newest sample already in the
// ring) at now: the main window's evaluation, the verdict decided over all
// windows, and the alert's transition.
func (st *signalState) judge(now time.Time, v float64, js *judgeScratch) (main, ev Evaluation, tr Transition) {
	js.samples = st.ring.Samples(js.samples[:0])
	main = st.det.Evaluate(now, js.samples)
	js.evs, js.growing = js.evs[:0], js.growing[:0]
	for _, x := range st.extra {
		var xe Evaluation
		js.samples, xe = x.observe(Sample{T: now, V: v}, js.samples)
		js.evs, js.growing = append(js.evs, xe), append(js.growing, x.growing)
	}
	ev = decide(main, js.evs, js.growing)
	st.last = main
	return main, ev, st.fsm.Observe(ev)
}

// NewMonitor builds the detectors from the config's thresholds.
func NewMonitor(o MonitorOptions) (*Monitor, error) {
	if o.Clock == nil {
		o.Clock = clockwork.NewRealClock()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = prometheus.NewRegistry()
	}
	if o.Notify == nil {
		o.Notify = func(alert.Alert) {}
	}
	if o.Restore == nil {
		o.Restore = o.Notify
	}
	if o.Event == nil {
		o.Event = func(string, map[string]any) {}
	}
	cfg := o.Config
	interval := cfg.Interval.Std()
	if o.ResidueSettle <= 0 {
		o.ResidueSettle = max(4*interval, 30*time.Second)
	}
	s, err := NewSampler()
	if err != nil {
		return nil, err
	}
	s.DiskDir = o.DiskDir
	m := &Monitor{o: o, cfg: cfg, interval: interval, log: o.Logger, sampler: s, read: s.Read,
		residue: NewResidueTracker(o.ResidueSettle), disturbed: newDisturbances(o.ResidueSettle),
		base: NewBaselines(cfg.Window.Std()), canaries: canaryBook{settle: cfg.Window.Std()},
		missed: map[string]alert.Alert{}, nodes: map[string]*nodeState{}, ts: newTargetSampler()}
	for _, sig := range Signals {
		st, err := newSignalState(cfg, sig, interval)
		if err != nil {
			return nil, err
		}
		m.signals = append(m.signals, st)
	}
	if err := m.registerMetrics(o.Metrics); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Monitor) registerMetrics(reg prometheus.Registerer) error {
	const ns = "soakd"
	m.slope = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "leak_slope_per_second",
		Help: "Theil-Sen slope of the signal over the leak window, in its unit per second."}, []string{"signal"})
	m.lower = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "leak_slope_lower_bound_per_second",
		Help: "Lower confidence bound (Sen) of the slope at leakcheck.confidence."}, []string{"signal"})
	m.firing = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "leak_firing",
		Help: "1 while the signal's leak alert is firing."}, []string{"signal"})
	m.alerts = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "leak_alerts_total",
		Help: "Leak alerts fired, by signal."}, []string{"signal"})
	m.value = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "leak_signal_value",
		Help: "Last sampled value of the leak signal (bytes or count)."}, []string{"signal"})
	m.samples = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "leak_samples_total",
		Help: "Samples taken of the leak signal, counted once soakd_leak_signal_value and soakd_leak_signal_disturbed hold it: a recorder polling faster than leakcheck.interval sees each sample once."},
		[]string{"signal"})
	m.thresh = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "leak_threshold_per_second",
		Help: "Configured leak threshold of the signal, in its unit per second."}, []string{"signal"})
	m.evalErrs = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "leak_sample_errors_total",
		Help: "Failed samples of the leak signals."})
	m.disturbedGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "leak_signal_disturbed",
		Help: "1 while a fault in force (or settling) moves the signal on purpose: its samples stay out of the leak window."},
		[]string{"signal"})
	m.detectable = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "leak_detectable_slope_per_second",
		Help: "Smallest growth the signal's current noise lets the detector call a leak within the window: the threshold plus the width of the slope's confidence bound."},
		[]string{"signal", "window"})
	m.windowSlope = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "leak_window_slope_per_second",
		Help: "Theil-Sen slope of the signal over each of its windows (leakcheck.window and leakcheck.windows), in its unit per second."},
		[]string{"signal", "window"})
	for _, c := range append([]prometheus.Collector{m.slope, m.lower, m.firing, m.alerts, m.value, m.samples, m.thresh, m.evalErrs, m.disturbedGauge, m.detectable, m.windowSlope}, append(m.canaryMetrics.init(), m.nm.init()...)...) {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("leakcheck: register metrics: %w", err)
		}
	}
	for _, st := range m.signals {
		if st.det != nil {
			m.thresh.WithLabelValues(st.name).Set(st.det.Config().Threshold)
			m.disturbedGauge.WithLabelValues(st.name).Set(0)
			m.firing.WithLabelValues(st.name).Set(0)
			m.alerts.WithLabelValues(st.name)
			m.canaryMetrics.zero(st.name)
		}
	}
	return nil
}

// Residue is the fault observer that measures what faults leave behind.
func (m *Monitor) Residue() *ResidueTracker { return m.residue }

// floorPoll is how often goroutines and descriptors are polled between two
// samples (see Sampler): a second is cheap (a runtime/metrics read and a
// readdir of /proc/self/fd) and fine enough that an op's goroutines are
// gone from most polls.
const floorPoll = time.Second

// Start takes over the alerts an earlier incarnation left firing (see
// restore), then samples in the background every leakcheck.interval.
func (m *Monitor) Start(ctx context.Context) error {
	m.started = m.o.Clock.Now()
	m.restore(m.started)
	ctx, m.cancel = context.WithCancel(context.WithoutCancel(ctx))
	t := m.o.Clock.NewTicker(m.interval)
	m.wg.Go(func() { tick.Loop(ctx.Done(), t, func(time.Time) { m.Tick(m.o.Clock.Now()) }) })
	if m.interval > floorPoll {
		p := m.o.Clock.NewTicker(floorPoll)
		m.wg.Go(func() {
			tick.Loop(ctx.Done(), p, func(time.Time) {
				if err := m.sampler.Poll(); err != nil {
					m.log.Debug("floor poll failed", "err", err)
				}
			})
		})
	}
	return nil
}

// Stop halts sampling. Firing alerts stay firing in the sinks: a restart
// resumes the run, re-adopts them from StatePath, and resolves them only
// when the data says so.
func (m *Monitor) Stop(context.Context) error {
	if m.cancel != nil {
		m.cancel()
	}
	m.wg.Wait()
	m.ts.client.CloseIdleConnections()
	return nil
}

// Tick takes one sample of soakd and of every target, and evaluates every
// signal at now.
func (m *Monitor) Tick(now time.Time) {
	m.tickSelf(now)
	m.tickNodes(now)
}

func (m *Monitor) tickSelf(now time.Time) {
	r, err := m.read(now)
	if err != nil {
		m.evalErrs.Inc()
		m.log.Warn("leak sample failed", "err", err)
		return
	}
	warm := now.Sub(m.started) >= m.o.Warmup
	if warm {
		// Warm-up growth would read as the residue of a fault injected
		// during it; such a fault finds no level before it and is not
		// measured.
		for _, fr := range m.residue.Observe(r) {
			f := map[string]any{"id": fr.ID, "kind": fr.Kind, "left_residue": fr.Left, "unmeasured": fr.Unmeasured}
			if fr.Residue != nil {
				f["residue"], f["over_tolerance"] = fr.Residue, fr.Over
			}
			m.o.Event(EventFaultResidue, f)
		}
	}
	if warm && m.base.Due(now) {
		if snap, err := CaptureSnapshot(now); err != nil {
			m.log.Warn("baseline profile failed", "err", err)
		} else {
			m.base.Add(snap)
		}
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	m.forgetResolvedLocked(now)
	if warm && m.warmSince.IsZero() {
		m.warmSince = now
	}
	m.canaryTickLocked(now)
	for _, st := range m.signals {
		v, ok := r.Value(st.name)
		if !ok {
			continue
		}
		m.value.WithLabelValues(st.name).Set(v)
		if !warm {
			m.samples.WithLabelValues(st.name).Inc()
			continue // warm-up growth is not data for the detectors
		}
		disturbed := m.disturbed.isDisturbed(st.name, now)
		m.disturbedGauge.WithLabelValues(st.name).Set(boolFloat(disturbed))
		m.samples.WithLabelValues(st.name).Inc()
		if disturbed {
			continue // see disturbances
		}
		st.ring.Add(Sample{T: now, V: v})
		if st.det == nil {
			continue
		}
		main, ev, tr := st.judge(now, v, &m.js)
		if !main.Insufficient {
			m.slope.WithLabelValues(st.name).Set(main.Slope)
			m.lower.WithLabelValues(st.name).Set(main.Lower)
			m.windowSlope.WithLabelValues(st.name, m.cfg.Window.String()).Set(main.Slope)
			m.detectable.WithLabelValues(st.name, m.cfg.Window.String()).Set(main.Detectable)
		}
		for _, x := range st.extra {
			if !x.last.Insufficient {
				m.windowSlope.WithLabelValues(st.name, x.label).Set(x.last.Slope)
				m.detectable.WithLabelValues(st.name, x.label).Set(x.last.Detectable)
			}
		}
		switch tr {
		case Fired:
			m.fire(now, st, ev)
		case Resolved:
			m.resolve(now, st, ev)
		}
	}
}

func (m *Monitor) fire(now time.Time, st *signalState, ev Evaluation) {
	name := AlertNames[st.name]
	id := now.UTC().Format("20060102T150405Z") + "-" + st.name
	th := st.det.Config().Threshold
	leaky := m.residue.Leaky()

	evidence := ""
	snapNow, err := CaptureSnapshot(now)
	base, haveBase := m.base.At(now.Add(-m.cfg.Window.Std()))
	var sum Summary
	switch {
	case err != nil:
		m.log.Error("evidence capture failed", "err", err)
	case !haveBase:
		m.log.Warn("no baseline profile yet; evidence compares now with now")
		base = snapNow
		fallthrough
	default:
		evidence, sum, err = WriteEvidence(m.o.EvidenceDir, m.cfg.Evidence.Keep, EvidenceInput{
			AlertID: id, AlertName: name, Signal: st.name, RunID: m.o.RunID, FiredAt: now,
			Evaluation: ev, Threshold: th, Base: base, Now: snapNow, Residue: leaky})
		if err != nil {
			m.log.Error("evidence bundle failed", "err", err)
		}
	}

	st.evidence = evidence
	desc := m.describe(st, ev, sum)
	for _, r := range leaky {
		desc += fmt.Sprintf(" Fault %s left residue after %d of %d injections.", r.Kind, r.WithResidue, r.Injections)
	}
	st.alert = alert.Alert{
		Name:   name,
		Labels: map[string]string{"severity": severity(st.name), "run_id": m.o.RunID, "signal": st.name},
		Annotations: map[string]string{
			"summary":     fmt.Sprintf("soakd %s is leaking %s/min", st.name, m.fmt(st.name, ev.Slope*60)),
			"description": desc,
			"evidence":    evidence,
			"window":      ev.Window.String(),
		},
		StartsAt: now,
	}
	fields := map[string]any{"alertname": name, "signal": st.name, "window": ev.Window.String(), "slope_per_second": ev.Slope,
		"lower_per_second": ev.Lower, "threshold_per_second": th, "evidence": evidence}
	detected := m.canaryAlertLocked(now, st, fields)
	m.firing.WithLabelValues(st.name).Set(1)
	m.alerts.WithLabelValues(st.name).Inc()
	m.persistLocked() // before Notify: a page the next incarnation does not know of could never be resolved
	m.o.Notify(st.alert)
	m.o.Event(EventLeakAlertFired, fields)
	if detected != nil {
		m.canaryDetectedLocked(now, detected)
	}
}

// describe says how st grows, in each window, and what grew most.
func (m *Monitor) describe(st *signalState, ev Evaluation, sum Summary) string {
	th := st.det.Config().Threshold
	bar := ev.Window.String()
	if f := m.factorOf(st, ev.Window); f != 1 {
		bar = fmt.Sprintf("%s, where the bar is %g× the threshold", ev.Window, f)
	}
	desc := fmt.Sprintf("%s grows %s/min (lower bound %s/min at confidence %s, threshold %s/min) over the last %s (window %s), %d samples.",
		st.name, m.fmt(st.name, ev.Slope*60), m.fmt(st.name, ev.Lower*60),
		FormatConfidence(m.configOf(st, ev.Window).Confidence), m.fmt(st.name, th*60), ev.Window, bar, ev.N)
	desc += " Slope per window: " + m.windowSlopes(st) + "."
	if top := topCulprit(st.name, sum); top != "" {
		desc += " Top growth: " + top + "."
	}
	return desc
}

// factorOf is the bar factor of st's window w (1 for the main window).
func (m *Monitor) factorOf(st *signalState, w time.Duration) float64 {
	return m.configOf(st, w).Factor
}

// FormatConfidence prints a confidence so that close ones stay apart:
// 0.99, 0.9999, and past four nines 1-2.3e-07.
func FormatConfidence(c float64) string {
	if c > 0.9999 && c < 1 {
		return fmt.Sprintf("1-%.2g", 1-c)
	}
	return strconv.FormatFloat(c, 'g', 6, 64)
}

// configOf returns the detector config of st's window of length w.
func (m *Monitor) configOf(st *signalState, w time.Duration) DetectorConfig {
	for _, x := range st.extra {
		if x.det.Config().Window == w {
			return x.det.Config()
		}
	}
	return st.det.Config()
}

// windowSlopes lists the slope each of st's windows saw last, per minute.
func (m *Monitor) windowSlopes(st *signalState) string {
	evs := []Evaluation{st.last}
	for _, x := range st.extra {
		evs = append(evs, x.last)
	}
	var parts []string
	for _, e := range evs {
		if e.Insufficient || e.At.IsZero() {
			parts = append(parts, fmt.Sprintf("%s still filling", e.Window))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %s/min", e.Window, m.fmt(st.name, e.Slope*60)))
	}
	return strings.Join(parts, ", ")
}

func (m *Monitor) resolve(now time.Time, st *signalState, ev Evaluation) {
	st.alert.EndsAt = now
	st.evidence = ""
	m.firing.WithLabelValues(st.name).Set(0)
	m.canaryFiring.WithLabelValues(st.name).Set(0)
	m.persistLocked() // kept, resolved, for resolvedKeep: see forgetResolvedLocked
	m.o.Notify(st.alert)
	m.o.Event(EventLeakAlertResolved, map[string]any{"alertname": st.alert.Name, "signal": st.name, "slope_per_second": ev.Slope})
}

// restore takes over what the state file lists. An alert whose signal is
// still judged is re-adopted: firing, same identity and startsAt, handed to
// Restore rather than paged again, until its detector has ResolveAfter
// clear verdicts (none come during warm-up and while the window refills:
// losing the data is not evidence that the leak stopped). An alert nothing
// judges any more (its threshold was removed) is resolved now, with a note.
// A resolution the last incarnation may not have delivered is sent again.
func (m *Monitor) restore(now time.Time) {
	if m.o.StatePath == "" {
		return
	}
	state, err := readAlertState(m.o.StatePath)
	if err != nil {
		m.log.Error("cannot read the alerts the last incarnation left firing; receivers may keep them firing", "err", err)
		return
	}
	saved := state.Alerts
	m.mu.Lock()
	defer m.mu.Unlock()
	m.canaries.load(state.Canaries)
	if len(saved) == 0 {
		return
	}
	for _, s := range saved {
		a := s.alert()
		if a.Labels["node"] != "" {
			m.restoreNodeLocked(s, a)
			continue
		}
		if a.Name == AlertCanaryMissed {
			m.restoreMissedLocked(s.Signal, a)
			continue
		}
		var st *signalState
		for _, c := range m.signals {
			if c.name == s.Signal && c.det != nil {
				st = c
			}
		}
		switch {
		case !a.Firing():
			// Still listed: the last incarnation died within resolvedKeep
			// of resolving it, maybe before delivering that.
			m.o.Notify(a)
		case st != nil:
			st.fsm.State, st.fsm.Streak = Firing, 0
			st.fsm.ActiveAt, st.fsm.Since = a.StartsAt, a.StartsAt
			st.alert, st.evidence = a, a.Annotations["evidence"]
			m.firing.WithLabelValues(st.name).Set(1)
			if a.Labels["canary"] == "true" {
				m.canaryFiring.WithLabelValues(st.name).Set(1)
			}
			m.o.Restore(a)
			m.log.Info("leak alert still firing from the last incarnation; it resolves when the data says so",
				"alertname", a.Name, "signal", s.Signal, "since", a.StartsAt)
			m.o.Event(EventLeakAlertRestored, map[string]any{"alertname": a.Name, "signal": s.Signal,
				"starts_at": a.StartsAt, "evidence": st.evidence})
		default:
			note := fmt.Sprintf("Resolved by soakd at restart: %s is no longer judged (no threshold), so this alert cannot be evaluated.", s.Signal)
			a.EndsAt = now
			a.Annotations["description"] = strings.TrimSpace(a.Annotations["description"] + " " + note)
			m.o.Notify(a)
			m.log.Warn("leak alert left firing by the last incarnation resolved unevaluated", "alertname", a.Name, "signal", s.Signal)
			m.o.Event(EventLeakAlertResolved, map[string]any{"alertname": a.Name, "signal": s.Signal, "reason": note})
		}
	}
	m.persistLocked()
}

// ResolveAll resolves every firing alert now, with reason in its
// description: for a run that has completed, whose alerts no later
// incarnation will ever take over, so receivers would otherwise keep them
// firing forever. Call it after Stop.
func (m *Monitor) ResolveAll(reason string) {
	now := m.o.Clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, st := range m.signals {
		if st.alert.Name == "" || !st.alert.Firing() {
			continue
		}
		a := st.alert
		a.Annotations = maps.Clone(a.Annotations)
		a.Annotations["description"] = strings.TrimSpace(a.Annotations["description"] + " Resolved by soakd: " + reason + ".")
		a.EndsAt = now
		st.alert, st.evidence = a, ""
		st.fsm.State, st.fsm.Streak = Inactive, 0
		m.firing.WithLabelValues(st.name).Set(0)
		m.canaryFiring.WithLabelValues(st.name).Set(0)
		m.o.Notify(a)
		m.log.Info("leak alert resolved", "alertname", a.Name, "signal", st.name, "reason", reason)
		m.o.Event(EventLeakAlertResolved, map[string]any{"alertname": a.Name, "signal": st.name, "reason": reason})
	}
	m.resolveMissedLocked(now, "", reason)
	m.resolveNodesLocked(now, reason)
	m.persistLocked()
}

// forgetResolvedLocked drops resolutions older than resolvedKeep from the
// state file, so a later restart does not announce them again.
func (m *Monitor) forgetResolvedLocked(now time.Time) {
	dirty := false
	for _, st := range m.signals {
		if st.alert.Name != "" && !st.alert.Firing() && now.Sub(st.alert.EndsAt) >= resolvedKeep {
			st.alert, dirty = alert.Alert{}, true
		}
	}
	for sig, a := range m.missed {
		if !a.Firing() && now.Sub(a.EndsAt) >= resolvedKeep {
			delete(m.missed, sig)
			dirty = true
		}
	}
	if m.forgetNodesLocked(now) {
		dirty = true
	}
	if dirty {
		m.persistLocked()
	}
}

// persistLocked writes every signal's alert, firing or recently resolved,
// to the state file. A failure is logged, not fatal: the run goes on, at
// worst a restart leaves an alert firing at a receiver.
func (m *Monitor) persistLocked() {
	if m.o.StatePath == "" {
		return
	}
	var saved []savedAlert
	for _, st := range m.signals {
		if st.alert.Name != "" {
			saved = append(saved, saveAlert(st.name, st.alert))
		}
	}
	for _, sig := range slices.Sorted(maps.Keys(m.missed)) {
		saved = append(saved, saveAlert(sig, m.missed[sig]))
	}
	saved = append(saved, m.nodeAlertsLocked()...)
	if err := writeAlertState(m.o.StatePath, alertState{Alerts: saved, Canaries: m.canaries.snapshot()}); err != nil {
		m.log.Error("cannot save the firing leak alerts; a restart may leave them firing at the receivers", "path", m.o.StatePath, "err", err)
	}
}

func severity(signal string) string {
	switch signal {
	case SignalHeap, SignalGoroutines, SignalFDs:
		return "critical"
	}
	return "warning"
}

func (m *Monitor) fmt(signal string, v float64) string {
	if signal == SignalHeap || signal == SignalRSS {
		neg := ""
		if v < 0 {
			neg, v = "-", -v
		}
		return neg + humanize.IBytes(uint64(v))
	}
	return fmt.Sprintf("%.1f", v)
}

func topCulprit(signal string, s Summary) string {
	switch {
	case (signal == SignalHeap || signal == SignalRSS) && len(s.TopHeapSites) > 0:
		h := s.TopHeapSites[0]
		return fmt.Sprintf("%s (+%s in use) at %s:%d", h.Function, humanize.IBytes(uint64(max(h.DeltaBytes, 0))), filepath.Base(h.File), h.Line)
	case len(s.TopStacks) > 0:
		g := s.TopStacks[0]
		return fmt.Sprintf("%s (%+d goroutines)", g.Key, g.Delta)
	}
	return ""
}

// Firing lists the firing alerts, by signal.
func (m *Monitor) Firing() []FiringAlert {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []FiringAlert
	for _, st := range m.signals {
		if st.fsm.State == Firing {
			out = append(out, FiringAlert{Name: AlertNames[st.name], Signal: st.name, Since: st.fsm.Since,
				Evidence: st.evidence, Slope: st.last.Slope, Canary: st.alert.Annotations["canary_fault"]})
		}
	}
	for sig, a := range m.missed {
		if a.Firing() {
			out = append(out, FiringAlert{Name: a.Name, Signal: sig, Since: a.StartsAt, Canary: a.Annotations["canary_fault"]})
		}
	}
	out = append(out, m.nodeFiringLocked()...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Node != out[j].Node {
			return out[i].Node < out[j].Node
		}
		if out[i].Signal != out[j].Signal {
			return out[i].Signal < out[j].Signal
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// SignalView is one judged signal's last verdict, for /api/v1/status.
type SignalView struct {
	Signal    string  `json:"signal"`
	Window    string  `json:"window"`
	Threshold float64 `json:"threshold_per_second"`
	// Confidence is the main window's (config.LeakCheck.Confidences).
	Confidence float64 `json:"confidence"`
	// Slope and Detectable are absent until the window has data.
	Slope      *float64 `json:"slope_per_second,omitempty"`
	Detectable *float64 `json:"detectable_per_second,omitempty"`
	State      string   `json:"state"`
	// Windows are the leakcheck.windows judged beside the main one.
	Windows []WindowView `json:"windows,omitempty"`
}

// WindowView is one extra window's last verdict.
type WindowView struct {
	Window     string   `json:"window"`
	Factor     float64  `json:"factor"`
	Confidence float64  `json:"confidence"`
	Slope      *float64 `json:"slope_per_second,omitempty"`
	Detectable *float64 `json:"detectable_per_second,omitempty"`
}

// Signals returns each judged signal's last verdict.
func (m *Monitor) Signals() []SignalView {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []SignalView
	for _, st := range m.signals {
		if st.det == nil {
			continue
		}
		v := SignalView{Signal: st.name, Window: m.cfg.Window.String(), Threshold: st.det.Config().Threshold,
			Confidence: st.det.Config().Confidence, State: st.fsm.State.String()}
		if ev := st.last; !ev.Insufficient && !ev.At.IsZero() {
			v.Slope, v.Detectable = &ev.Slope, &ev.Detectable
		}
		for _, x := range st.extra {
			w := WindowView{Window: x.label, Factor: x.det.Config().Factor, Confidence: x.det.Config().Confidence}
			if ev := x.last; !ev.Insufficient && !ev.At.IsZero() {
				w.Slope, w.Detectable = &ev.Slope, &ev.Detectable
			}
			v.Windows = append(v.Windows, w)
		}
		out = append(out, v)
	}
	return out
}

// Describe returns the last evaluation per judged signal, for debugging.
func (m *Monitor) Describe() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	for _, st := range m.signals {
		if st.det != nil {
			fmt.Fprintf(&b, "%s: %s n=%d slope=%.4g lower=%.4g p=%.3g state=%s\n", st.name, st.last.Reason, st.last.N, st.last.Slope, st.last.Lower, st.last.MKP, st.fsm.State)
		}
	}
	return b.String()
}
