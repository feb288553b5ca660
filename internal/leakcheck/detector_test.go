package leakcheck

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

func TestDetectorConfigDefaults(t *testing.T) {
	c := DetectorConfig{Threshold: 1, Window: tWindow, Interval: tInterval}.WithDefaults()
	// 30m at 15s holds 121 samples; half of them is 60.
	if c.Confidence != 0.99 || c.PlateauFraction != 0.25 || c.MinSamples != 60 {
		t.Fatalf("defaults: %+v", c)
	}
	short := DetectorConfig{Threshold: 1, Window: time.Minute, Interval: tInterval}.WithDefaults()
	if short.MinSamples != 8 {
		t.Fatalf("short window MinSamples = %d, want the floor 8", short.MinSamples)
	}
	for _, bad := range []DetectorConfig{
		{Window: tWindow}, // no threshold
		{Threshold: math.Inf(1), Window: tWindow},
		{Threshold: 1}, // no window
		{Threshold: 1, Window: tWindow, Confidence: 1},
		{Threshold: 1, Window: tWindow, Confidence: 0.4},
		{Threshold: 1, Window: tWindow, PlateauFraction: 1.5},
		{Threshold: 1, Window: tWindow, MinSamples: 2},
	} {
		if _, err := NewDetector("x", bad); err == nil {
			t.Errorf("NewDetector(%+v) accepted", bad)
		}
	}
}

// flatSamples returns n samples every interval ending at end.
func flatSamples(end time.Time, n int, v float64) []Sample {
	s := make([]Sample, n)
	for i := range s {
		s[i] = Sample{T: end.Add(-time.Duration(n-1-i) * tInterval), V: v + float64(i%3)}
	}
	return s
}

func TestEvaluateInsufficientData(t *testing.T) {
	d, err := NewDetector("goroutines", simConfig(gorThr))
	if err != nil {
		t.Fatal(err)
	}
	now := tEpoch.Add(10 * time.Hour)
	check := func(name string, s []Sample, want bool) {
		t.Helper()
		ev := d.Evaluate(now, s)
		if ev.Insufficient != want || (want && (ev.Suspect || ev.Reason != ReasonInsufficient)) {
			t.Errorf("%s: %+v, want insufficient %v", name, ev, want)
		}
	}
	check("empty", nil, true)
	check("59 samples", flatSamples(now, 59, 100), true)
	// 81 samples span 20 minutes: enough samples, but the window is not
	// covered back to now - 0.8·30m = now - 24m.
	check("20 of 30 minutes", flatSamples(now, 81, 100), true)
	check("24 of 30 minutes", flatSamples(now, 97, 100), false)
	check("full window", flatSamples(now, 121, 100), false)
	// Samples after now and before the window are not the window's.
	s := append(flatSamples(now.Add(-2*time.Hour), 200, 0), flatSamples(now, 121, 100)...)
	s = append(s, Sample{T: now.Add(time.Minute), V: 1e12})
	ev := d.Evaluate(now, s)
	if ev.N != 121 || ev.Slope > gorThr/10 {
		t.Errorf("window selection: N %d slope %v, want 121 samples and no slope", ev.N, ev.Slope)
	}
	// Non-finite values are dropped before counting: 41 of 121 left.
	s = flatSamples(now, 121, 100)
	for i := range s {
		if i%3 != 0 {
			s[i].V = math.NaN()
		}
	}
	check("two thirds NaN", s, true)
	// The oldest finite sample is what covers the window.
	s = flatSamples(now, 121, 100)
	for i := range 40 {
		s[i].V = math.Inf(1)
	}
	check("old end non-finite", s, true)
}

