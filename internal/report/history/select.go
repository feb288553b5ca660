package history

import "fmt"

// Kind is how a metric family is folded into points.
type Kind int

const (
	// Gauge points keep the samples' min, max, sum, count and last value.
	Gauge Kind = iota + 1
	// Counter points keep the increase over the point.
	Counter
	// Histogram points keep the increase of each cumulative bucket count,
	// of the observation count and of their sum.
	Histogram
)

func (k Kind) String() string {
	switch k {
	case Gauge:
		return "gauge"
	case Counter:
		return "counter"
	case Histogram:
		return "histogram"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// parseKind is String's inverse, for the file.
func parseKind(s string) (Kind, bool) {
	for _, k := range []Kind{Gauge, Counter, Histogram} {
		if k.String() == s {
			return k, true
		}
	}
	return 0, false
}

// Select names one metric family to keep and how to fold it. A family
// whose Prometheus type does not match Kind is not kept (Dropped counts
// its samples).
type Select struct {
	Name string
	Kind Kind
}

// DefaultSelect is what the run report plots. Every name is one soakd
// registers today (the package that does is in the comment); a family that
// is absent in a run, such as a disabled component's, just has no series.
var DefaultSelect = []Select{
	// Leak signals (leakcheck/monitor.go), labelled by signal; the
	// detectable and window slopes also by window.
	{Name: "soakd_leak_signal_value", Kind: Gauge},
	{Name: "soakd_leak_slope_per_second", Kind: Gauge},
	{Name: "soakd_leak_slope_lower_bound_per_second", Kind: Gauge},
	{Name: "soakd_leak_threshold_per_second", Kind: Gauge},
	{Name: "soakd_leak_detectable_slope_per_second", Kind: Gauge},
	{Name: "soakd_leak_window_slope_per_second", Kind: Gauge},
	{Name: "soakd_leak_firing", Kind: Gauge},
	// Load (load/metrics.go): outcomes, latency, drops, rates.
	{Name: "soakd_ops_total", Kind: Counter},
	{Name: "soakd_op_duration_seconds", Kind: Histogram},
	{Name: "soakd_ops_dropped_total", Kind: Counter},
	{Name: "soakd_load_target_ops_per_second", Kind: Gauge},
	{Name: "soakd_load_achieved_ops_per_second", Kind: Gauge},
	{Name: "soakd_load_scheduled_ops_per_second", Kind: Gauge},
	{Name: "soakd_load_below_target", Kind: Gauge},
	// Faults (faults/runner.go).
	{Name: "soakd_faults_active", Kind: Gauge},
	// Correctness (check/metrics.go; components register the same
	// violations counter).
	{Name: "soakd_invariant_violations_total", Kind: Counter},
	{Name: "soakd_checks_total", Kind: Counter},
	// Components (components/migration/metrics.go, components/pbft/metrics.go).
	{Name: "soakd_migration_downtime_seconds", Kind: Histogram},
	{Name: "soakd_pbft_view_changes_total", Kind: Counter},
	{Name: "soakd_pbft_recovery_seconds", Kind: Gauge},
}
