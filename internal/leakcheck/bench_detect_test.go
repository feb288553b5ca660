package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/soakd/soakd/internal/config"
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

// BenchmarkDetectionLatency measures, by simulation, how long after a leak
// starts the alert fires: with the main window alone (30m, 15s, 0.99, for
// 3: the detector before leakcheck.windows) as s_to_fire_<case>, and with
// the defaults (leakcheck.windows, confidences from the false-alarm
// budget) as windows_s_to_fire_<case>; the mean over 5 seeds. The noise is
// real: a recorded soak's signal (testdata/recorded), block-bootstrapped.
// Cases: heap leaks of 1.5–16× the 1 MiB/min threshold, a goroutine leak
// of 20/min (threshold 10/min), and 0.2 MiB/min with the threshold at 0.1
// MiB/min on a quiet heap (quietHeap: soakd's own heap swings too much to
// see 0.1 MiB/min at all). A run that fires before its leak starts is a
// false alarm and fails. Nothing here is a constant: change the detector
// and these move.
func BenchmarkDetectionLatency(b *testing.B) {
	heap, gor := realNoise(b, SignalHeap), realNoise(b, SignalGoroutines)
	mean := func(lc config.LeakCheck, signal string, thr float64, sg synthSignal) time.Duration {
		sg.interval = lc.Interval.Std() // sampled as that detector samples
		var sum time.Duration
		const seeds = 5
		for seed := range uint64(seeds) {
			fired, _ := replayWindows(newWindowSet(b, signal, thr, lc), sg.samples(seed), tEpoch.Add(sg.leakAt))
			if len(fired) == 0 || fired[0] < 0 {
				b.Fatalf("%+v seed %d: fired %v (before the leak: a false alarm)", sg, seed, fired)
			}
			sum += fired[0]
		}
		return sum / seeds
	}
	report := func(name, signal string, thr float64, sg synthSignal) {
		b.ReportMetric(mean(mainAlone, signal, thr, sg).Seconds(), "s_to_fire_"+name)
		b.ReportMetric(mean(defaultLeakCheck, signal, thr, sg).Seconds(), "windows_s_to_fire_"+name)
	}
	for b.Loop() {
		for _, r := range []float64{1.5, 2, 4, 8, 16} {
			report(fmt.Sprintf("%gx", r), SignalHeap, heapThr, synthSignal{base: 50 * mib, noise: heap, leakAt: preLeak,
				shape: linearGrowth(r * heapThr), end: preLeak + 2*tWindow})
		}
		report("goroutines_2x", SignalGoroutines, gorThr, synthSignal{base: 2200, noise: gor, integer: true, leakAt: preLeak,
			shape: linearGrowth(2 * gorThr), end: preLeak + 2*tWindow})
		slowThr := 0.1 * mib / 60
		report("slow_0.2_at_0.1", SignalHeap, slowThr, synthSignal{base: 50 * mib, noise: quietHeap, leakAt: 2*time.Hour + 5*time.Minute,
			shape: linearGrowth(2 * slowThr), end: 2*time.Hour + 5*time.Minute + 2*time.Hour})
	}
}

// inParallel calls run for the seeds first … first+runs-1, spread over the
// machine's cores.
func inParallel(runs int, first uint64, run func(seed uint64)) {
	var wg sync.WaitGroup
	seeds := make(chan uint64)
	for range runtime.NumCPU() {
		wg.Go(func() {
			for seed := range seeds {
				run(seed)
			}
		})
	}
	for seed := range uint64(runs) {
		seeds <- first + seed
	}
	close(seeds)
	wg.Wait()
}

// farRuns is how many simulated runs the false-alarm benchmarks replay:
// SOAKD_FAR_RUNS, default 100.
func farRuns() int {
	if n, err := strconv.Atoi(os.Getenv("SOAKD_FAR_RUNS")); err == nil && n > 0 {
		return n
	}
	return 100
}

// BenchmarkFalseAlarms counts, by simulation, the alerts the default
// detector (main window and leakcheck.windows) raises over clean 72-hour
// runs (SOAKD_FAR_RUNS, default 100) per signal (SOAKD_FAR_SIGNALS=fds,...
// picks some), by the window that fired
// them: false_alarms_<signal>_<window> should be 0. The noise is each
// signal's recorded soak, block-bootstrapped, with a day's load cycle,
// load phases and fault transients on top (realClean). The runs are spread
// over the machine's cores.
func BenchmarkFalseAlarms(b *testing.B) {
	runs := farRuns()
	for b.Loop() {
		for _, c := range []struct {
			name, signal string
			thr          float64
			noise        noiseModel
			base         float64
			integer      bool
		}{{"heap", SignalHeap, heapThr, realClean(b, SignalHeap), 50 * mib, false}, {"goroutines", SignalGoroutines, gorThr, realClean(b, SignalGoroutines), 2200, true},
			{"fds", SignalFDs, fdThr, realClean(b, SignalFDs), 120, true}} {
			if only := os.Getenv("SOAKD_FAR_SIGNALS"); only != "" && !slices.Contains(strings.Split(only, ","), c.name) {
				continue
			}
			var mu sync.Mutex
			byWindow := map[time.Duration]int{tWindow: 0}
			for _, w := range defaultLeakCheck.Windows {
				byWindow[w.Window.Std()] = 0
			}
			runsWith := 0
			inParallel(runs, 1000, func(seed uint64) {
				s := synthSignal{base: c.base, noise: c.noise, integer: c.integer, end: 72 * time.Hour,
					interval: defaultLeakCheck.Interval.Std()}.samples(seed)
				_, by := replayWindows(newWindowSet(b, c.signal, c.thr, defaultLeakCheck), s, tEpoch)
				mu.Lock()
				defer mu.Unlock()
				for _, w := range by {
					byWindow[w]++
				}
				if len(by) > 0 {
					runsWith++
				}
			})
			for w, n := range byWindow {
				b.ReportMetric(float64(n), fmt.Sprintf("false_alarms_%s_%v", c.name, w))
			}
			b.ReportMetric(float64(runsWith), "runs_with_false_alarms_"+c.name)
		}
	}
}