func TestEvaluationIsJSONSafe(t *testing.T) {
	d, _ := NewDetector("heap_live_bytes", simConfig(heapThr))
	now := tEpoch.Add(time.Hour)
	for _, s := range [][]Sample{nil, flatSamples(now, 8, 1), flatSamples(now, 121, 5e7)} {
		ev := d.Evaluate(now, s)
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("%+v: %v", ev, err)
		}
		var back Evaluation
		if err := json.Unmarshal(b, &back); err != nil || back.Reason != ev.Reason || back.N != ev.N {
			t.Fatalf("round trip %s: %+v %v", b, back, err)
		}
	}
}

// TestEvaluateAllocatesNothing: in steady state (the window sliding by one
// sample per evaluation, as in production) Evaluate reuses its buffers.
func TestEvaluateAllocatesNothing(t *testing.T) {
	d, _ := NewDetector("heap_live_bytes", simConfig(heapThr))
	ring := NewRing(RingCapacity(tWindow, tInterval))
	buf := make([]Sample, 0, ring.Cap())
	noise := newNoise(heapNoise, 1)
	now := tEpoch
	step := func() {
		now = now.Add(tInterval)
		ring.Add(Sample{T: now, V: 50*mib + noise.at(now.Sub(tEpoch).Seconds(), tInterval.Seconds())})
		buf = ring.Samples(buf[:0])
		d.Evaluate(now, buf)
	}
	for range 400 { // fill the window and let the buffers reach their size
		step()
	}
	if a := testing.AllocsPerRun(2000, step); a > 0 {
		t.Fatalf("%v allocations per sliding Evaluate, want 0", a)
	}
}

func TestPredictedDetection(t *testing.T) {
	cfg := simConfig(heapThr)
	var prev time.Duration = 1 << 62
	for _, r := range []float64{1.5, 2, 4, 8, 16} {
		p := PredictedDetection(cfg, tInterval, r*heapThr, tFor)
		// Sen's lower bound is about the 43rd percentile of the pairwise
		// slopes, and pairs before the leak have slope 0: no rate fires
		// before the leak fills about a third of the window.
		if p < tWindow/3 || p > tWindow || p >= prev {
			t.Errorf("%v×: predicted %v (previous %v), want decreasing, within [W/3, W]", r, p, prev)
		}
		prev = p
	}
	for _, r := range []float64{0.5, 1} {
		if p := PredictedDetection(cfg, tInterval, r*heapThr, tFor); p != -1 {
			t.Errorf("%v× threshold predicted to fire at %v, want never (-1)", r, p)
		}
	}
	if p := PredictedDetection(DetectorConfig{}, tInterval, 1, tFor); p != -1 {
		t.Errorf("invalid config: %v", p)
	}
}

// The detectable slope is the threshold on a noiseless window and grows
// with the noise: a heap wandering by 100 MiB (5-minute swings) hides a
// leak of a few MiB/min over 30 minutes.
func TestDetectableSlope(t *testing.T) {
	d, err := NewDetector(SignalHeap, simConfig(heapThr))
	if err != nil {
		t.Fatal(err)
	}
	series := func(noise noiseModel, seed uint64) []Sample {
		return synthSignal{base: 50 * mib, noise: noise, end: tWindow}.samples(seed)
	}
	now := tEpoch.Add(tWindow)
	if ev := d.Evaluate(now, series(noiseModel{}, 1)); ev.Insufficient || ev.Detectable != heapThr {
		t.Fatalf("noiseless: %+v, want detectable = threshold", ev)
	}
	quiet := d.Evaluate(now, series(heapNoise, 1)).Detectable
	loud := d.Evaluate(now, series(noiseModel{ouSD: 100 * mib, ouTau: 5 * time.Minute, sd: mib}, 1)).Detectable
	t.Logf("detectable: %.2f MiB/min with the tests' GC sawtooth, %.2f MiB/min with 100 MiB swings", quiet*60/mib, loud*60/mib)
	if !(quiet > heapThr && loud > 2*quiet && loud > 2*heapThr) {
		t.Fatalf("detectable %v (quiet) and %v (loud), threshold %v", quiet, loud, heapThr)
	}
}
