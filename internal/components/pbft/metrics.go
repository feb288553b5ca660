package pbft

import (
	"errors"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/soakd/soakd/internal/components/pbft/protocol"
)

type metrics struct {
	sent        *prometheus.CounterVec
	rejected    *prometheus.CounterVec
	dropped     *prometheus.CounterVec
	batch       prometheus.Histogram
	executedSeq *prometheus.GaugeVec
	executed    *prometheus.CounterVec
	viewChanges *prometheus.CounterVec
	recovery    *prometheus.GaugeVec
	violations  *prometheus.CounterVec
}

// Reasons a message is rejected, exported at 0 from the start.
var rejectReasons = []string{"bad-mac", "bad-signature", "bad-request", "malformed", "wrong-view", "outside-watermarks",
	"equivocation", "bad-digest", "not-primary", "bad-new-view", "stale"}

func newMetrics(reg prometheus.Registerer, nodes []string) (*metrics, error) {
	const ns = "soakd_pbft_"
	m := &metrics{
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "messages_sent_total",
			Help: "Protocol messages replicas sent, by kind (a broadcast counts once)."}, []string{"kind"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "messages_rejected_total",
			Help: "Messages replicas rejected, by reason: bad-mac, bad-signature, bad-request (a request in a pre-prepare its client did not authenticate), malformed, wrong-view, outside-watermarks, equivocation (a second pre-prepare for one view and sequence number), bad-digest, not-primary, bad-new-view, stale."}, []string{"reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "messages_dropped_total",
			Help: "Messages dropped before the protocol saw them (where: queue-full, a peer link's queue; inbox-full, a replica's inbox), and a replica process's reports to soakd dropped with its event queue full (events)."}, []string{"where"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: ns + "batch_requests",
			Help: "Requests per executed batch.", Buckets: prometheus.ExponentialBuckets(1, 2, 8)}),
		executedSeq: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ns + "executed_seq",
			Help: "The last sequence number each replica executed."}, []string{"node"}),
		executed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "executed_total",
			Help: "Batches (kind=batches) and requests (kind=requests) replicas executed."}, []string{"kind"}),
		viewChanges: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "view_changes_total",
			Help: "Views each replica entered after the first (a new view it installed)."}, []string{"node"}),
		recovery: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ns + "recovery_seconds",
			Help: "After the last fault window closed: seconds to the first commit (phase=commit) and to the last request pending then (phase=drain); bounded by components.pbft.liveness, pbft_liveness when missed."}, []string{"phase"}),
		violations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "soakd_invariant_violations_total",
			Help: "Invariant violations found, by component and invariant."}, []string{"component", "invariant"}),
	}
	for _, r := range rejectReasons {
		m.rejected.WithLabelValues(r)
	}
	for _, w := range []string{"queue-full", "inbox-full", "events"} {
		m.dropped.WithLabelValues(w)
	}
	for _, k := range []string{"batches", "requests"} {
		m.executed.WithLabelValues(k)
	}
	for _, n := range nodes {
		m.viewChanges.WithLabelValues(n)
	}
	if reg == nil {
		return m, nil
	}
	for _, col := range []prometheus.Collector{m.sent, m.rejected, m.dropped, m.batch, m.executedSeq, m.executed, m.viewChanges, m.recovery} {
		if err := reg.Register(col); err != nil {
			return nil, err
		}
	}
	if err := reg.Register(m.violations); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, err
		}
		m.violations = are.ExistingCollector.(*prometheus.CounterVec)
	}
	return m, nil
}

// statusCollector exports each running replica's view of the protocol at
// scrape time.
type statusCollector struct {
	c                                       *Cluster
	view, low, certs, up, inViewChange, pri *prometheus.Desc
}

func newStatusCollector(c *Cluster) *statusCollector {
	const ns = "soakd_pbft_"
	l := []string{"node"}
	return &statusCollector{c: c,
		view:         prometheus.NewDesc(ns+"view", "The view each running replica is in.", l, nil),
		low:          prometheus.NewDesc(ns+"low_watermark", "Each running replica's stable checkpoint (low watermark h).", l, nil),
		certs:        prometheus.NewDesc(ns+"certificates", "Entries in each running replica's message log; bounded by the watermark window over a 72-hour run.", l, nil),
		up:           prometheus.NewDesc(ns+"replica_up", "Whether each replica runs.", l, nil),
		inViewChange: prometheus.NewDesc(ns+"in_view_change", "Whether each running replica is changing view.", l, nil),
		pri:          prometheus.NewDesc(ns+"primary", "1 for the replica a running replica's view names primary.", l, nil),
	}
}

func (s *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{s.view, s.low, s.certs, s.up, s.inViewChange, s.pri} {
		ch <- d
	}
}

func (s *statusCollector) Collect(ch chan<- prometheus.Metric) {
	primaries := map[protocol.ReplicaID]bool{}
	for _, n := range s.c.nodes {
		running, st := n.state()
		up := 0.0
		if running {
			up = 1
			primaries[st.Primary] = true
			vc := 0.0
			if st.InViewChange {
				vc = 1
			}
			ch <- prometheus.MustNewConstMetric(s.view, prometheus.GaugeValue, float64(st.View), n.Name())
			ch <- prometheus.MustNewConstMetric(s.low, prometheus.GaugeValue, float64(st.LowWatermark), n.Name())
			ch <- prometheus.MustNewConstMetric(s.certs, prometheus.GaugeValue, float64(st.Certificates), n.Name())
			ch <- prometheus.MustNewConstMetric(s.inViewChange, prometheus.GaugeValue, vc, n.Name())
		}
		ch <- prometheus.MustNewConstMetric(s.up, prometheus.GaugeValue, up, n.Name())
	}
	for i, n := range s.c.nodes {
		v := 0.0
		if primaries[protocol.ReplicaID(i)] {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(s.pri, prometheus.GaugeValue, v, n.Name())
	}
}

// counterFamilies are the counters a replica's loop and links move, which
// a replica process reports to soakd (Event.Counters) by family and label.
func (m *metrics) counterFamilies() map[string]*prometheus.CounterVec {
	return map[string]*prometheus.CounterVec{"sent": m.sent, "rejected": m.rejected, "dropped": m.dropped,
		"view_changes": m.viewChanges}
}

// counts reads those counters, keyed "family/label". Their labels are
// bounded (message kinds, reasons, nodes).
func (m *metrics) counts() map[string]float64 {
	out := map[string]float64{}
	for fam, vec := range m.counterFamilies() {
		ch := make(chan prometheus.Metric, 256)
		vec.Collect(ch)
		close(ch)
		for x := range ch {
			var pb dto.Metric
			if x.Write(&pb) != nil || len(pb.GetLabel()) != 1 {
				continue
			}
			out[fam+"/"+pb.GetLabel()[0].GetValue()] = pb.GetCounter().GetValue()
		}
	}
	return out
}

// addCounts adds what a replica process counted since last (its previous
// report; a count below it means the process restarted and counts anew).
func (m *metrics) addCounts(now, last map[string]float64) {
	fams := m.counterFamilies()
	for k, v := range now {
		fam, label, ok := strings.Cut(k, "/")
		vec := fams[fam]
		if !ok || vec == nil {
			continue
		}
		d := v - last[k]
		if d < 0 {
			d = v
		}
		if d > 0 {
			vec.WithLabelValues(label).Add(d)
		}
	}
}
