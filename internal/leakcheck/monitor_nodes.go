package leakcheck

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/soakd/soakd/internal/alert"
)

// nodeState is one Target's signals, judged as soakd's own are: the same
// windows, detectors and alert state machine, and its own baselines for
// evidence. Its memory is fixed, like the monitor's: rings and a few
// profiles per node, and the nodes are the components' (fixed by the
// config).
type nodeState struct {
	key     string // "component/node"
	target  Target
	signals []*signalState
	base    *Baselines
	// incarnation is the process's pid or start time; since is its first
	// sample, from which its warm-up counts.
	incarnation string
	since       time.Time
}

// nodeMetrics are the soakd_node_leak_* series, by component, node and
// signal.
type nodeMetrics struct {
	value, slope, firing *prometheus.GaugeVec
	samples, alerts      *prometheus.CounterVec
	errors, restarts     *prometheus.CounterVec
}

func (nm *nodeMetrics) init() []prometheus.Collector {
	const ns = "soakd_node"
	l := []string{"component", "node", "signal"}
	nm.value = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "leak_signal_value",
		Help: "Last sampled value of a node process's leak signal (bytes or count)."}, l)
	nm.slope = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "leak_slope_per_second",
		Help: "Theil-Sen slope of a node process's leak signal over leakcheck.window, in its unit per second."}, l)
	nm.firing = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "leak_firing",
		Help: "1 while a node process's leak alert is firing."}, l)
	nm.samples = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "leak_samples_total",
		Help: "Samples taken of a node process's leak signal."}, l)
	nm.alerts = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "leak_alerts_total",
		Help: "Leak alerts fired on a node process, by signal."}, l)
	nm.errors = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "leak_sample_errors_total",
		Help: "Failed samples of a node process (down, unreachable, or not serving pprof)."}, []string{"component", "node"})
	nm.restarts = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "leak_incarnations_total",
		Help: "Processes seen for a node: each new one (a restart) starts its leak windows again."}, []string{"component", "node"})
	return []prometheus.Collector{nm.value, nm.slope, nm.firing, nm.samples, nm.alerts, nm.errors, nm.restarts}
}

// targetKey names a target in the monitor's state and alert state file.
func targetKey(component, node string) string {
	if component == "" {
		return node
	}
	return component + "/" + node
}

// nodeLocked returns the state of the node key, creating it.
func (m *Monitor) nodeLocked(component, node string) (*nodeState, error) {
	key := targetKey(component, node)
	if ns, ok := m.nodes[key]; ok {
		return ns, nil
	}
	ns := &nodeState{key: key, target: Target{Component: component, Node: node}, base: NewBaselines(m.cfg.Window.Std())}
	for _, sig := range Signals {
		st, err := newSignalState(m.cfg, sig, m.interval)
		if err != nil {
			return nil, err
		}
		ns.signals = append(ns.signals, st)
		if st.det != nil {
			m.nm.firing.WithLabelValues(component, node, sig).Set(0)
			m.nm.alerts.WithLabelValues(component, node, sig)
		}
	}
	m.nm.errors.WithLabelValues(component, node)
	m.nodes[key] = ns
	return ns, nil
}

// newIncarnationLocked starts ns's windows again for a new process: its
// samples and profiles say nothing of the old one's. A firing alert stays
// firing until the new windows judge it (as across soakd's own restarts).
func (m *Monitor) newIncarnationLocked(now time.Time, ns *nodeState, incarnation string) {
	ns.incarnation, ns.since = incarnation, now
	ns.base = NewBaselines(m.cfg.Window.Std())
	for i, st := range ns.signals {
		fresh, err := newSignalState(m.cfg, st.name, m.interval)
		if err != nil {
			continue // the same config built it once
		}
		fresh.fsm, fresh.alert, fresh.evidence = st.fsm, st.alert, st.evidence
		ns.signals[i] = fresh
	}
	m.nm.restarts.WithLabelValues(ns.target.Component, ns.target.Node).Inc()
}

// nodeFiring is an alert a node's judgement fired, waiting for its
// evidence.
type nodeFiring struct {
	st *signalState
	ev Evaluation
}

// tickNodes samples and judges every target. Profiles are fetched outside
// the monitor's lock: a slow node must not hold up /api/v1/status.
func (m *Monitor) tickNodes(now time.Time) {
	if m.o.Targets == nil {
		return
	}
	for _, t := range m.o.Targets() {
		m.tickNode(now, t)
	}
}

