package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/soakd/soakd/internal/alert"
	"github.com/soakd/soakd/internal/check"
	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/fabric"
	"github.com/soakd/soakd/internal/faults"
	"github.com/soakd/soakd/internal/faults/leak"
	"github.com/soakd/soakd/internal/leakcheck"
	"github.com/soakd/soakd/internal/load"
	"github.com/soakd/soakd/internal/profiling"
	"github.com/soakd/soakd/internal/report"
	"github.com/soakd/soakd/internal/report/history"
	"github.com/soakd/soakd/internal/run"
)

// wiring is what every part of a run is built from.
type wiring struct {
	o      Options
	cfg    *config.Config
	r      *run.Run
	reg    *prometheus.Registry
	clock  clockwork.Clock
	log    *slog.Logger
	fabric *fabric.Fabric
	comps  []components.Component // built, enabled components
	// httpAddr is where soakd's own HTTP API listens.
	httpAddr string
}

// engines are the run's services besides its components, in start order:
// alert delivery and profiling first (they outlive what they observe),
// then the leak monitor, the checkers, the fault runner, and load last, so
// that at shutdown load stops first, faults stop before the checkers check
// the last window, and the monitor sees every revert.
type engines struct {
	services []run.Service
	history  *history.Recorder
	faults   *faults.Runner
	monitor  *leakcheck.Monitor
	profiler *profiling.Profiler
}

func buildEngines(w wiring, tp trace.TracerProvider) (*engines, error) {
	disp, err := w.alerts()
	if err != nil {
		return nil, err
	}
	prof, err := profiling.New(profiling.Options{Config: w.cfg.Profiling, Dir: filepath.Join(w.r.Dir(), "profiles"),
		RunID: w.r.State().RunID, Clock: w.clock, Logger: w.log.With("stage", "profiling"),
		StageLabel: run.StageLabel, Metrics: w.reg})
	if err != nil {
		return nil, err
	}
	mon, err := leakcheck.NewMonitor(leakcheck.MonitorOptions{Config: w.cfg.LeakCheck, Warmup: w.cfg.Run.Warmup.Std(),
		RunID: w.r.State().RunID, EvidenceDir: filepath.Join(w.r.Dir(), "evidence"), DiskDir: w.r.Dir(), Clock: w.clock,
		Logger: w.log.With("stage", "leakcheck"), Metrics: w.reg, Notify: disp.Notify, Restore: disp.Restore,
		StatePath: filepath.Join(w.r.Dir(), "leak-alerts.json"), Event: w.r.Event, Targets: w.leakTargets})
	if err != nil {
		return nil, err
	}
	runner, backendStop, err := w.faultRunner(mon.Residue(), disturbObserver{mon: mon, kinds: w.o.Faults})
	if err != nil {
		return nil, err
	}
	stopFaults := runner.Stop
	if backendStop != nil {
		stopFaults = func(ctx context.Context) error { return errors.Join(runner.Stop(ctx), backendStop(ctx)) }
	}
	checkers, err := w.checkers()
	if err != nil {
		return nil, err
	}
	loads, err := w.loads(tp)
	if err != nil {
		return nil, err
	}
	// The history starts first and stops last, so it holds the whole run.
	hist, err := history.NewRecorder(history.RecorderOptions{Gatherer: w.reg, Path: filepath.Join(w.r.Dir(), report.HistoryFile),
		Clock: w.clock, Elapsed: w.r.Elapsed, Logger: w.log.With("stage", "history")})
	if err != nil {
		return nil, fmt.Errorf("run history: %w (move the file aside to start a new history)", err)
	}
	services := []run.Service{
		{Name: "history", Start: hist.Start, Stop: hist.Stop},
		{Name: "alerts", Start: func(context.Context) error { disp.Start(); return nil }, Stop: disp.Stop},
		{Name: "profiling", Start: prof.Start, Stop: prof.Stop},
		{Name: "leakcheck", Start: mon.Start, Stop: func(ctx context.Context) error {
			err := mon.Stop(ctx)
			if w.r.Completing() { // no incarnation will take its alerts over
				mon.ResolveAll("the run completed")
			}
			return err
		}},
	}
	services = append(services, checkers...)
	services = append(services, run.Service{Name: "faults", Start: runner.Start, Stop: stopFaults})
	if planted, err := plantedLeak(w); err != nil {
		return nil, err
	} else if planted != nil {
		services = append(services, *planted)
	}
	services = append(services, loads...)
	return &engines{services: services, history: hist, faults: runner, monitor: mon, profiler: prof}, nil
}

