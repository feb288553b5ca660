package check

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

func (l *Linearizability) initMetrics(reg prometheus.Registerer) error {
	checks := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "soakd_checks_total",
		Help: "Correctness checks run, by component, checker and result (ok, illegal, unknown). The linearizability checker counts one check per key per window.",
	}, []string{"component", "checker", "result"})
	violations := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "soakd_invariant_violations_total",
		Help: "Invariant violations found, by component and invariant.",
	}, []string{"component", "invariant"})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "soakd_check_dropped_ops_total",
		Help: "Operations a checker could not check, by component, checker and reason (buffer_full, late, invalid).",
	}, []string{"component", "checker", "reason"})
	forced := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "soakd_check_forced_cuts_total",
		Help: "Key-windows a checker cut while ops of the key were in flight (no quiescent moment for max key lag); those ops were checked only as optional writes.",
	}, []string{"component", "checker"})
	windows := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "soakd_check_windows_total",
		Help: "Windows of history a checker closed, by what closed them (ticker, pressure: early because the buffer filled, stop, call).",
	}, []string{"component", "checker", "trigger"})
	span := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "soakd_check_window_seconds",
		Help: "How much history the checker's last window closed (its cut minus the previous one).",
	}, []string{"component", "checker"})
	buffered := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "soakd_check_buffered_ops",
		Help: "Operations a checker holds in memory (buffered plus being checked).",
	}, []string{"component", "checker"})
	if reg != nil {
		var err error
		if checks, err = registerVec(reg, checks); err != nil {
			return err
		}
		if violations, err = registerVec(reg, violations); err != nil {
			return err
		}
		if dropped, err = registerVec(reg, dropped); err != nil {
			return err
		}
		if buffered, err = registerVec(reg, buffered); err != nil {
			return err
		}
		if forced, err = registerVec(reg, forced); err != nil {
			return err
		}
		if windows, err = registerVec(reg, windows); err != nil {
			return err
		}
		if span, err = registerVec(reg, span); err != nil {
			return err
		}
	}
	c := l.o.Component
	l.checks = checks.MustCurryWith(prometheus.Labels{"component": c, "checker": checkerLinearizability})
	for _, r := range []string{ResultOK, ResultIllegal, ResultUnknown} {
		l.checks.WithLabelValues(r)
	}
	l.violations = violations.WithLabelValues(c, checkerLinearizability)
	l.dropped = dropped.MustCurryWith(prometheus.Labels{"component": c, "checker": checkerLinearizability})
	for _, r := range []string{DropBufferFull, DropLate, DropInvalid} {
		l.dropped.WithLabelValues(r)
	}
	l.buffered = buffered.WithLabelValues(c, checkerLinearizability)
	l.forced = forced.WithLabelValues(c, checkerLinearizability)
	l.windows = windows.MustCurryWith(prometheus.Labels{"component": c, "checker": checkerLinearizability})
	for _, t := range []string{TriggerTicker, TriggerPressure, TriggerStop, TriggerCall} {
		l.windows.WithLabelValues(t)
	}
	l.span = span.WithLabelValues(c, checkerLinearizability)
	return nil
}

// registerVec registers c, or returns the collector of the same shape that
// another checker already registered.
func registerVec[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if ex, ok := are.ExistingCollector.(T); ok {
				return ex, nil
			}
		}
		var zero T
		return zero, fmt.Errorf("check: register metrics: %w", err)
	}
	return c, nil
}
