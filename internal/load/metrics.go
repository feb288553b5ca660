package load

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are shared by every component's generator (labelled by component).
type Metrics struct {
	ops       *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	dropped   *prometheus.CounterVec
	target    *prometheus.GaugeVec
	achieved  *prometheus.GaugeVec
	scheduled *prometheus.GaugeVec
	below     *prometheus.GaugeVec
	inFlight  *prometheus.GaugeVec
}

// NewMetrics registers the load metrics of DESIGN.md §3 on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	const ns = "soakd"
	m := &Metrics{
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "ops_total",
			Help: "Operations finished, by component, op and outcome (ok, failed: definitely not applied, unknown: maybe applied)."},
			[]string{"component", "op", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "op_duration_seconds",
			Help: "Operation latency from its intended start (open loop: includes time waiting behind slow earlier ops).",
			// 100 µs .. ~52 s, doubling: fixed memory whatever the run length.
			Buckets: prometheus.ExponentialBuckets(100e-6, 2, 20)},
			[]string{"component", "op"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "ops_dropped_total",
			Help: "Arrivals not started because the component's in-flight cap was reached."}, []string{"component"}),
		target: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "load_target_ops_per_second",
			Help: "Target arrival rate now (ramp-up and diurnal swing applied)."}, []string{"component"}),
		achieved: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "load_achieved_ops_per_second",
			Help: "Operations started per second over the last minute."}, []string{"component"}),
		scheduled: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "load_scheduled_ops_per_second",
			Help: "Arrivals the seeded schedule called for per second over the last minute."}, []string{"component"}),
		below: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "load_below_target",
			Help: "1 while the last full minute started under 95% of the scheduled arrivals (the SoakdLoadBelowTarget condition)."}, []string{"component"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "load_in_flight",
			Help: "Operations in flight now."}, []string{"component"}),
	}
	for _, c := range []prometheus.Collector{m.ops, m.duration, m.dropped, m.target, m.achieved, m.scheduled, m.below, m.inFlight} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
