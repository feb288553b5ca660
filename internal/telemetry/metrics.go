package telemetry

import (
	"runtime"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Namespace prefixes every soakd metric.
const Namespace = "soakd"

// NewRegistry returns a registry holding the Go collector (with the
// runtime/metrics series the leak checker reads), the process collector and
// soakd_build_info.
func NewRegistry(version, revision string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.MetricsGC, collectors.MetricsMemory, collectors.MetricsScheduler)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	bi := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "build_info",
		Help:        "A metric with a constant '1' value labeled by the version, revision and Go version soakd was built from.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": runtime.Version()},
	})
	bi.Set(1)
	reg.MustRegister(bi)
	return reg
}

// RunGauges are the run's identity and the functions behind its progress
// gauges.
type RunGauges struct {
	// RunID, Seed and Version label soakd_run_info, which Prometheus's
	// copies of alerts and the dashboards join on.
	RunID, Version string
	Seed           uint64
	ElapsedSeconds func() float64
	TargetSeconds  func() float64
	Incarnation    func() float64
}

// RunMetrics are the run's own counters, incremented by the run's hooks.
type RunMetrics struct {
	Events           *prometheus.CounterVec
	EventsDropped    prometheus.Counter
	CheckpointErrors prometheus.CounterFunc
}

// RegisterRun registers soakd_run_* gauges read from g at scrape time, and
// the journal counters.
func RegisterRun(reg prometheus.Registerer, g RunGauges, checkpointErrors func() float64) *RunMetrics {
	info := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: "run_info",
		Help:        "A metric with a constant '1' value labeled by the run's id, seed and the soakd version running it.",
		ConstLabels: prometheus.Labels{"run_id": g.RunID, "seed": strconv.FormatUint(g.Seed, 10), "version": g.Version}})
	info.Set(1)
	reg.MustRegister(info,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Name: "run_elapsed_seconds",
			Help: "Soak time of the run so far, summed over incarnations; downtime between a crash and its restart is not counted."}, g.ElapsedSeconds),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Name: "run_target_seconds",
			Help: "Target soak time of the run (run.duration)."}, g.TargetSeconds),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Name: "run_incarnation",
			Help: "How many times this run has been started: 1 for a fresh run, +1 per resume."}, g.Incarnation),
	)
	m := &RunMetrics{
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "journal_events_total",
			Help: "Events written to the run journal, by type."}, []string{"type"}),
		EventsDropped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: "journal_events_dropped_total",
			Help: "Events dropped because the journal reached its size bound."}),
		CheckpointErrors: prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: Namespace, Name: "checkpoint_errors_total",
			Help: "Failed writes of the run checkpoint (a full disk, say)."}, checkpointErrors),
	}
	reg.MustRegister(m.Events, m.EventsDropped, m.CheckpointErrors)
	return m
}
