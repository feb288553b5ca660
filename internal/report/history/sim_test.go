package history

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// soakRegistry registers the default selection's families with the label
// values a default run has: 5 leak signals, 3 components, 9 fault kinds,
// 4 PBFT replicas. It returns the registry's own gather, which the
// simulation then drives in place (gathering 26k times is not the point).
func soakRegistry(t testing.TB) []*dto.MetricFamily {
	reg := prometheus.NewRegistry()
	gv := func(name string, labels ...string) *prometheus.GaugeVec {
		v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: name}, labels)
		reg.MustRegister(v)
		return v
	}
	cv := func(name string, labels ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: name}, labels)
		reg.MustRegister(v)
		return v
	}
	hv := func(name string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: name, Buckets: buckets}, labels)
		reg.MustRegister(v)
		return v
	}
	signals := []string{"heap_live_bytes", "goroutines", "open_fds", "rss_bytes", "threads"}
	for _, name := range []string{"soakd_leak_signal_value", "soakd_leak_slope_per_second", "soakd_leak_slope_lower_bound_per_second",
		"soakd_leak_threshold_per_second", "soakd_leak_firing"} {
		v := gv(name, "signal")
		for _, s := range signals {
			v.WithLabelValues(s)
		}
	}
	det := gv("soakd_leak_detectable_slope_per_second", "signal", "window")
	for _, s := range signals {
		det.WithLabelValues(s, "30m")
		det.WithLabelValues(s, "6h")
	}
	ops := cv("soakd_ops_total", "component", "op", "outcome")
	dur := hv("soakd_op_duration_seconds", prometheus.ExponentialBuckets(100e-6, 2, 20), "component", "op")
	compOps := [][2]string{{"raft", "put"}, {"raft", "get"}, {"raft", "cas"}, {"pbft", "request"}, {"migration", "migrate"}}
	for _, co := range compOps {
		for _, outcome := range []string{"ok", "failed", "unknown"} {
			ops.WithLabelValues(co[0], co[1], outcome)
		}
		dur.WithLabelValues(co[0], co[1])
	}
	dropped := cv("soakd_ops_dropped_total", "component")
	load := []*prometheus.GaugeVec{gv("soakd_load_target_ops_per_second", "component"), gv("soakd_load_achieved_ops_per_second", "component"),
		gv("soakd_load_scheduled_ops_per_second", "component"), gv("soakd_load_below_target", "component")}
	for _, c := range []string{"raft", "pbft", "migration"} {
		dropped.WithLabelValues(c)
		for _, v := range load {
			v.WithLabelValues(c)
		}
	}
	faults := gv("soakd_faults_active", "kind")
	for _, k := range []string{"partition", "delay", "loss", "crash", "byzantine", "cpu", "memory", "fds", "disk"} {
		faults.WithLabelValues(k)
	}
	violations := cv("soakd_invariant_violations_total", "component", "invariant")
	violations.WithLabelValues("raft", "linearizable")
	violations.WithLabelValues("pbft", "agreement")
	violations.WithLabelValues("migration", "byte_exact")
	checks := cv("soakd_checks_total", "component", "checker", "result")
	for _, r := range []string{"ok", "illegal", "unknown"} {
		checks.WithLabelValues("raft", "linearizability", r)
	}
	downtime := hv("soakd_migration_downtime_seconds", prometheus.ExponentialBuckets(0.001, 2, 14), "measure")
	downtime.WithLabelValues("pause_resume")
	downtime.WithLabelValues("heartbeat")
	views := cv("soakd_pbft_view_changes_total", "node")
	for i := range 4 {
		views.WithLabelValues(fmt.Sprintf("pbft-%d", i))
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// soakDriver moves every series the way a run moves it: rates with noise,
// rare events, latencies spread over buckets, faults coming and going.
type soakDriver struct {
	rng     *rand.Rand
	mfs     []*dto.MetricFamily
	updates []func(elapsed time.Duration) // one per series, made once
	added   map[Key]float64               // ops_total increments over the run
}

func newSoakDriver(t testing.TB, seed uint64) *soakDriver {
	d := &soakDriver{rng: rand.New(rand.NewPCG(seed, seed)), mfs: soakRegistry(t), added: map[Key]float64{}}
	rate := map[string]float64{"raft/put": 225, "raft/get": 225, "raft/cas": 50, "pbft/request": 200, "migration/migrate": 1.0 / 60}
	load := map[string]float64{"raft": 500, "pbft": 200, "migration": 1.0 / 60}
	level := map[string]float64{"heap_live_bytes": 48e6, "goroutines": 310, "open_fds": 64, "rss_bytes": 160e6, "threads": 14}
	for _, mf := range d.mfs {
		for _, m := range mf.Metric {
			label := func(name string) string {
				for _, l := range m.Label {
					if l.GetName() == name {
						return l.GetValue()
					}
				}
				return ""
			}
			comp, op := label("component"), label("component")+"/"+label("op")
			var f func(time.Duration)
			switch mf.GetName() {
			case "soakd_leak_signal_value":
				base := level[label("signal")]
				f = func(time.Duration) { *m.Gauge.Value = math.Round(base * (1 + d.noise(0.02))) }
			case "soakd_leak_slope_per_second", "soakd_leak_slope_lower_bound_per_second", "soakd_leak_detectable_slope_per_second":
				f = func(time.Duration) { *m.Gauge.Value = d.noise(100) }
			case "soakd_leak_threshold_per_second":
				*m.Gauge.Value = 17476.266666666666
			case "soakd_ops_total":
				key, n, outcome := Key{mf.GetName(), canonicalLabels(m.Label)}, rate[op]*10, label("outcome")
				f = func(elapsed time.Duration) {
					inc := 0.0
					switch outcome {
					case "ok":
						inc = math.Max(0, math.Round(n+d.noise(math.Sqrt(n))))
					case "failed":
						inc = float64(d.rng.IntN(3))
					}
					*m.Counter.Value += inc
					if elapsed > 0 { // the first sample is only a baseline
						d.added[key] += inc
					}
				}
			case "soakd_op_duration_seconds":
				n := math.Round(rate[op] * 10)
				f = func(time.Duration) { d.latencies(m.Histogram, n, 1.2e-3) }
			case "soakd_load_target_ops_per_second":
				*m.Gauge.Value = load[comp]
			case "soakd_load_achieved_ops_per_second", "soakd_load_scheduled_ops_per_second":
				f = func(time.Duration) { *m.Gauge.Value = math.Round(load[comp]*(1+d.noise(0.01))*100) / 100 }
			case "soakd_faults_active":
				f = func(time.Duration) {
					if d.rng.IntN(30) == 0 {
						*m.Gauge.Value = 1 - *m.Gauge.Value
					}
				}
			case "soakd_checks_total":
				if label("result") == "ok" {
					f = func(time.Duration) { *m.Counter.Value += float64(d.rng.IntN(40)) }
				}
			case "soakd_migration_downtime_seconds":
				f = func(elapsed time.Duration) {
					if elapsed%time.Minute == 0 {
						d.latencies(m.Histogram, 1, 0.07)
					}
				}
			case "soakd_pbft_view_changes_total":
				f = func(time.Duration) {
					if d.rng.IntN(200) == 0 {
						*m.Counter.Value++
					}
				}
			}
			if f != nil {
				d.updates = append(d.updates, f)
			}
		}
	}
	return d
}

func (d *soakDriver) noise(scale float64) float64 { return d.rng.NormFloat64() * scale }

// restart zeroes every counter and histogram: the new process's.
func (d *soakDriver) restart() {
	for _, mf := range d.mfs {
		for _, m := range mf.Metric {
			if m.Counter != nil {
				*m.Counter.Value = 0
			}
			if h := m.Histogram; h != nil {
				*h.SampleCount, *h.SampleSum = 0, 0
				for _, b := range h.Bucket {
					*b.CumulativeCount = 0
				}
			}
		}
	}
}

// step advances the registry by one gather interval.
func (d *soakDriver) step(elapsed time.Duration) {
	for _, f := range d.updates {
		f(elapsed)
	}
}

// latencies adds n observations, log-normal around typical seconds, to h:
// 6 draws weighted to n, which is noisy enough and fast.
func (d *soakDriver) latencies(h *dto.Histogram, n, typical float64) {
	var per [MaxBuckets + 1]uint64
	draws := int(min(n, 6))
	w := math.Round(n / float64(draws))
	for range draws {
		v := typical * math.Exp(d.rng.NormFloat64()*0.6)
		b, _ := slices.BinarySearchFunc(h.Bucket, v, func(b *dto.Bucket, v float64) int { return cmp.Compare(b.GetUpperBound(), v) })
		per[b] += uint64(w)
		*h.SampleCount += uint64(w)
		*h.SampleSum += v * w
	}
	var cum uint64
	for i, b := range h.Bucket {
		cum += per[i]
		*b.CumulativeCount += cum
	}
}

// soakFileBound is the size doc.go promises for a 72-hour run of the
// default selection.
const soakFileBound = 1 << 20

// TestSoak72h records 72 hours at the default 10 s interval, with two
// kill -9 resumes through the file, and holds the history to its bounds.
func TestSoak72h(t *testing.T) {
	const interval, run = 10 * time.Second, 72 * time.Hour
	opts := Options{}
	path := filepath.Join(t.TempDir(), "history")
	d := newSoakDriver(t, 7)
	h := New(opts)
	started, inObserve := time.Now(), time.Duration(0)
	for elapsed := time.Duration(0); elapsed <= run; elapsed += interval {
		if elapsed == 20*time.Hour || elapsed == 50*time.Hour {
			if err := h.Save(path); err != nil {
				t.Fatal(err)
			}
			var err error
			if h, err = Load(path, opts); err != nil {
				t.Fatal(err)
			}
			h.Restarted(elapsed)
			d.restart()
		}
		d.step(elapsed)
		t0 := time.Now()
		h.Observe(elapsed, d.mfs)
		inObserve += time.Since(t0)
	}
	took := time.Since(started)
	if err := h.Save(path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	series := h.Series()
	t.Logf("72h: %d series, step %v, %d points each, %d dropped; simulated in %v, %v of it in Observe", len(series), h.Step(), len(series[0].Points), h.Dropped(), took, inObserve)
	t.Logf("memory %d bytes (bound %d for any series, Options.MaxBytes); file %d bytes (bound %d for this shape, %d for any, Options.MaxFileBytes)",
		h.MemoryBytes(), opts.MaxBytes(), st.Size(), soakFileBound, opts.MaxFileBytes())
	if os.Getenv("SOAKD_HISTORY_ENCODINGS") != "" {
		logEncodings(t, h)
	}

	if len(series) < 80 || h.Dropped() != 0 {
		t.Fatalf("%d series, %d samples dropped: the default shape should fit", len(series), h.Dropped())
	}
	if want := 320 * time.Second; h.Step() != want {
		t.Errorf("step %v, want %v (10 s doubled until 72 h fit in %d points)", h.Step(), want, DefaultMaxPoints)
	}
	for _, s := range series {
		if len(s.Points) > DefaultMaxPoints || len(s.Points) < int(run/h.Step()) {
			t.Errorf("%s: %d points", s.Key, len(s.Points))
		}
	}
	if h.MemoryBytes() > opts.MaxBytes() {
		t.Errorf("memory %d over the bound %d", h.MemoryBytes(), opts.MaxBytes())
	}
	if st.Size() > soakFileBound || st.Size() > opts.MaxFileBytes() {
		t.Errorf("file %d bytes, over the bound %d", st.Size(), soakFileBound)
	}
	if got := h.Incarnations(); !reflect.DeepEqual(got, []time.Duration{0, 20 * time.Hour, 50 * time.Hour}) {
		t.Errorf("incarnations %v", got)
	}
	// Every op counted once across the resumes: the increases add up to
	// what the three processes' counters counted.
	for _, s := range series {
		if s.Key.Name != "soakd_ops_total" {
			continue
		}
		var sum float64
		for _, p := range s.Points {
			sum += p.Increase
		}
		if want := d.added[s.Key]; sum != want {
			t.Errorf("%s: increases add up to %v, the counters counted %v", s.Key, sum, want)
		}
	}
	loaded, err := Load(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(loaded.Series(), series) {
		t.Error("the saved history loads back different")
	}
}

// logEncodings measures the candidates for the file body (why zstd at
// SpeedBetterCompression); SOAKD_HISTORY_ENCODINGS=1 runs it.
func logEncodings(t *testing.T, h *History) {
	var body bytes.Buffer
	if err := h.encodeBody(&body); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(body.Bytes())
	zw.Close()
	msg := fmt.Sprintf("body %d bytes as JSON; gzip -9 %d", body.Len(), gz.Len())
	for _, level := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault, zstd.SpeedBetterCompression, zstd.SpeedBestCompression} {
		var z bytes.Buffer
		start := time.Now()
		if err := h.encode(&z, level); err != nil {
			t.Fatal(err)
		}
		msg += fmt.Sprintf("; zstd %s %d (%v)", level, z.Len(), time.Since(start).Round(time.Millisecond))
	}
	t.Log(msg)
}
