package leakcheck

import (
	"math/rand/v2"
	"testing"
	"time"
)

func BenchmarkEvaluate(b *testing.B) {
	cfg := DetectorConfig{Threshold: 1 << 20 / 60.0, Window: 30 * time.Minute, Interval: 15 * time.Second}
	run := func(b *testing.B, slide bool) {
		d, err := NewDetector("heap_live_bytes", cfg)
		if err != nil {
			b.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		ring := NewRing(RingCapacity(cfg.Window, cfg.Interval))
		t0 := time.Unix(1e9, 0)
		now := t0
		buf := make([]Sample, 0, ring.Cap())
		add := func() {
			now = now.Add(cfg.Interval)
			ring.Add(Sample{T: now, V: 50<<20 + rng.NormFloat64()*(1<<20)})
		}
		for range 121 {
			add()
		}
		b.ReportAllocs()
		for b.Loop() {
			if slide {
				add()
			} else {
				d = &Detector{signal: d.signal, cfg: d.cfg} // cold: rebuild every time
			}
			buf = ring.Samples(buf[:0])
			d.Evaluate(now, buf)
		}
	}
	b.Run("slide", func(b *testing.B) { run(b, true) })
	b.Run("cold", func(b *testing.B) { run(b, false) })
}
