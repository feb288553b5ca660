package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/fabric"
	"github.com/soakd/soakd/internal/faults"
	"github.com/soakd/soakd/internal/report"
	"github.com/soakd/soakd/internal/run"
	"github.com/soakd/soakd/internal/status"
	"github.com/soakd/soakd/internal/telemetry"
)

// DefaultStateDir is used outside systemd when neither the flag nor the
// config names one.
const DefaultStateDir = "soakd-state"

// Options configures Run.
type Options struct {
	Config   *config.Config
	StateDir string // already resolved; see ResolveStateDir
	Fresh    bool
	Logger   *slog.Logger
	Clock    clockwork.Clock
	Notifier run.Notifier
	// Components builds the components the config enables. Enabled
	// components without a registered factory are reported, not faked.
	Components *components.Registry
	// Faults are the fault kinds built into this soakd; the config's kinds
	// are validated against them. nil: none.
	Faults   *faults.Registry
	Version  string
	Revision string
	// OnListen, when set, is called with the bound HTTP address (tests use
	// port 0).
	OnListen func(addr string)
	// FaultBackend routes the run's fault kinds through another engine
	// (faults.backend other than local): it gets the built kinds and returns
	// those the runner injects with. Nil: only the local backend is built
	// into this soakd, and a config asking for another is refused.
	FaultBackend FaultBackend
}

// FaultBackend wraps the run's fault kinds for faults.backend. Stop, if
// not nil, is called after the fault runner has stopped.
type FaultBackend func(ctx context.Context, cfg *config.Config, runID string, kinds faults.Kinds, log *slog.Logger) (wrapped faults.Kinds, stop func(context.Context) error, err error)

// ResolveStateDir picks the state dir: the flag, then the config, then
// systemd's $STATE_DIRECTORY, then ./soakd-state.
func ResolveStateDir(flag string, cfg *config.Config) string {
	switch {
	case flag != "":
		return flag
	case cfg != nil && cfg.StateDir != "":
		return cfg.StateDir
	}
	if sd := os.Getenv("STATE_DIRECTORY"); sd != "" {
		// systemd passes a colon-separated list when several are configured.
		first, _, _ := strings.Cut(sd, ":")
		return first
	}
	return DefaultStateDir
}

