package leakcheck

import (
	"fmt"
	"maps"
	"math"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/soakd/soakd/internal/alert"
)

// Journal events of the leak canaries.
const (
	EventLeakCanaryDetected = "leak_canary_detected"
	EventLeakCanaryMissed   = "leak_canary_missed"
	// EventLeakCanaryMissedResolved: a SoakdCanaryMissed resolved.
	EventLeakCanaryMissedResolved = "leak_canary_missed_resolved"
)

// canaryMetrics are the canaries' series, by signal.
type canaryMetrics struct {
	canaryActive    *prometheus.GaugeVec
	canaryFiring    *prometheus.GaugeVec
	canaryDetected  *prometheus.CounterVec
	canaryDetection *prometheus.GaugeVec
	canaryMissed    *prometheus.CounterVec
	canaryMissedOn  *prometheus.GaugeVec
}

func (c *canaryMetrics) init() []prometheus.Collector {
	const ns = "soakd"
	sig := []string{"signal"}
	c.canaryActive = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "leak_canary_active",
		Help: "1 while a leak canary drives the signal on purpose (in force, or ended less than leakcheck.window ago): an alert on it now is the canary's."}, sig)
	c.canaryFiring = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "leak_canary_firing",
		Help: "1 while the signal's firing leak alert is a canary's (labelled canary=\"true\"): soakd_leak_firing without it is a real leak."}, sig)
	c.canaryDetected = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "leak_canary_detected_total",
		Help: "Leak canaries whose alert fired on the signal: the alert path proven."}, sig)
	c.canaryDetection = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "leak_canary_detection_seconds",
		Help: "Time from the last detected canary's start to its alert; NaN until a canary is detected."}, sig)
	c.canaryMissed = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "leak_canary_missed_total",
		Help: "Leak canaries that ended, and settled, without their alert: the detection path is broken."}, sig)
	c.canaryMissedOn = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "leak_canary_missed",
		Help: "1 while soakd's SoakdCanaryMissed alert on the signal is firing."}, sig)
	return []prometheus.Collector{c.canaryActive, c.canaryFiring, c.canaryDetected, c.canaryDetection, c.canaryMissed, c.canaryMissedOn}
}

// zero makes a judged signal's canary series exist from the start.
func (c *canaryMetrics) zero(signal string) {
	c.canaryActive.WithLabelValues(signal).Set(0)
	c.canaryFiring.WithLabelValues(signal).Set(0)
	c.canaryDetected.WithLabelValues(signal)
	c.canaryDetection.WithLabelValues(signal).Set(math.NaN())
	c.canaryMissed.WithLabelValues(signal)
	c.canaryMissedOn.WithLabelValues(signal).Set(0)
}

// CanaryStarted records a leak canary injected now (c.Started is set
// here); a resumed run's re-injection of the same id is the same canary.
func (m *Monitor) CanaryStarted(c Canary) {
	now := m.o.Clock.Now()
	c.Started = now
	m.mu.Lock()
	defer m.mu.Unlock()
	m.canaries.start(c)
	m.canaryTickLocked(now)
	m.persistLocked()
}

// CanaryEnded records leak canary id reverted now.
func (m *Monitor) CanaryEnded(id string) {
	now := m.o.Clock.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.canaries.end(id, now)
	m.persistLocked()
}

// Canaries lists the run's leak canaries, oldest first.
func (m *Monitor) Canaries() []Canary {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.canaries.snapshot()
}

// canaryTickLocked publishes which signals a canary drives and raises
// SoakdCanaryMissed for each canary that ended and settled unseen.
func (m *Monitor) canaryTickLocked(now time.Time) {
	for _, st := range m.signals {
		if st.det != nil {
			m.canaryActive.WithLabelValues(st.name).Set(boolFloat(m.canaries.covering(st.name, now) != nil))
		}
	}
	for _, c := range m.canaries.missed(now, m.warmSince) {
		m.raiseMissedLocked(now, c)
	}
}

// canaryAlertLocked labels st's new alert as the canary's when a canary
// drives st's signal now, and adds the canary to the event's fields; it
// returns the canary if this alert is its detection.
func (m *Monitor) canaryAlertLocked(now time.Time, st *signalState, fields map[string]any) *Canary {
	c := m.canaries.covering(st.name, now)
	if c == nil {
		return nil
	}
	a := &st.alert
	a.Labels["canary"] = "true"
	a.Labels["severity"] = "info"
	a.Annotations["canary_fault"] = c.ID
	a.Annotations["summary"] = fmt.Sprintf("expected: the leak canary %s (%s %s) is detected on %s after %s",
		c.ID, c.Resource, c.Rate, st.name, now.Sub(c.Started).Round(time.Second))
	a.Annotations["description"] = fmt.Sprintf("This alert is the expected result of the leak canary fault %s, which soakd "+
		"injected on purpose to prove that a leak is detected and alerted; it is not a leak of the system under test. ", c.ID) +
		a.Annotations["description"]
	fields["canary"] = c.ID
	m.canaryFiring.WithLabelValues(st.name).Set(1)
	if m.canaries.alerted(c, st.name, now) {
		return c
	}
	return nil
}