// disturbObserver tells the leak monitor which signals a fault in force
// moves on purpose (faults.Spec.Disturbs).
type disturbObserver struct {
	mon   *leakcheck.Monitor
	kinds *faults.Registry
}

func (o disturbObserver) FaultInjected(id, kind string) { o.FaultInjectedWith(id, kind, nil) }

// FaultInjectedWith also tells the monitor of a leak canary, so that its
// alert is labelled as the canary's and a canary it misses is an alert.
func (o disturbObserver) FaultInjectedWith(id, kind string, params map[string]string) {
	if s, ok := o.kinds.Spec(kind); ok && len(s.Disturbs) > 0 {
		o.mon.Disturb(id, s.Disturbs)
	}
	if kind == leakKind {
		if c, err := leak.Describe(params); err == nil {
			o.mon.CanaryStarted(leakcheck.Canary{ID: id, Resource: c.Resource, Rate: c.Rate, PerSecond: c.PerSecond, Shape: c.Shape})
		}
	}
}

func (o disturbObserver) FaultReverted(id, kind string) {
	if s, ok := o.kinds.Spec(kind); ok && len(s.Disturbs) > 0 {
		o.mon.Settle(id, s.Disturbs)
	}
	if kind == leakKind {
		o.mon.CanaryEnded(id)
	}
}

// leakKind is the canary fault kind's name.
var leakKind = leak.Spec().Name

// leakTargets lists the processes soaked beside soakd: every node process
// of the components that run them (asked each time: a restarted node has a
// new pid and port), and leakcheck.targets.
func (w wiring) leakTargets() []leakcheck.Target {
	var out []leakcheck.Target
	for _, c := range w.comps {
		pt, ok := c.(components.ProcessTargets)
		if !ok {
			continue
		}
		for _, t := range pt.ProcessTargets() {
			lt := leakcheck.Target{Component: c.Name(), Node: t.Node, PprofURL: t.PprofURL, MetricsURL: t.MetricsURL}
			if t.Local {
				pid := t.PID
				lt.PID = func() int { return pid }
			}
			out = append(out, lt)
		}
	}
	for _, t := range w.cfg.LeakCheck.Targets {
		out = append(out, leakcheck.Target{Node: t.Name, PprofURL: t.PprofURL, MetricsURL: t.MetricsURL})
	}
	return out
}

// alerts builds the alert dispatcher over the configured sinks.
func (w wiring) alerts() (*alert.Dispatcher, error) {
	sinks := []alert.Sink{alert.NewLogSink(w.log.With("sink", "log"))}
	if u := w.cfg.Alerting.AlertmanagerURL; u != "" {
		s, err := alert.NewAlertmanagerSink(u, nil)
		if err != nil {
			return nil, err
		}
		sinks = append(sinks, s)
	}
	if u := w.cfg.Alerting.WebhookURL; u != "" {
		s, err := alert.NewWebhookSink(u, nil)
		if err != nil {
			return nil, err
		}
		sinks = append(sinks, s)
	}
	sendErrors := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "soakd", Name: "alert_send_errors_total",
		Help: "Failed deliveries to an alert sink (retried with backoff)."}, []string{"sink"})
	if err := w.reg.Register(sendErrors); err != nil {
		return nil, err
	}
	for _, s := range sinks {
		sendErrors.WithLabelValues(s.Name()) // exported at 0 from the start
	}
	return alert.NewDispatcher(alert.DispatcherOptions{Sinks: sinks, Clock: w.clock, Logger: w.log.With("stage", "alert"),
		OnSendError: func(sink string) { sendErrors.WithLabelValues(sink).Inc() }}), nil
}

