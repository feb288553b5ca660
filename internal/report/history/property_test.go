package history

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

var propBounds = []float64{1, 2, 5}

var propSelect = []Select{{Name: "g", Kind: Gauge}, {Name: "c", Kind: Counter}, {Name: "h", Kind: Histogram}}

// modelSeries is the brute-force side: every raw sample's contribution,
// kept at full resolution, bucketed only at the end.
type modelSeries struct {
	kind    Kind
	raw     []float64 // last raw value (cells layout)
	hasRaw  bool
	samples []modelSample
}

type modelSample struct {
	at    time.Duration
	cells []float64 // gauge: the value; counter, histogram: the increase
}

// genSeries is a counter or histogram's raw value as the process holds it.
type genSeries struct {
	raw []float64 // counter [v]; histogram [count, sum, cumulative buckets...]
}

// TestPropertyDownsampledEqualsBruteForce drives random gauges, counters
// with resets and histograms, with restarts and reloads at random moments,
// through a History, and checks it against a recomputation from the raw
// samples at the final step.
func TestPropertyDownsampledEqualsBruteForce(t *testing.T) {
	for seed := range uint64(200) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { propertyRun(t, seed) })
	}
}

func propertyRun(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 42))
	opts := Options{Select: propSelect, Step: time.Duration(1+rng.IntN(10)) * time.Second,
		MaxPoints: 1 + rng.IntN(12), MaxSeries: 64}
	h := New(opts)
	model := map[string]*modelSeries{}
	gen := map[string]*genSeries{}
	fromZero := false
	elapsed := time.Duration(rng.Int64N(int64(opts.Step)))
	for range 1 + rng.IntN(400) {
		switch r := rng.IntN(100); {
		case r < 1: // kill -9 and resume: the process's counters restart
			h = reload(t, h)
			fallthrough
		case r < 3: // a restart without a file in between
			h.Restarted(elapsed)
			for _, m := range model {
				m.hasRaw = false
			}
			clear(gen)
			fromZero = true
		case r < 4: // reloaded by the same process: baselines only
			h = reload(t, h)
			for _, m := range model {
				m.hasRaw = false
			}
			fromZero = false
		}
		var mfs []*dto.MetricFamily
		fams := map[string]*dto.MetricFamily{
			"g": family("g", dto.MetricType_GAUGE), "c": family("c", dto.MetricType_COUNTER), "h": family("h", dto.MetricType_HISTOGRAM),
		}
		for _, name := range []string{"g", "c", "h"} {
			for i := range 3 {
				if rng.IntN(5) == 0 {
					continue // absent from this gather
				}
				key := fmt.Sprintf("%s%d", name, i)
				label := []string{"i", fmt.Sprint(i)}
				switch name {
				case "g":
					v := float64(rng.IntN(101) - 50)
					fams[name].Metric = append(fams[name].Metric, gaugeMetric(v, label...))
					modelFor(model, key, Gauge).samples = append(model[key].samples, modelSample{elapsed, []float64{v}})
				case "c":
					g := genFor(gen, key, 1)
					if rng.IntN(20) == 0 {
						g.raw[0] = float64(rng.IntN(5)) // reset
					} else {
						g.raw[0] += float64(rng.IntN(20))
					}
					fams[name].Metric = append(fams[name].Metric, counterMetric(g.raw[0], label...))
					modelFor(model, key, Counter).observe(elapsed, g.raw, fromZero)
				case "h":
					g := genFor(gen, key, 2+len(propBounds))
					if rng.IntN(20) == 0 {
						clear(g.raw) // reset
					}
					for range rng.IntN(6) { // new observations
						b := rng.IntN(len(propBounds) + 1) // its bucket; len = +Inf
						for j := b; j < len(propBounds); j++ {
							g.raw[2+j]++
						}
						g.raw[0]++
						g.raw[1] += float64(rng.IntN(7))
					}
					fams[name].Metric = append(fams[name].Metric, histMetric(propBounds, g.raw[2:], uint64(g.raw[0]), g.raw[1], label...))
					modelFor(model, key, Histogram).observe(elapsed, g.raw, fromZero)
				}
			}
			mfs = append(mfs, fams[name])
		}
		h.Observe(elapsed, mfs)
		fromZero = true
		elapsed += time.Duration(rng.IntN(3))*opts.Step + time.Duration(rng.Int64N(int64(opts.Step)))
	}
	checkAgainstModel(t, h, model)
}

