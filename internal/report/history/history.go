package history

import (
	"math"
	"slices"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// Defaults and hard limits. Options may change the first three; the rest
// are fixed so the bounds in doc.go hold whatever the options.
const (
	DefaultStep      = 10 * time.Second
	DefaultMaxPoints = 1024
	DefaultMaxSeries = 256
	// MaxBuckets caps a histogram's finite buckets: a wider histogram is
	// not kept (Dropped), so one point never costs more than
	// 8*(MaxBuckets+2) bytes.
	MaxBuckets = 32
	// maxKeyBytes caps a series' name plus its canonical labels.
	maxKeyBytes = 512
	// maxIncarnations caps the incarnation list: past it the oldest but
	// the first is forgotten (a crash loop, not a run to report on).
	maxIncarnations = 1024
	// maxPointsLimit keeps step indexes in an int32.
	maxPointsLimit = 1 << 20
)

// Options bound a History.
type Options struct {
	// Select lists the families kept; nil means DefaultSelect.
	Select []Select
	// Step is the initial resolution (DefaultStep); it doubles as the run
	// grows past MaxPoints steps.
	Step time.Duration
	// MaxPoints caps the points of every series (DefaultMaxPoints).
	MaxPoints int
	// MaxSeries caps the series (DefaultMaxSeries).
	MaxSeries int
}

func (o Options) withDefaults() Options {
	if o.Select == nil {
		o.Select = DefaultSelect
	}
	if o.Step <= 0 {
		o.Step = DefaultStep
	}
	if o.MaxPoints <= 0 {
		o.MaxPoints = DefaultMaxPoints
	}
	o.MaxPoints = min(o.MaxPoints, maxPointsLimit)
	if o.MaxSeries <= 0 {
		o.MaxSeries = DefaultMaxSeries
	}
	return o
}

// MaxBytes is the most memory a History with these options holds in its
// series: every series at MaxPoints points of the widest kind (a histogram
// of MaxBuckets buckets), plus its key, bounds and baseline.
func (o Options) MaxBytes() int64 {
	o = o.withDefaults()
	const perSeries = 2*maxKeyBytes + 3*8*(MaxBuckets+2) + 256 // key, labels, bounds, raw, headers
	perPoint := int64(4 + 8*(MaxBuckets+2))                    // start index and cells
	return int64(o.MaxSeries) * (perSeries + int64(o.MaxPoints)*perPoint)
}

// History is the bounded, downsampled time series of a run: at most
// MaxSeries series of at most MaxPoints points each, at one uniform step
// that doubles whenever the run outgrows MaxPoints steps. It is a pure
// state machine (no clock, goroutine or file) and not safe for concurrent
// use; Recorder guards it.
type History struct {
	opts  Options
	kinds map[string]Kind // the selection: len(opts.Select) entries
	step  time.Duration
	// latest is the largest elapsed observed: an observation earlier than
	// it (a resumed run whose elapsed lags the last save) lands there, so
	// points only ever append.
	latest time.Duration
	series map[string]*series // by Key.mapKey; at most opts.MaxSeries entries
	// dropped counts samples not kept: over MaxSeries, a key over
	// maxKeyBytes, a histogram over MaxBuckets or whose buckets changed,
	// a family of another type than selected.
	dropped      int64
	incarnations []time.Duration // at most maxIncarnations
	// fromZero: a series without a baseline started at zero in this
	// process, so its first raw value is all increase. Set by Restarted,
	// and after the first Observe (a series first seen later was created
	// since); a new or loaded history's first Observe only sets baselines.
	fromZero bool
	scratch  []float64 // one sample's cells: MaxBuckets+5
	keyBuf   []byte    // the key being looked up: about maxKeyBytes
}

// New returns an empty history.
func New(opts Options) *History {
	opts = opts.withDefaults()
	h := &History{opts: opts, kinds: make(map[string]Kind, len(opts.Select)), step: opts.Step,
		series: map[string]*series{}, scratch: make([]float64, MaxBuckets+5)}
	for _, s := range opts.Select {
		h.kinds[s.Name] = s.Kind
	}
	return h
}

// series is one metric+labels. Its points are parallel: starts[i] is the
// step index of point i (increasing) and cells[i*width:(i+1)*width] its
// values: gauge min, max, sum, count, last; counter increase; histogram
// count, sum, then one cell per bucket. Both hold at most MaxPoints points.
type series struct {
	key    Key
	labels []*dto.LabelPair // sorted by name; what key.Labels encodes
	kind   Kind
	bounds []float64 // histogram finite upper bounds, at most MaxBuckets
	width  int
	starts []int32
	cells  []float64
	// raw is the last raw counter or histogram value (cells layout),
	// the baseline of the next increase; valid when hasRaw.
	raw    []float64
	hasRaw bool
}

const gaugeWidth = 5

func widthOf(kind Kind, buckets int) int {
	switch kind {
	case Gauge:
		return gaugeWidth
	case Counter:
		return 1
	}
	return 2 + buckets
}

// Observe folds one gather, taken at the run's elapsed soak time, into the
// step it falls in. Families not selected are ignored.
func (h *History) Observe(elapsed time.Duration, mfs []*dto.MetricFamily) {
	elapsed = max(elapsed, h.latest, 0)
	h.latest = elapsed
	if len(h.incarnations) == 0 {
		h.incarnations = append(h.incarnations, elapsed)
	}
	for elapsed/h.step >= time.Duration(h.opts.MaxPoints) {
		h.coarsen()
	}
	idx := int32(elapsed / h.step)
	for _, mf := range mfs {
		kind, ok := h.kinds[mf.GetName()]
		if !ok {
			continue
		}
		if !typeMatches(kind, mf.GetType()) {
			h.dropped += int64(len(mf.Metric))
			continue
		}
		for _, m := range mf.Metric {
			if !h.observeMetric(idx, mf.GetName(), kind, m) {
				h.dropped++
			}
		}
	}
	h.fromZero = true
}

func typeMatches(k Kind, t dto.MetricType) bool {
	switch k {
	case Gauge:
		return t == dto.MetricType_GAUGE || t == dto.MetricType_UNTYPED
	case Counter:
		return t == dto.MetricType_COUNTER
	case Histogram:
		return t == dto.MetricType_HISTOGRAM
	}
	return false
}

// observeMetric folds one sample; false when it was dropped. A sample
// that is not a number (NaN, ±Inf) is skipped, not dropped: it carries
// nothing to plot.
func (h *History) observeMetric(idx int32, name string, kind Kind, m *dto.Metric) bool {
	sample := h.scratch[:0]
	var hist *dto.Histogram
	switch {
	case kind == Gauge && m.Gauge != nil:
		v := m.Gauge.GetValue()
		sample = append(sample, v, v, v, 1, v)
	case kind == Gauge && m.Untyped != nil:
		v := m.Untyped.GetValue()
		sample = append(sample, v, v, v, 1, v)
	case kind == Counter && m.Counter != nil:
		sample = append(sample, m.Counter.GetValue())
	case kind == Histogram && m.Histogram != nil:
		hist = m.Histogram
		if finiteBuckets(hist) > MaxBuckets {
			return false
		}
		sample = append(sample, histCount(hist), hist.GetSampleSum())
		for _, b := range hist.Bucket[:finiteBuckets(hist)] {
			sample = append(sample, bucketCount(b))
		}
	default:
		return false // a metric without the value its family's type says
	}
	for i, v := range sample {
		// A histogram's sum turns NaN for good on one NaN observation;
		// its counts still say something (see below).
		if (math.IsNaN(v) || math.IsInf(v, 0)) && !(kind == Histogram && i == 1) {
			return true
		}
	}
	s := h.lookup(name, kind, m.Label, hist)
	if s == nil {
		return false
	}
	if kind == Histogram && (math.IsNaN(sample[1]) || math.IsInf(sample[1], 0)) {
		sample[1] = s.raw[1] // no increase of the sum; the baseline stays
	}
	if kind != Gauge {
		sample = s.increase(sample, h.fromZero)
	}
	s.add(idx, sample, h.opts.MaxPoints)
	return true
}

// finiteBuckets is the number of classic buckets less a trailing +Inf one,
// which only repeats the count.
func finiteBuckets(hist *dto.Histogram) int {
	n := len(hist.GetBucket())
	if n > 0 && math.IsInf(hist.Bucket[n-1].GetUpperBound(), 1) {
		n--
	}
	return n
}

func histCount(hist *dto.Histogram) float64 {
	if hist.SampleCountFloat != nil {
		return hist.GetSampleCountFloat()
	}
	return float64(hist.GetSampleCount())
}

func bucketCount(b *dto.Bucket) float64 {
	if b.CumulativeCountFloat != nil {
		return b.GetCumulativeCountFloat()
	}
	return float64(b.GetCumulativeCount())
}

// lookup finds or creates the series; nil when it may not be kept.
func (h *History) lookup(name string, kind Kind, labels []*dto.LabelPair, hist *dto.Histogram) *series {
	if !slices.IsSortedFunc(labels, compareLabels) {
		labels = slices.SortedFunc(slices.Values(labels), compareLabels)
	}
	h.keyBuf = appendMapKey(h.keyBuf[:0], name, labels)
	s := h.series[string(h.keyBuf)] // no allocation for the lookup
	if s == nil {
		if len(h.series) >= h.opts.MaxSeries || len(h.keyBuf) > maxKeyBytes+1 {
			if cap(h.keyBuf) > 2*maxKeyBytes {
				h.keyBuf = nil // one odd key does not keep a large buffer
			}
			return nil
		}
		key := Key{Name: name, Labels: string(h.keyBuf[len(name)+1:])}
		s = &series{key: key, kind: kind, labels: copyLabels(labels)}
		if hist != nil {
			s.bounds = make([]float64, finiteBuckets(hist))
			for i := range s.bounds {
				s.bounds[i] = hist.Bucket[i].GetUpperBound()
			}
		}
		s.width = widthOf(kind, len(s.bounds))
		s.raw = make([]float64, s.width)
		h.series[key.mapKey()] = s
		return s
	}
	if s.kind != kind {
		return nil
	}
	if hist != nil {
		// Increases of differently bounded buckets do not add up.
		if finiteBuckets(hist) != len(s.bounds) {
			return nil
		}
		for i, ub := range s.bounds {
			if hist.Bucket[i].GetUpperBound() != ub {
				return nil
			}
		}
	}
	return s
}

// increase turns a raw counter or histogram sample, in place, into its
// increase since the baseline, and makes the raw sample the new baseline.
// A value below the baseline is a reset (the process restarted): all of
// it is increase.
func (s *series) increase(raw []float64, fromZero bool) []float64 {
	baselineOnly := !s.hasRaw && !fromZero // what came before is not ours
	whole := !s.hasRaw || s.isReset(raw)
	for i, v := range raw {
		switch {
		case baselineOnly:
			raw[i] = 0
		case !whole:
			raw[i] = v - s.raw[i]
		}
		s.raw[i] = v
	}
	s.hasRaw = true
	return raw
}

func (s *series) isReset(raw []float64) bool {
	if raw[0] < s.raw[0] {
		return true // a counter, or a histogram's count
	}
	for i := 2; s.kind == Histogram && i < len(raw); i++ {
		if raw[i] < s.raw[i] {
			return true
		}
	}
	return false
}

// add folds one point's cells into the point at idx, the last or a new one.
func (s *series) add(idx int32, cells []float64, maxPoints int) {
	if n := len(s.starts); n > 0 && s.starts[n-1] == idx {
		s.merge(s.cells[(n-1)*s.width:n*s.width], cells)
		return
	}
	if len(s.starts) == cap(s.starts) {
		// Grow by doubling, to exactly MaxPoints points at most.
		c := min(max(2*cap(s.starts), 16), maxPoints)
		s.starts = append(make([]int32, 0, c), s.starts...)
		s.cells = append(make([]float64, 0, c*s.width), s.cells...)
	}
	s.starts = append(s.starts, idx)
	s.cells = append(s.cells, cells...)
}

// merge folds src, the later point, into dst.
func (s *series) merge(dst, src []float64) {
	if s.kind != Gauge {
		for i := range dst {
			dst[i] += src[i]
		}
		return
	}
	dst[0] = min(dst[0], src[0])
	dst[1] = max(dst[1], src[1])
	dst[2] += src[2]
	dst[3] += src[3]
	dst[4] = src[4]
}

// coarsen doubles the step and merges every series' points pairwise, in
// place: the run fits MaxPoints points again at a uniform resolution.
func (h *History) coarsen() {
	h.step *= 2
	for _, s := range h.series {
		s.halve()
	}
}

func (s *series) halve() {
	w, out := s.width, 0
	for i, idx := range s.starts {
		idx /= 2
		if out > 0 && s.starts[out-1] == idx {
			s.merge(s.cells[(out-1)*w:out*w], s.cells[i*w:(i+1)*w])
			continue
		}
		s.starts[out] = idx
		copy(s.cells[out*w:(out+1)*w], s.cells[i*w:(i+1)*w])
		out++
	}
	s.starts, s.cells = s.starts[:out], s.cells[:out*w]
}

// Restarted records that a new incarnation of the run began at elapsed
// (the process restarted, e.g. resumed after kill -9): every counter and
// histogram now counts from zero, so its next raw value is all increase.
// An elapsed before the latest observed is taken as the latest, where the
// new incarnation's points land.
func (h *History) Restarted(elapsed time.Duration) {
	elapsed = max(elapsed, h.latest, 0)
	h.fromZero = true
	for _, s := range h.series {
		s.hasRaw = false
	}
	if len(h.incarnations) >= maxIncarnations {
		h.incarnations = slices.Delete(h.incarnations, 1, 2)
	}
	h.incarnations = append(h.incarnations, elapsed)
}

// Clone returns a deep copy, for a reader while the original goes on.
func (h *History) Clone() *History {
	c := *h
	c.kinds = h.kinds // never written after New
	c.incarnations = slices.Clone(h.incarnations)
	c.scratch = make([]float64, len(h.scratch))
	c.keyBuf = nil
	c.series = make(map[string]*series, len(h.series))
	for k, s := range h.series {
		cs := *s
		cs.starts, cs.cells, cs.raw = slices.Clone(s.starts), slices.Clone(s.cells), slices.Clone(s.raw)
		c.series[k] = &cs // labels and bounds are never written after creation
	}
	return &c
}
