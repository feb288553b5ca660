package migration

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/soakd/soakd/internal/components/migration/codec"
)

type metrics struct {
	outcomes    *prometheus.CounterVec
	total       prometheus.Histogram
	downtime    *prometheus.HistogramVec
	rounds      prometheus.Histogram
	bytes       *prometheus.CounterVec
	zeroPages   prometheus.Counter
	cache       *prometheus.CounterVec
	throttle    prometheus.Gauge
	bandwidth   *prometheus.GaugeVec
	dirtyRate   prometheus.Gauge
	compression prometheus.Gauge
	limit       prometheus.Gauge
	violations  *prometheus.CounterVec
	flips       *prometheus.CounterVec
	ownership   prometheus.Histogram
	audits      *prometheus.CounterVec
	codecs      *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns = "soakd_migration_"
	m := &metrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "migrations_total",
			Help: "Finished migrations by outcome: ok (moved, verified), failed (rolled back: the guest runs on its source, unchanged), unknown (the commit's answer was lost; resolved out of band)."}, []string{"outcome"}),
		total: prometheus.NewHistogram(prometheus.HistogramOpts{Name: ns + "duration_seconds",
			Help: "Total time of a migration, first round to resume (or rollback).", Buckets: prometheus.ExponentialBuckets(0.05, 2, 14)}),
		downtime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: ns + "downtime_seconds",
			Help:    "Downtime of a migration that moved its guest: pause to resume (measure=pause_resume), and the guest's own largest heartbeat gap (measure=heartbeat).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}, []string{"measure"}),
		rounds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: ns + "rounds",
			Help: "Pre-copy rounds of a migration, the final one included.", Buckets: prometheus.LinearBuckets(1, 2, 12)}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "bytes_total",
			Help: "Guest pages sent: their size in memory (kind=raw) and on the wire after zero markers, deltas and compression (kind=wire)."}, []string{"kind"}),
		zeroPages: prometheus.NewCounter(prometheus.CounterOpts{Name: ns + "zero_pages_total",
			Help: "Zero pages sent as markers."}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "delta_cache_total",
			Help: "XBZRLE delta cache lookups of re-sent pages: hit (sent as a delta), miss (sent raw), overflow (a delta larger than its limit, sent raw)."}, []string{"result"}),
		throttle: prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "throttle_ratio",
			Help: "Share of the migrating guest's dirty rate held back by auto-converge in the last round."}),
		bandwidth: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ns + "bandwidth_bytes_per_second",
			Help: "Wire bandwidth of the last pre-copy round (kind=measured) and the predictor's forecast for the next (kind=predicted)."}, []string{"kind"}),
		dirtyRate: prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "dirty_rate_bytes_per_second",
			Help: "Rate at which the migrating guest dirtied pages during the last round."}),
		compression: prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "compression_ratio",
			Help: "Raw bytes over wire bytes of the last finished migration."}),
		limit: prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "downtime_limit_seconds",
			Help: "The configured downtime limit (components.migration.downtime_limit) pre-copy converges to."}),
		flips: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "ownership_flips_total",
			Help: "Owner-record flips at switch-over, by result: committed (claimed for the destination), unavailable (the store did not apply it; rolled back), refused (the record had changed; rolled back), unresolved (the answer was lost and the run stopped first), released (handed back to the source after the destination did not resume)."}, []string{"result"}),
		ownership: prometheus.NewHistogram(prometheus.HistogramOpts{Name: ns + "ownership_seconds",
			Help: "Time to claim a guest's owner record at switch-over, part of its downtime.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		audits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "ownership_audits_total",
			Help: "Audits of guests against the books and their owner records (after every migration and fault, and every minute), by result: clean, violation, skipped (the store did not answer)."}, []string{"result"}),
		codecs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "codec_total",
			Help: "Finished migrations by the page codec they used (configured, or chosen per migration from the link's capacity with compression auto)."}, []string{"codec"}),
		// Shared with the checkers (same name, help and labels).
		violations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "soakd_invariant_violations_total",
			Help: "Invariant violations found, by component and invariant."}, []string{"component", "invariant"}),
	}
	for _, o := range []string{OutcomeOK, OutcomeFailed, OutcomeUnknown} {
		m.outcomes.WithLabelValues(o)
	}
	for _, k := range []string{"raw", "wire"} {
		m.bytes.WithLabelValues(k)
	}
	for _, r := range []string{"hit", "miss", "overflow"} {
		m.cache.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.outcomes, m.total, m.downtime, m.rounds, m.bytes, m.zeroPages, m.cache,
		m.throttle, m.bandwidth, m.dirtyRate, m.compression, m.limit, m.flips, m.ownership, m.audits, m.codecs} {
		if err := reg.Register(c); err != nil {
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
	for _, r := range []string{flipCommitted, flipUnavailable, flipRefused, flipUnresolved, flipReleased} {
		m.flips.WithLabelValues(r)
	}
	for _, name := range codec.Names() {
		m.codecs.WithLabelValues(name)
	}
	for _, r := range []string{"clean", "violation", "skipped"} {
		m.audits.WithLabelValues(r)
	}
	for _, inv := range []string{InvariantPages, InvariantSourceFrozen, InvariantPlacement, InvariantOwnership} {
		m.violations.WithLabelValues("migration", inv)
	}
	return m, nil
}

func (m *metrics) roundObserved(r Round, d Decision) {
	if r.Took > 0 {
		m.bandwidth.WithLabelValues("measured").Set(float64(r.WireBytes) / r.Took.Seconds())
		m.dirtyRate.Set(float64(r.Dirtied) * PageSize / r.Took.Seconds())
	}
	m.bandwidth.WithLabelValues("predicted").Set(d.PredictedBandwidth)
	m.throttle.Set(d.Throttle)
}

func (m *metrics) migrationObserved(rep Report) {
	m.outcomes.WithLabelValues(rep.Outcome).Inc()
	m.total.Observe(rep.Total.Seconds())
	m.rounds.Observe(float64(len(rep.Rounds)))
	m.bytes.WithLabelValues("raw").Add(float64(rep.RawBytes))
	m.bytes.WithLabelValues("wire").Add(float64(rep.WireBytes))
	m.zeroPages.Add(float64(rep.ZeroPages))
	m.cache.WithLabelValues("hit").Add(float64(rep.Cache.Hits))
	m.cache.WithLabelValues("miss").Add(float64(rep.Cache.Misses))
	m.cache.WithLabelValues("overflow").Add(float64(rep.Cache.Overflows))
	if rep.WireBytes > 0 {
		m.compression.Set(float64(rep.RawBytes) / float64(rep.WireBytes))
	}
	if rep.Ownership > 0 {
		m.ownership.Observe(rep.Ownership.Seconds())
	}
	if rep.Moved() {
		m.downtime.WithLabelValues("pause_resume").Observe(rep.Downtime.Seconds())
		m.downtime.WithLabelValues("heartbeat").Observe(rep.HeartbeatGap.Seconds())
	}
}

// fleetCollector exports the fleet as it is at scrape time: per host,
// whether it is up and how many guests the books put on it, and the
// migrations in flight.
type fleetCollector struct {
	c                   *Cluster
	guests, up, flights *prometheus.Desc
}

func newFleetCollector(c *Cluster) *fleetCollector {
	const ns = "soakd_migration_"
	return &fleetCollector{c: c,
		guests:  prometheus.NewDesc(ns+"host_guests", "Guests on each host, as the books (and the owner records) say; a down host keeps its guests on the books until it restarts.", []string{"host"}, nil),
		up:      prometheus.NewDesc(ns+"host_up", "Whether each migration host is up (1) or crashed (0).", []string{"host"}, nil),
		flights: prometheus.NewDesc(ns+"in_flight", "Migrations in flight.", nil, nil)}
}

func (f *fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- f.guests
	ch <- f.up
	ch <- f.flights
}

func (f *fleetCollector) Collect(ch chan<- prometheus.Metric) {
	hosts, guests, inFlight := f.c.fleet()
	for i, h := range hosts {
		up := 0.0
		if h.Up() {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(f.up, prometheus.GaugeValue, up, h.Name())
		ch <- prometheus.MustNewConstMetric(f.guests, prometheus.GaugeValue, float64(guests[i]), h.Name())
	}
	ch <- prometheus.MustNewConstMetric(f.flights, prometheus.GaugeValue, float64(inFlight))
}