// canaryDetectedLocked counts canary c's detection, journals it and
// resolves a SoakdCanaryMissed on its signal: the path works again.
func (m *Monitor) canaryDetectedLocked(now time.Time, c *Canary) {
	sig := c.Signal()
	m.canaryDetected.WithLabelValues(sig).Inc()
	m.canaryDetection.WithLabelValues(sig).Set(c.DetectionTime().Seconds())
	m.log.Info("leak canary detected: the alert path works", "canary", c.ID, "signal", sig, "after", c.DetectionTime().Round(time.Second))
	m.o.Event(EventLeakCanaryDetected, map[string]any{"id": c.ID, "resource": c.Resource, "rate": c.Rate, "signal": sig,
		"detection_seconds": c.DetectionTime().Seconds()})
	m.resolveMissedLocked(now, sig, fmt.Sprintf("the later canary %s was detected", c.ID))
	m.persistLocked()
}

// raiseMissedLocked fires SoakdCanaryMissed for canary c: a real, critical
// alert, since a leak like the canary's would go unseen too.
func (m *Monitor) raiseMissedLocked(now time.Time, c *Canary) {
	sig := c.Signal()
	var st *signalState
	for _, s := range m.signals {
		if s.name == sig {
			st = s
		}
	}
	why := "nothing judges it (no leakcheck threshold)"
	if st != nil && st.det != nil {
		why = fmt.Sprintf("threshold %s/min", m.fmt(sig, st.det.Config().Threshold*60))
		if ev := st.last; !ev.Insufficient && !ev.At.IsZero() {
			why += fmt.Sprintf(", smallest slope this run can detect over %s: %s/min", ev.Window, m.fmt(sig, ev.Detectable*60))
		}
	}
	desc := fmt.Sprintf("The leak canary %s (%s %s, %s, from %s to %s) drove %s on purpose, and soakd's leak detector did not fire on it "+
		"within %s of its end (%s). A leak like the canary's would go unseen as well: check leakcheck.thresholds, the windows and "+
		"soakd_leak_detectable_slope_per_second, or the canary's rate.",
		c.ID, c.Resource, c.Rate, c.Shape, c.Started.UTC().Format(time.RFC3339), c.Ended.UTC().Format(time.RFC3339), sig,
		m.canaries.settle, why)
	a := alert.Alert{
		Name:   AlertCanaryMissed,
		Labels: map[string]string{"severity": "critical", "run_id": m.o.RunID, "signal": sig},
		Annotations: map[string]string{
			"summary":      fmt.Sprintf("soakd's leak canary %s was not detected: leak detection on %s is broken", c.ID, sig),
			"description":  desc,
			"canary_fault": c.ID,
		},
		StartsAt: now,
	}
	if old, ok := m.missed[sig]; ok && old.Firing() {
		a.StartsAt = old.StartsAt // one alert per signal: the newest miss describes it
	}
	m.missed[sig] = a
	m.canaryMissed.WithLabelValues(sig).Inc()
	m.canaryMissedOn.WithLabelValues(sig).Set(1)
	m.persistLocked()
	m.o.Notify(a)
	m.log.Error("leak canary missed: the detection path is broken", "canary", c.ID, "signal", sig)
	m.o.Event(EventLeakCanaryMissed, map[string]any{"id": c.ID, "resource": c.Resource, "rate": c.Rate, "signal": sig,
		"alertname": AlertCanaryMissed, "why": why})
}

// resolveMissedLocked resolves the firing SoakdCanaryMissed on signal (""
// every signal), with reason in its description.
func (m *Monitor) resolveMissedLocked(now time.Time, signal, reason string) {
	for sig, a := range m.missed {
		if (signal != "" && sig != signal) || !a.Firing() {
			continue
		}
		a.Annotations = maps.Clone(a.Annotations)
		a.Annotations["description"] = strings.TrimSpace(a.Annotations["description"] + " Resolved by soakd: " + reason + ".")
		a.EndsAt = now
		m.missed[sig] = a
		m.canaryMissedOn.WithLabelValues(sig).Set(0)
		m.o.Notify(a)
		m.o.Event(EventLeakCanaryMissedResolved, map[string]any{"alertname": a.Name, "signal": sig, "reason": reason})
	}
}

// restoreMissedLocked takes over a SoakdCanaryMissed the last incarnation
// left: still firing (re-sent, not paged again), or a resolution to send
// again.
func (m *Monitor) restoreMissedLocked(signal string, a alert.Alert) {
	m.missed[signal] = a
	if !a.Firing() {
		m.o.Notify(a)
		return
	}
	m.canaryMissedOn.WithLabelValues(signal).Set(1)
	m.o.Restore(a)
}