// faultRunner builds the fault kinds and the runner of the run's plan (or
// of the journal it replays). backendStop, if not nil, is the fault
// backend's, called after the runner stops.
func (w wiring) faultRunner(observers ...faults.Observer) (runner *faults.Runner, backendStop func(context.Context) error, err error) {
	plan, err := faults.Plan(w.cfg, w.r.State().Seed, w.o.Faults, w.o.Components)
	if w.cfg.Faults.Replay != "" {
		plan, err = faults.ReplayPlan(w.cfg.Faults.Replay)
	}
	if err != nil {
		return nil, nil, err
	}
	// A component that checks its invariants after every fault hears of them.
	for _, c := range w.comps {
		if o, ok := c.(faults.Observer); ok {
			observers = append(observers, o)
		}
	}
	kinds, err := w.o.Faults.Build(faults.Env{Components: w.comps, Fabric: w.fabric, Clock: w.clock, Logger: w.log,
		Config: w.cfg, StateDir: w.r.Dir(), SelfAddr: w.httpAddr})
	if err != nil {
		return nil, nil, err
	}
	if b := w.cfg.Faults.Backend; b != "" && b != "local" {
		if w.o.FaultBackend == nil {
			return nil, nil, fmt.Errorf("faults.backend: %s is not built into this soakd (build it with make build-k8s)", b)
		}
		if kinds, backendStop, err = w.o.FaultBackend(context.Background(), w.cfg, w.r.State().RunID, kinds,
			w.log.With("stage", "faults", "backend", b)); err != nil {
			return nil, nil, fmt.Errorf("faults.backend %s: %w", b, err)
		}
	}
	// Faults an earlier incarnation finished stay finished; one a clean
	// stop cut short is not finished (see faults.Settled).
	settled, err := faults.Settled(w.r.JournalPath())
	if err != nil {
		return nil, nil, err
	}
	runner, err = faults.NewRunner(faults.RunnerOptions{Plan: plan, Kinds: kinds, Resolvers: components.Resolvers(w.comps),
		Settled: settled, BlastRadius: w.cfg.BlastRadius(), Healthy: w.healthy,
		PauseWhenUnhealthy: w.cfg.Faults.PauseWhenUnhealthy, Clock: w.clock, Elapsed: w.r.Elapsed, Event: w.r.Event,
		Logger: w.log.With("stage", "faults"), Metrics: w.reg, Observers: observers})
	return runner, backendStop, err
}

// healthy reports whether every component is healthy, and if not, which.
func (w wiring) healthy() (bool, string) {
	for _, c := range w.comps {
		if h := c.Health(); !h.Healthy {
			return false, c.Name() + ": " + h.Detail
		}
	}
	return true, ""
}

// checkers puts a linearizability checker on every component with a KV
// history.
func (w wiring) checkers() ([]run.Service, error) {
	var out []run.Service
	for _, c := range w.comps {
		kv, ok := c.(components.KVHistory)
		if !ok {
			continue
		}
		lc, _ := w.rateLoad(c.Name())
		lin, err := check.NewLinearizability(check.LinearizabilityOptions{Component: c.Name(), Rate: lc.Rate,
			EvidenceDir: filepath.Join(w.r.Dir(), "evidence"), Metrics: w.reg, Event: w.r.Event, Clock: w.clock,
			Logger: w.log.With("stage", "check", "component", c.Name())})
		if err != nil {
			return nil, err
		}
		kv.SetRecorder(lin)
		out = append(out, run.Service{Name: "check/" + c.Name(), Start: lin.Start, Stop: lin.Stop})
	}
	return out, nil
}

