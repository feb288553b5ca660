package daemon

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"

	"go.opentelemetry.io/otel/trace"

	"github.com/soakd/soakd/internal/alert"
	"github.com/soakd/soakd/internal/check"
	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/fabric"
	"github.com/soakd/soakd/internal/faults"
	"github.com/soakd/soakd/internal/leakcheck"
	"github.com/soakd/soakd/internal/load"
	"github.com/soakd/soakd/internal/profiling"
	"github.com/soakd/soakd/internal/run"
)

// engines are the run's services besides its components, in start order:
// alert delivery and profiling first (they outlive what they observe),
// then the leak monitor, then the fault runner, so faults stop first and
// the monitor sees every revert.
type engines struct {
	services []run.Service
	faults   *faults.Runner
	monitor  *leakcheck.Monitor
	load     []*load.Generator
}

func buildEngines(o Options, cfg *config.Config, r *run.Run, reg *prometheus.Registry, clock clockwork.Clock, log *slog.Logger,
	comps []components.Component, tp trace.TracerProvider, fabric *fabric.Fabric) (*engines, error) {
	runID := r.State().RunID
	sinks := []alert.Sink{alert.NewLogSink(log.With("sink", "log"))}
	if u := cfg.Alerting.AlertmanagerURL; u != "" {
		s, err := alert.NewAlertmanagerSink(u, nil)
		if err != nil {
			return nil, err
		}
		sinks = append(sinks, s)
	}
	if u := cfg.Alerting.WebhookURL; u != "" {
		s, err := alert.NewWebhookSink(u, nil)
		if err != nil {
			return nil, err
		}
		sinks = append(sinks, s)
	}
	sendErrors := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "soakd", Name: "alert_send_errors_total",
		Help: "Failed deliveries to an alert sink (retried with backoff)."}, []string{"sink"})
	if err := reg.Register(sendErrors); err != nil {
		return nil, err
	}
	for _, s := range sinks {
		sendErrors.WithLabelValues(s.Name()) // exported at 0 from the start
	}
	disp := alert.NewDispatcher(alert.DispatcherOptions{Sinks: sinks, Clock: clock, Logger: log.With("stage", "alert"),
		OnSendError: func(sink string) { sendErrors.WithLabelValues(sink).Inc() }})

	prof, err := profiling.New(profiling.Options{Config: cfg.Profiling, Dir: filepath.Join(r.Dir(), "profiles"),
		RunID: runID, Clock: clock, Logger: log.With("stage", "profiling")})
	if err != nil {
		return nil, err
	}

	mon, err := leakcheck.NewMonitor(leakcheck.MonitorOptions{Config: cfg.LeakCheck, Warmup: cfg.Run.Warmup.Std(),
		RunID: runID, EvidenceDir: filepath.Join(r.Dir(), "evidence"), Clock: clock, Logger: log.With("stage", "leakcheck"),
		Metrics: reg, Notify: disp.Notify, Restore: disp.Restore, StatePath: filepath.Join(r.Dir(), "leak-alerts.json"),
		Event: r.Event})
	if err != nil {
		return nil, err
	}

	plan, err := faults.Plan(cfg, r.State().Seed, o.Faults, o.Components)
	if cfg.Faults.Replay != "" {
		plan, err = faults.ReplayPlan(cfg.Faults.Replay)
	}
	if err != nil {
		return nil, err
	}
	kinds, err := o.Faults.Build(faults.Env{Components: comps, Fabric: fabric, Clock: clock, Logger: log})
	if err != nil {
		return nil, err
	}
	healthy := func() (bool, string) {
		for _, c := range comps {
			if h := c.Health(); !h.Healthy {
				return false, c.Name() + ": " + h.Detail
			}
		}
		return true, ""
	}
	// Faults an earlier incarnation finished stay finished; one a clean
	// stop cut short is not finished (see faults.Settled).
	settled, err := faults.Settled(r.JournalPath())
	if err != nil {
		return nil, err
	}
	runner, err := faults.NewRunner(faults.RunnerOptions{Plan: plan, Kinds: kinds, Resolvers: components.Resolvers(comps), Settled: settled,
		BlastRadius: cfg.Faults.BlastRadius, Healthy: healthy, PauseWhenUnhealthy: cfg.Faults.PauseWhenUnhealthy,
		Clock: clock, Elapsed: r.Elapsed, Event: r.Event, Logger: log.With("stage", "faults"), Metrics: reg,
		Observers: []faults.Observer{mon.Residue()}})
	if err != nil {
		return nil, err
	}

	eng := &engines{
		faults:  runner,
		monitor: mon,
		services: []run.Service{
			{Name: "alerts", Start: func(context.Context) error { disp.Start(); return nil }, Stop: disp.Stop},
			{Name: "profiling", Start: prof.Start, Stop: prof.Stop},
			{Name: "leakcheck", Start: mon.Start, Stop: func(ctx context.Context) error {
				err := mon.Stop(ctx)
				if r.Completing() { // no incarnation will take its alerts over
					mon.ResolveAll("the run completed")
				}
				return err
			}},
			{Name: "faults", Start: runner.Start, Stop: runner.Stop},
		},
	}

	// Checkers start before faults and load, and stop after them, so the
	// last window of history is checked.
	for _, c := range comps {
		kv, ok := c.(components.KVHistory)
		if !ok {
			continue
		}
		lc, _ := rateLoad(o.Components, cfg, c.Name())
		lin, err := check.NewLinearizability(check.LinearizabilityOptions{Component: c.Name(), Rate: lc.Rate,
			EvidenceDir: filepath.Join(r.Dir(), "evidence"), Metrics: reg, Event: r.Event, Clock: clock,
			Logger: log.With("stage", "check", "component", c.Name())})
		if err != nil {
			return nil, err
		}
		kv.SetRecorder(lin)
		eng.services = slices.Insert(eng.services, len(eng.services)-1, run.Service{Name: "check/" + c.Name(), Start: lin.Start, Stop: lin.Stop})
	}

	// Load starts last and stops first.
	lm, err := load.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	tracer := tp.Tracer("github.com/soakd/soakd/internal/load")
	for _, c := range comps {
		lc, ok := rateLoad(o.Components, cfg, c.Name())
		if !ok {
			continue // interval-driven components join with their own schedule
		}
		g, err := load.New(load.Options{Component: c, Load: lc, Seed: r.State().Seed, Clock: clock, Elapsed: r.Elapsed,
			Metrics: lm, Tracer: tracer, Logger: log.With("stage", "load", "component", c.Name())})
		if err != nil {
			return nil, err
		}
		eng.load = append(eng.load, g)
		eng.services = append(eng.services, run.Service{Name: "load/" + c.Name(), Start: g.Start, Stop: g.Stop})
	}
	return eng, nil
}

// rateLoad is a component's open-loop load config, if its spec declares one.
func rateLoad(reg *components.Registry, cfg *config.Config, name string) (config.RateLoad, bool) {
	spec, ok := reg.Spec(name)
	if !ok || spec.Load == nil {
		return config.RateLoad{}, false
	}
	return spec.Load(cfg)
}