func modelFor(model map[string]*modelSeries, key string, kind Kind) *modelSeries {
	if model[key] == nil {
		model[key] = &modelSeries{kind: kind}
	}
	return model[key]
}

func genFor(gen map[string]*genSeries, key string, width int) *genSeries {
	if gen[key] == nil {
		gen[key] = &genSeries{raw: make([]float64, width)}
	}
	return gen[key]
}

// observe is the increase rule, written from its definition: nothing for a
// baseline, all of it for a new series since a restart or after a reset,
// else the difference.
func (m *modelSeries) observe(at time.Duration, raw []float64, fromZero bool) {
	inc := make([]float64, len(raw))
	reset := m.hasRaw && raw[0] < m.raw[0]
	for i := 2; m.hasRaw && i < len(raw); i++ {
		reset = reset || raw[i] < m.raw[i]
	}
	for i := range raw {
		switch {
		case !m.hasRaw && !fromZero:
		case !m.hasRaw || reset:
			inc[i] = raw[i]
		default:
			inc[i] = raw[i] - m.raw[i]
		}
	}
	m.raw, m.hasRaw = slices.Clone(raw), true
	m.samples = append(m.samples, modelSample{at, inc})
}

func checkAgainstModel(t *testing.T, h *History, model map[string]*modelSeries) {
	t.Helper()
	step, maxPoints := h.Step(), h.opts.MaxPoints
	if h.Latest()/step >= time.Duration(maxPoints) || (step > h.opts.Step && h.Latest()/(step/2) < time.Duration(maxPoints)) {
		t.Fatalf("step %v for latest %v and %d points: not the finest that fits", step, h.Latest(), maxPoints)
	}
	got := h.Series()
	if len(got) != len(model) {
		t.Fatalf("%d series, model has %d", len(got), len(model))
	}
	for _, s := range got {
		m := model[s.Key.Name+s.Labels["i"]]
		if m == nil || m.kind != s.Kind {
			t.Fatalf("series %s not in the model", s.Key)
		}
		if len(s.Points) > maxPoints {
			t.Fatalf("%s: %d points, over %d", s.Key, len(s.Points), maxPoints)
		}
		want := m.points(step, s.Bounds)
		if len(want) != len(s.Points) {
			t.Fatalf("%s: %d points, want %d", s.Key, len(s.Points), len(want))
		}
		for i, p := range s.Points {
			p.Bounds = nil
			if fmt.Sprint(p) != fmt.Sprint(want[i]) {
				t.Fatalf("%s point %d at step %v:\n got %+v\nwant %+v", s.Key, i, step, p, want[i])
			}
		}
	}
}

// points buckets the model's samples at step.
func (m *modelSeries) points(step time.Duration, bounds []float64) []Point {
	var out []Point
	for _, smp := range m.samples {
		start := smp.at / step * step
		if len(out) == 0 || out[len(out)-1].Start != start {
			out = append(out, Point{Start: start, Min: smp.cells[0], Max: smp.cells[0]})
			if m.kind == Histogram {
				out[len(out)-1].Buckets = make([]float64, len(bounds))
			}
		}
		p := &out[len(out)-1]
		c := smp.cells
		switch m.kind {
		case Gauge:
			p.Min, p.Max, p.Sum, p.Count, p.Last = min(p.Min, c[0]), max(p.Max, c[0]), p.Sum+c[0], p.Count+1, c[0]
		case Counter:
			p.Increase += c[0]
		case Histogram:
			p.Count += c[0]
			p.Sum += c[1]
			for j := range bounds {
				p.Buckets[j] += c[2+j]
			}
		}
	}
	for i := range out {
		if m.kind != Gauge {
			out[i].Min, out[i].Max = 0, 0
		}
	}
	return out
}
