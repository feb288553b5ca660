package load

import (
	"context"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/soakd/soakd/internal/config"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchGen(b *testing.B, rate float64) *Generator {
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	g, err := New(Options{Component: &fakeKV{}, Seed: 1, Metrics: m, Elapsed: func() time.Duration { return time.Hour + time.Since(start) },
		Load: config.RateLoad{Rate: rate, Mix: map[string]float64{"put": 0.45, "get": 0.45, "cas": 0.1}, Keys: 10000,
			Arrivals: "poisson", KeyDist: "uniform", MaxInFlight: 1024}})
	if err != nil {
		b.Fatal(err)
	}
	return g
}

// BenchmarkLoad drives an instant target at 1k, 5k and 20k ops/s for 5 s
// each and reports, measured in the same run: started/scheduled, how late
// ops start against their intended time (p50/p99), and the engine's CPU
// per op (dispatcher, worker hand-off, metrics, histograms; the target
// itself does nothing).
func BenchmarkLoad(b *testing.B) {
	for _, rate := range []float64{1000, 5000, 20000} {
		b.Run(fmt.Sprintf("rate=%.0f", rate), func(b *testing.B) {
			for b.Loop() {
				g := benchGen(b, rate)
				c0 := cpuTime()
				_ = g.Start(context.Background())
				time.Sleep(5 * time.Second)
				_ = g.Stop(context.Background())
				cpu := cpuTime() - c0
				s := g.Stats()
				b.ReportMetric(float64(s.Started)/float64(s.Scheduled), "achieved/scheduled")
				b.ReportMetric(float64(s.Started)/(rate*5), "achieved/target")
				b.ReportMetric(s.StartLag.P50*1e6, "lag_p50_us")
				b.ReportMetric(s.StartLag.P99*1e6, "lag_p99_us")
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(s.Started), "cpu_ns/op")
			}
		})
	}
}

// BenchmarkTenMillionOps runs 10 million operations as fast as the engine
// dispatches them and reports the heap after GC at each million: a bounded
// engine stays flat however long it runs.
func BenchmarkTenMillionOps(b *testing.B) {
	for b.Loop() {
		g := benchGen(b, 1e6) // the dispatcher never sleeps at this rate
		_ = g.Start(context.Background())
		var first, peak uint64
		var ms runtime.MemStats
		next := int64(1_000_000)
		start := time.Now()
		for g.Stats().Started < 10_000_000 {
			time.Sleep(50 * time.Millisecond)
			if g.Stats().Started >= next {
				runtime.GC()
				runtime.ReadMemStats(&ms)
				if first == 0 {
					first = ms.HeapAlloc
				}
				peak = max(peak, ms.HeapAlloc)
				next += 1_000_000
			}
		}
		_ = g.Stop(context.Background())
		s := g.Stats()
		b.ReportMetric(float64(s.Started)/time.Since(start).Seconds(), "ops/s")
		b.ReportMetric(float64(first)/(1<<20), "heap_MiB_at_1M")
		b.ReportMetric(float64(peak)/(1<<20), "heap_MiB_peak_to_10M")
	}
}