// Run runs the daemon until ctx is cancelled (SIGTERM) or the run completes.
// A completed run in the state dir is reported as *run.CompletedError.
func Run(ctx context.Context, o Options) error {
	cfg := o.Config
	if o.Components == nil {
		o.Components = components.NewRegistry()
	}
	if o.Faults == nil {
		o.Faults = &faults.Registry{}
	}
	if err := cfg.Validate(o.Faults); err != nil {
		return err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	clock := o.Clock
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	reg := telemetry.NewRegistry(o.Version, o.Revision)
	var runMetrics *telemetry.RunMetrics
	effective, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	r, err := run.Open(run.Options{
		Version:            o.Version,
		Config:             effective,
		StateDir:           o.StateDir,
		Seed:               cfg.Run.Seed,
		Target:             cfg.Run.Duration.Std(),
		CheckpointInterval: cfg.Run.CheckpointInterval.Std(),
		ShutdownTimeout:    cfg.Run.ShutdownTimeout.Std(),
		Fresh:              o.Fresh,
		Clock:              clock,
		Logger:             log,
		Notifier:           o.Notifier,
		OnEvent: func(e run.Event) {
			if runMetrics != nil {
				runMetrics.Events.WithLabelValues(e.Type).Inc()
			}
		},
		OnDrop: func() {
			if runMetrics != nil {
				runMetrics.EventsDropped.Inc()
			}
		},
	})
	if err != nil {
		return err
	}
	runMetrics = telemetry.RegisterRun(reg, telemetry.RunGauges{
		RunID: r.State().RunID, Seed: r.State().Seed, Version: o.Version,
		ElapsedSeconds: func() float64 { return r.Elapsed().Seconds() },
		TargetSeconds:  func() float64 { return cfg.Run.Duration.Std().Seconds() },
		Incarnation:    func() float64 { return float64(r.State().Incarnation) },
	}, func() float64 { return float64(r.CheckpointErrors()) })

	board := status.New(r)
	srv := newServer(cfg, r, reg, log, board)
	var serr error
	pprof.Do(ctx, pprof.Labels(run.StageLabel, "http"), func(context.Context) { serr = srv.Start() })
	if err := serr; err != nil {
		// The run was opened (incarnation counted); record why it stops.
		r.Event(run.EventRunFailed, map[string]any{"stage": "telemetry", "error": err.Error()})
		_ = r.Serve(cancelled(), nil)
		return err
	}
	log.Info("serving HTTP", "addr", srv.Addr())
	if o.OnListen != nil {
		o.OnListen(srv.Addr())
	}

	tracing, err := telemetry.NewTracerProvider(ctx, telemetry.TracingOptions{
		Endpoint: cfg.Telemetry.OTLPEndpoint, Ratio: cfg.Telemetry.TraceRatio,
		Version: o.Version, RunID: r.State().RunID,
	})
	if err != nil {
		log.Error("tracing disabled", "err", err)
		tracing = &telemetry.Tracing{Provider: noop.NewTracerProvider()}
	}

	// Components are built once the run is open, so a resumed run hands
	// them the seed it started with. Every component link runs through the
	// fabric, so network faults can act on single links; it closes after
	// the components have stopped.
	fab := fabric.New(log.With("stage", "fabric"), fabric.WithSeed(r.State().Seed))
	defer fab.Close()
	w := wiring{o: o, cfg: cfg, r: r, reg: reg, clock: clock, log: log, fabric: fab, httpAddr: srv.Addr()}
	if w.comps, err = w.buildComponents(); err == nil {
		var eng *engines
		if eng, err = buildEngines(w, tracing.Provider); err == nil {
			board.Attach(status.Parts{Components: w.comps, Faults: eng.faults, Leaks: eng.monitor, Profiler: eng.profiler})
			serveErr := r.Serve(ctx, w.comps, eng.services...)
			if r.State().Completed {
				writeReport(log, r.Dir())
			}
			shutdownTelemetry(log, tracing, srv)
			return serveErr
		}
	}
	// Nothing was started: record why, close the run, fail (so systemd's
	// Restart=on-failure sees a failure).
	r.Event(run.EventRunFailed, map[string]any{"stage": "build", "error": err.Error()})
	_ = r.Serve(cancelled(), nil)
	shutdownTelemetry(log, tracing, srv)
	return err
}

// writeReport writes the report of a completed run into its state dir.
func writeReport(log *slog.Logger, dir string) {
	r, files, err := report.WriteFiles(dir, "", report.Formats)
	if err != nil {
		log.Error("run report failed", "err", err)
		return
	}
	log.Info("run report written", "verdict", r.Verdict, "files", files)
}

// newServer is the HTTP server of the contract: /metrics, the status,
// alerts and events APIs, readiness and the checkpoint endpoint.
func newServer(cfg *config.Config, r *run.Run, reg *prometheus.Registry, log *slog.Logger, board *status.Assembler) *telemetry.Server {
	return telemetry.NewServer(telemetry.ServerOptions{
		Addr:     cfg.Listen,
		Registry: reg,
		Logger:   log,
		Status:   func() any { return board.Status() },
		Alerts:   func() any { return board.Alerts() },
		Events: func(after int64, limit int, typ string) (any, int64, error) {
			evs, err := run.ReadEvents(r.JournalPath(), after, limit, typ)
			next := after
			if len(evs) > 0 {
				next = evs[len(evs)-1].Seq
			}
			if evs == nil {
				evs = []run.Event{}
			}
			return evs, next, err
		},
		Ready:      r.Ready,
		Token:      r.Token(),
		Checkpoint: r.Checkpoint,
		Report:     report.Handler(r.Dir()),
	})
}

// shutdownTelemetry flushes traces and stops the HTTP server; it goes last
// so the final state stays scrapeable until the end.
func shutdownTelemetry(log *slog.Logger, tracing *telemetry.Tracing, srv *telemetry.Server) {
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tracing.Shutdown(shutdownCtx); err != nil {
		log.Warn("trace flush failed", "err", err)
	}
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
}

func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// IsCompleted reports whether err says the state dir's run has finished.
func IsCompleted(err error) bool {
	var ce *run.CompletedError
	return errors.As(err, &ce)
}