func (m *Monitor) tickNode(now time.Time, t Target) {
	ctx, cancel := context.WithTimeout(context.Background(), m.nodeTimeout())
	defer cancel()
	r, inc, err := m.ts.read(ctx, t, now)
	m.mu.Lock()
	ns, nerr := m.nodeLocked(t.Component, t.Node)
	if nerr != nil {
		m.mu.Unlock()
		m.log.Error("node leak state", "node", t.Node, "err", nerr)
		return
	}
	ns.target = t
	if err != nil {
		m.nm.errors.WithLabelValues(t.Component, t.Node).Inc()
		m.mu.Unlock()
		m.log.Debug("node leak sample failed", "node", ns.key, "err", err)
		return
	}
	if inc != ns.incarnation || ns.since.IsZero() {
		m.newIncarnationLocked(now, ns, inc)
	}
	warm := now.Sub(ns.since) >= m.o.Warmup
	var fired []nodeFiring
	for _, st := range ns.signals {
		v, ok := r.Value(st.name)
		if !ok {
			continue
		}
		m.nm.value.WithLabelValues(t.Component, t.Node, st.name).Set(v)
		m.nm.samples.WithLabelValues(t.Component, t.Node, st.name).Inc()
		if !warm {
			continue
		}
		st.ring.Add(Sample{T: now, V: v})
		if st.det == nil {
			continue
		}
		main, ev, tr := st.judge(now, v, &m.js)
		if !main.Insufficient {
			m.nm.slope.WithLabelValues(t.Component, t.Node, st.name).Set(main.Slope)
		}
		switch tr {
		case Fired:
			fired = append(fired, nodeFiring{st, ev})
		case Resolved:
			m.resolveNodeLocked(now, ns, st, ev)
		}
	}
	due := warm && ns.base.Due(now)
	base := ns.base
	m.mu.Unlock()

	if due {
		if snap, err := m.ts.snapshot(ctx, t, now); err != nil {
			m.log.Warn("node baseline profile failed", "node", ns.key, "err", err)
		} else {
			m.mu.Lock()
			base.Add(snap)
			m.mu.Unlock()
		}
	}
	for _, f := range fired {
		m.fireNode(now, ns, base, f)
	}
}

// nodeTimeout bounds one node's sample: a hung node costs at most this of
// a tick.
func (m *Monitor) nodeTimeout() time.Duration {
	return min(max(m.interval, time.Second), 10*time.Second)
}