// loads puts an open-loop load generator on every component whose spec
// declares a rate load; the others drive themselves.
func (w wiring) loads(tp trace.TracerProvider) ([]run.Service, error) {
	lm, err := load.NewMetrics(w.reg)
	if err != nil {
		return nil, err
	}
	tracer := tp.Tracer("github.com/soakd/soakd/internal/load")
	var out []run.Service
	for _, c := range w.comps {
		lc, ok := w.rateLoad(c.Name())
		if !ok {
			continue
		}
		var timeout time.Duration
		if spec, _ := w.o.Components.Spec(c.Name()); spec.OpTimeout != nil {
			timeout = spec.OpTimeout(w.cfg)
		}
		g, err := load.New(load.Options{Component: run.Staged(c), Load: lc, Seed: w.r.State().Seed, Clock: w.clock,
			Elapsed: w.r.Elapsed, Metrics: lm, Tracer: tracer, Logger: w.log.With("stage", "load", "component", c.Name()),
			OpTimeout: timeout})
		if err != nil {
			return nil, err
		}
		out = append(out, run.Service{Name: "load/" + c.Name(), Start: g.Start, Stop: g.Stop})
	}
	return out, nil
}

// rateLoad is a component's open-loop load config, if its spec declares one.
func (w wiring) rateLoad(name string) (config.RateLoad, bool) {
	spec, ok := w.o.Components.Spec(name)
	if !ok || spec.Load == nil {
		return config.RateLoad{}, false
	}
	return spec.Load(w.cfg)
}

// buildComponents builds the registered components the config enables, in
// registration order, each dialling its peers through the fabric.
func (w wiring) buildComponents() ([]components.Component, error) {
	for _, name := range w.cfg.Components.EnabledComponents() {
		if _, ok := w.o.Components.Spec(name); !ok {
			w.log.Warn("component enabled in config but not built into this soakd; skipping", "component", name)
		}
	}
	var out []components.Component
	peer := func(name string) (components.Component, bool) {
		for _, c := range out {
			if c.Name() == name {
				return c, true
			}
		}
		return nil, false
	}
	for _, spec := range w.o.Components.Specs() {
		if spec.Enabled != nil && !spec.Enabled(w.cfg) {
			continue
		}
		if err := w.shapeLinks(spec); err != nil {
			return nil, err
		}
		c, err := w.o.Components.Build(spec.Name, components.Deps{
			StateDir: filepath.Join(w.o.StateDir, "components", spec.Name),
			Seed:     w.r.State().Seed, Clock: w.clock, Logger: w.log, Config: w.cfg,
			Dial: w.fabric.DialerFor(spec.Name), LinkAddr: w.fabric.LinkAddrFor(spec.Name), Metrics: w.reg, Event: w.r.Event, Peer: peer,
		})
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// shapeLinks puts a component's run-long link profile on the fabric (it
// lasts until the fabric closes; faults add to it).
func (w wiring) shapeLinks(spec components.Spec) error {
	if spec.Links == nil {
		return nil
	}
	p, ok := spec.Links(w.cfg)
	if !ok {
		return nil
	}
	sel := fabric.Within(spec.Name)
	if p.Bandwidth > 0 {
		if _, err := w.fabric.Bandwidth(sel, p.Bandwidth); err != nil {
			return fmt.Errorf("%s link profile: %w", spec.Name, err)
		}
	}
	if p.Delay > 0 {
		if _, err := w.fabric.Delay(sel, p.Delay, 0); err != nil {
			return fmt.Errorf("%s link profile: %w", spec.Name, err)
		}
	}
	w.log.Info("link profile in force for the run", "component", spec.Name, "bandwidth_bytes_per_second", p.Bandwidth,
		"delay", p.Delay)
	return nil
}
