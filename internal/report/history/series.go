package history

import (
	"math"
	"slices"
	"sort"
	"time"
)

// Series is one metric+labels as the report reads it.
type Series struct {
	Key    Key
	Labels map[string]string
	Kind   Kind
	// Step is every point's length: point i covers [Start, Start+Step).
	Step time.Duration
	// Bounds are a histogram's finite bucket upper bounds, increasing.
	Bounds []float64
	// Points are in time order; a step where the series was not observed
	// has no point.
	Points []Point
}

// Point is one step of a series. Which fields are set depends on the kind.
type Point struct {
	Start time.Duration
	// Gauge: the smallest, largest and latest sample.
	Min, Max, Last float64
	// Gauge: the number of samples and their sum. Histogram: the increase
	// of the observation count and of their sum.
	Count, Sum float64
	// Counter: the increase over the step.
	Increase float64
	// Histogram: the series' Bounds (shared: do not modify) and the
	// increase of the cumulative count of each bucket.
	Bounds  []float64
	Buckets []float64
}

// Mean is a gauge's mean sample or a histogram's mean observation; NaN
// when the point has none.
func (p Point) Mean() float64 {
	if p.Count == 0 {
		return math.NaN()
	}
	return p.Sum / p.Count
}

// Quantile estimates the q-quantile of a histogram point's observations
// the way Prometheus's histogram_quantile does: linear interpolation in
// the bucket the rank falls in (from 0 for the first bucket), the highest
// finite bound when it falls in the +Inf bucket. NaN when the point holds
// no observations or no finite bucket; -Inf for q < 0, +Inf for q > 1.
func (p Point) Quantile(q float64) float64 {
	switch {
	case math.IsNaN(q):
		return math.NaN()
	case q < 0:
		return math.Inf(-1)
	case q > 1:
		return math.Inf(1)
	case len(p.Bounds) == 0 || len(p.Buckets) != len(p.Bounds) || !(p.Count > 0):
		return math.NaN()
	}
	// Counts may be a hair off monotonic after float sums; Prometheus
	// forces them monotonic too.
	counts := slices.Clone(p.Buckets)
	for i := 1; i < len(counts); i++ {
		counts[i] = max(counts[i], counts[i-1])
	}
	total := max(p.Count, counts[len(counts)-1])
	rank := q * total
	b := sort.Search(len(counts), func(i int) bool { return counts[i] >= rank })
	if b == len(counts) {
		return p.Bounds[len(p.Bounds)-1]
	}
	if b == 0 && p.Bounds[0] <= 0 {
		return p.Bounds[0]
	}
	start, end, count := 0.0, p.Bounds[b], counts[b]
	if b > 0 {
		start = p.Bounds[b-1]
		count -= counts[b-1]
		rank -= counts[b-1]
	}
	return start + (end-start)*(rank/count)
}

// Series returns every series sorted by key, copied.
func (h *History) Series() []Series {
	out := make([]Series, 0, len(h.series))
	for _, s := range h.series {
		out = append(out, s.export(h.step))
	}
	slices.SortFunc(out, func(a, b Series) int { return a.Key.less(b.Key) })
	return out
}

func (s *series) export(step time.Duration) Series {
	e := Series{Key: s.key, Kind: s.kind, Step: step, Labels: make(map[string]string, len(s.labels)),
		Bounds: slices.Clone(s.bounds), Points: make([]Point, len(s.starts))}
	for _, l := range s.labels {
		e.Labels[l.GetName()] = l.GetValue()
	}
	var buckets []float64 // one backing array for the series' buckets
	if s.kind == Histogram {
		buckets = make([]float64, len(s.starts)*len(s.bounds))
	}
	for i, idx := range s.starts {
		c := s.cells[i*s.width : (i+1)*s.width]
		p := Point{Start: time.Duration(idx) * step}
		switch s.kind {
		case Gauge:
			p.Min, p.Max, p.Sum, p.Count, p.Last = c[0], c[1], c[2], c[3], c[4]
		case Counter:
			p.Increase = c[0]
		case Histogram:
			p.Count, p.Sum, p.Bounds = c[0], c[1], e.Bounds
			p.Buckets = buckets[i*len(s.bounds) : (i+1)*len(s.bounds) : (i+1)*len(s.bounds)]
			copy(p.Buckets, c[2:])
		}
		e.Points[i] = p
	}
	return e
}

// Step is the current resolution of every series.
func (h *History) Step() time.Duration { return h.step }

// Latest is the largest elapsed time observed.
func (h *History) Latest() time.Duration { return h.latest }

// Incarnations are the elapsed times at which each incarnation of the run
// began recording into this history (first the first), at most
// maxIncarnations of them.
func (h *History) Incarnations() []time.Duration { return slices.Clone(h.incarnations) }

// Dropped counts samples not kept (see History.dropped).
func (h *History) Dropped() int64 { return h.dropped }

// Len is the number of series.
func (h *History) Len() int { return len(h.series) }

// MemoryBytes is what the series hold now, counted as Options.MaxBytes
// counts it (capacities, not lengths), so a test can hold one to the other.
func (h *History) MemoryBytes() int64 {
	var n int64
	for _, s := range h.series {
		n += int64(len(s.key.Name)+len(s.key.Labels)) + 256
		for _, l := range s.labels {
			n += int64(len(l.GetName()) + len(l.GetValue()))
		}
		n += 8 * int64(cap(s.bounds)+cap(s.raw)+cap(s.cells))
		n += 4 * int64(cap(s.starts))
	}
	return n
}