// fireNode captures the node's evidence and raises its alert. Only the
// monitor's tick goroutine fires and resolves, so nothing changes st
// between the judgement and this.
func (m *Monitor) fireNode(now time.Time, ns *nodeState, base *Baselines, f nodeFiring) {
	st, ev, t := f.st, f.ev, ns.target
	name := AlertNames[st.name]
	id := now.UTC().Format("20060102T150405Z") + "-" + st.name + "-" + sanitize(ns.key)
	th := st.det.Config().Threshold

	ctx, cancel := context.WithTimeout(context.Background(), 3*m.nodeTimeout())
	defer cancel()
	evidence := ""
	var sum Summary
	snapNow, err := m.ts.snapshot(ctx, t, now)
	m.mu.Lock()
	then, haveBase := base.At(now.Add(-m.cfg.Window.Std()))
	m.mu.Unlock()
	if err != nil {
		m.log.Error("node evidence capture failed", "node", ns.key, "err", err)
	} else {
		if !haveBase {
			m.log.Warn("no baseline profile of the node yet; evidence compares now with now", "node", ns.key)
			then = snapNow
		}
		leakProf, lerr := m.ts.leakProfile(ctx, t)
		if lerr != nil {
			m.log.Warn("node goroutineleak profile failed", "node", ns.key, "err", lerr)
		}
		evidence, sum, err = WriteEvidence(m.o.EvidenceDir, m.cfg.Evidence.Keep, EvidenceInput{
			AlertID: id, AlertName: name, Signal: st.name, RunID: m.o.RunID, FiredAt: now,
			Evaluation: ev, Threshold: th, Base: then, Now: snapNow, Node: ns.key, GoroutineLeak: leakProf})
		if err != nil {
			m.log.Error("node evidence bundle failed", "node", ns.key, "err", err)
		}
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	st.evidence = evidence
	labels := map[string]string{"severity": severity(st.name), "run_id": m.o.RunID, "signal": st.name, "node": t.Node}
	if t.Component != "" {
		labels["component"] = t.Component
	}
	st.alert = alert.Alert{
		Name:   name,
		Labels: labels,
		Annotations: map[string]string{
			"summary": fmt.Sprintf("node %s is leaking %s %s/min", ns.key, st.name, m.fmt(st.name, ev.Slope*60)),
			"description": fmt.Sprintf("In the node process %s (%s), not in soakd: %s", ns.key, t.PprofURL,
				m.describe(st, ev, sum)),
			"evidence": evidence,
			"window":   ev.Window.String(),
		},
		StartsAt: now,
	}
	m.nm.firing.WithLabelValues(t.Component, t.Node, st.name).Set(1)
	m.nm.alerts.WithLabelValues(t.Component, t.Node, st.name).Inc()
	m.persistLocked()
	m.o.Notify(st.alert)
	m.o.Event(EventLeakAlertFired, map[string]any{"alertname": name, "signal": st.name, "node": ns.key,
		"window": ev.Window.String(), "slope_per_second": ev.Slope, "lower_per_second": ev.Lower,
		"threshold_per_second": th, "evidence": evidence})
}

func (m *Monitor) resolveNodeLocked(now time.Time, ns *nodeState, st *signalState, ev Evaluation) {
	st.alert.EndsAt = now
	st.evidence = ""
	m.nm.firing.WithLabelValues(ns.target.Component, ns.target.Node, st.name).Set(0)
	m.persistLocked()
	m.o.Notify(st.alert)
	m.o.Event(EventLeakAlertResolved, map[string]any{"alertname": st.alert.Name, "signal": st.name, "node": ns.key,
		"slope_per_second": ev.Slope})
}

// restoreNodeLocked re-adopts a node's alert an earlier incarnation of
// soakd left firing: it resolves when the node's windows say so.
func (m *Monitor) restoreNodeLocked(s savedAlert, a alert.Alert) {
	ns, err := m.nodeLocked(a.Labels["component"], a.Labels["node"])
	if err != nil {
		return
	}
	for _, st := range ns.signals {
		if st.name != s.Signal {
			continue
		}
		if !a.Firing() || st.det == nil {
			if a.Firing() { // no longer judged: resolve it now
				a.EndsAt = m.o.Clock.Now()
			}
			m.o.Notify(a)
			return
		}
		st.fsm.State, st.fsm.Streak = Firing, 0
		st.fsm.ActiveAt, st.fsm.Since = a.StartsAt, a.StartsAt
		st.alert, st.evidence = a, a.Annotations["evidence"]
		m.nm.firing.WithLabelValues(ns.target.Component, ns.target.Node, st.name).Set(1)
		m.o.Restore(a)
		m.o.Event(EventLeakAlertRestored, map[string]any{"alertname": a.Name, "signal": s.Signal, "node": ns.key,
			"starts_at": a.StartsAt, "evidence": st.evidence})
	}
}

// nodeAlertsLocked lists every node's alert, firing or just resolved, in
// a stable order, for the state file.
func (m *Monitor) nodeAlertsLocked() []savedAlert {
	var out []savedAlert
	for _, key := range slices.Sorted(maps.Keys(m.nodes)) {
		for _, st := range m.nodes[key].signals {
			if st.alert.Name != "" {
				out = append(out, saveAlert(st.name, st.alert))
			}
		}
	}
	return out
}

// resolveNodesLocked resolves every node's firing alert (ResolveAll).
func (m *Monitor) resolveNodesLocked(now time.Time, reason string) {
	for _, key := range slices.Sorted(maps.Keys(m.nodes)) {
		ns := m.nodes[key]
		for _, st := range ns.signals {
			if st.alert.Name == "" || !st.alert.Firing() {
				continue
			}
			a := st.alert
			a.Annotations = maps.Clone(a.Annotations)
			a.Annotations["description"] += " Resolved by soakd: " + reason + "."
			a.EndsAt = now
			st.alert, st.evidence = a, ""
			st.fsm.State, st.fsm.Streak = Inactive, 0
			m.nm.firing.WithLabelValues(ns.target.Component, ns.target.Node, st.name).Set(0)
			m.o.Notify(a)
			m.o.Event(EventLeakAlertResolved, map[string]any{"alertname": a.Name, "signal": st.name, "node": key, "reason": reason})
		}
	}
}

// forgetNodesLocked drops node resolutions older than resolvedKeep; it
// reports whether any was dropped.
func (m *Monitor) forgetNodesLocked(now time.Time) bool {
	dirty := false
	for _, ns := range m.nodes {
		for _, st := range ns.signals {
			if st.alert.Name != "" && !st.alert.Firing() && now.Sub(st.alert.EndsAt) >= resolvedKeep {
				st.alert, dirty = alert.Alert{}, true
			}
		}
	}
	return dirty
}

// nodeFiringLocked lists the nodes' firing alerts.
func (m *Monitor) nodeFiringLocked() []FiringAlert {
	var out []FiringAlert
	for _, key := range slices.Sorted(maps.Keys(m.nodes)) {
		for _, st := range m.nodes[key].signals {
			if st.fsm.State == Firing {
				out = append(out, FiringAlert{Name: AlertNames[st.name], Signal: st.name, Node: key, Since: st.fsm.Since,
					Evidence: st.evidence, Slope: st.last.Slope})
			}
		}
	}
	return out
}

// sanitize makes a node's key fit in a directory name.
func sanitize(key string) string {
	b := []byte(key)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	return string(b)
}

// newTargetSampler is the HTTP client of the node samples: its own
// connection pool, a few idle connections per node.
func newTargetSampler() *targetSampler {
	return &targetSampler{client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2}}}
}
