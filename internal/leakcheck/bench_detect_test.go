package leakcheck

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkEvaluate measures one evaluation of the default window (30m at
// 15s, 121 samples, 7260 pairs) of heap-like noise: "slide" is production's
// steady state (one new sample per evaluation), "cold" a detector that has
// never seen the window (a full rebuild).
func BenchmarkEvaluate(b *testing.B) {
	run := func(b *testing.B, cold bool) {
		d, err := NewDetector(SignalHeap, simConfig(heapThr))
		if err != nil {
			b.Fatal(err)
		}
		ring := NewRing(RingCapacity(tWindow, tInterval))
		buf := make([]Sample, 0, ring.Cap())
		noise := newNoise(heapClean, 1)
		now := tEpoch
		add := func() {
			now = now.Add(tInterval)
			ring.Add(Sample{T: now, V: 50*mib + noise.at(now.Sub(tEpoch).Seconds(), tInterval.Seconds())})
		}
		for range 400 {
			add()
			d.Evaluate(now, ring.Samples(buf[:0]))
		}
		b.ReportAllocs()
		for b.Loop() {
			if cold {
				d = &Detector{signal: d.signal, cfg: d.cfg}
			} else {
				add()
			}
			buf = ring.Samples(buf[:0])
			d.Evaluate(now, buf)
		}
	}
	b.Run("slide", func(b *testing.B) { run(b, false) })
	b.Run("cold", func(b *testing.B) { run(b, true) })
}

// BenchmarkDetectionLatency measures, by simulation, how long after a heap
// leak starts the default detector (30m window, 15s interval, 0.99, for 3)
// fires, for leak rates of 1.5–16× the 1 MiB/min threshold on top of the
// tests' GC-sawtooth noise: the mean over 5 seeds, reported as
// s_to_fire_<ratio>x, next to the noiseless prediction
// (s_predicted_<ratio>x). Nothing here is a constant: change the detector
// and these move.
func BenchmarkDetectionLatency(b *testing.B) {
	cfg := simConfig(heapThr)
	for b.Loop() {
		for _, r := range []float64{1.5, 2, 4, 8, 16} {
			rate := r * heapThr
			pred := PredictedDetection(cfg, tInterval, rate, tFor)
			var sum time.Duration
			const seeds = 5
			for seed := range uint64(seeds) {
				sg := synthSignal{base: 50 * mib, noise: heapNoise, leakAt: preLeak, shape: linearGrowth(rate), end: preLeak + 2*tWindow}
				fired := simulate(b, cfg, sg, seed).at(Fired, tEpoch.Add(preLeak))
				if len(fired) == 0 {
					b.Fatalf("%v× seed %d never fired", r, seed)
				}
				sum += fired[0]
			}
			b.ReportMetric((sum / seeds).Seconds(), fmt.Sprintf("s_to_fire_%gx", r))
			b.ReportMetric(pred.Seconds(), fmt.Sprintf("s_predicted_%gx", r))
		}
	}
}
