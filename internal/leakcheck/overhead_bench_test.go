package leakcheck_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/leakcheck"
	"github.com/soakd/soakd/internal/profiling"
)

func testLeakConfig(interval time.Duration) config.LeakCheck {
	cfg := config.Default().LeakCheck
	cfg.Interval = config.Duration(interval)
	return cfg
}

// BenchmarkMonitorTick is the cost of one sampling round: read every
// signal, evaluate every detector over a full window. At the default 15 s
// interval the CPU share is this figure divided by 15 s.
func BenchmarkMonitorTick(b *testing.B) {
	m, err := leakcheck.NewMonitor(leakcheck.MonitorOptions{Config: testLeakConfig(15 * time.Second), EvidenceDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil { // sets the warm-up origin
		b.Fatal(err)
	}
	defer m.Stop(context.Background())
	now := time.Now()
	// Fill a whole window first, so Evaluate sees a full ring.
	for range 130 {
		now = now.Add(15 * time.Second)
		m.Tick(now)
	}
	garbage := make([][]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		// A busy process GCs on its own; keep the forced GC out of the
		// figure by making garbage, untimed.
		b.StopTimer()
		for range 64 {
			garbage = append(garbage, make([]byte, 64<<10))
		}
		garbage = garbage[:0]
		b.StartTimer()
		now = now.Add(15 * time.Second)
		m.Tick(now)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(15*time.Second)*100, "%cpu_at_15s")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// busyWork allocates and encodes: a stand-in for soakd's load engine.
func busyWork(iters int) {
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range iters {
				m := make(map[string]any, 16)
				for k := range 16 {
					m[string(rune('a'+k))] = []int{i, k, i * k}
				}
				_, _ = json.Marshal(m)
			}
		})
	}
	wg.Wait()
}

// BenchmarkOverheadBusy measures, in one run, the CPU a busy process
// spends with and without soakd's self-observation: the leak monitor
// sampling every second (15x the default rate, to make its cost visible),
// the profiler (Pyroscope push to a local receiver plus 10 s snapshots),
// both accelerated, and both at the default settings. Rounds alternate with a bare baseline so drift on a shared
// machine hits both sides.
func BenchmarkOverheadBusy(b *testing.B) {
	ingest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer ingest.Close()
	const iters = 300_000 // several seconds a round: start-up costs amortize as in a long run
	busyWork(iters / 10)  // warm up: touch the heap before timing
	for _, v := range []struct {
		name             string
		monitor, profile bool
		interval, snaps  time.Duration
	}{
		{"monitor_1s", true, false, time.Second, 0},
		{"profiler_snap10s", false, true, 0, 10 * time.Second},
		{"both_accelerated", true, true, time.Second, 10 * time.Second},
		{"both_defaults", true, true, 15 * time.Second, 5 * time.Minute},
	} {
		b.Run(v.name, func(b *testing.B) {
			var base, inst time.Duration
			for b.Loop() {
				c0 := cpuTime()
				busyWork(iters)
				base += cpuTime() - c0

				ctx := context.Background()
				var stops []func()
				if v.monitor {
					m, err := leakcheck.NewMonitor(leakcheck.MonitorOptions{Config: testLeakConfig(v.interval), EvidenceDir: b.TempDir()})
					if err != nil {
						b.Fatal(err)
					}
					_ = m.Start(ctx)
					stops = append(stops, func() { _ = m.Stop(ctx) })
				}
				if v.profile {
					pcfg := config.Default().Profiling
					pcfg.Pyroscope.ServerAddress = ingest.URL
					pcfg.Snapshots.Interval = config.Duration(v.snaps)
					p, err := profiling.New(profiling.Options{Config: pcfg, Dir: b.TempDir(), RunID: "bench"})
					if err != nil {
						b.Fatal(err)
					}
					_ = p.Start(ctx)
					stops = append(stops, func() {
						sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
						defer cancel()
						_ = p.Stop(sctx)
					})
				}
				c0 = cpuTime()
				busyWork(iters)
				inst += cpuTime() - c0
				for _, stop := range stops {
					stop()
				}
			}
			b.ReportMetric(100*(inst.Seconds()-base.Seconds())/base.Seconds(), "%cpu_overhead")
			b.ReportMetric(base.Seconds()/float64(b.N), "cpu_s_base/op")
		})
	}
}
