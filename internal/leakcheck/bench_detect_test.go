package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
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
// 3: the detector before leakcheck.windows) as s_to_fire_<ratio>x, and
// with the default leakcheck.windows beside it as windows_s_to_fire_<ratio>x;
// heap leaks of 1.5–16× the 1 MiB/min threshold on the tests' GC-sawtooth
// noise, a goroutine leak of 20/min (threshold 10/min), and 0.2 MiB/min
// with the threshold at 0.1 MiB/min; the mean over 5 seeds, next to the
// noiseless prediction of the main window (s_predicted_<ratio>x). Nothing
// here is a constant: change the detector and these move.
func BenchmarkDetectionLatency(b *testing.B) {
	cfg := simConfig(heapThr)
	mean := func(lc config.LeakCheck, thr float64, sg synthSignal) time.Duration {
		var sum time.Duration
		const seeds = 5
		for seed := range uint64(seeds) {
			fired, _ := replayWindows(newWindowSet(b, thr, lc), sg.samples(seed), tEpoch.Add(sg.leakAt))
			if len(fired) == 0 {
				b.Fatalf("%+v seed %d never fired", sg, seed)
			}
			sum += fired[0]
		}
		return sum / seeds
	}
	for b.Loop() {
		for _, r := range []float64{1.5, 2, 4, 8, 16} {
			sg := synthSignal{base: 50 * mib, noise: heapNoise, leakAt: preLeak, shape: linearGrowth(r * heapThr), end: preLeak + 2*tWindow}
			b.ReportMetric(mean(mainAlone, heapThr, sg).Seconds(), fmt.Sprintf("s_to_fire_%gx", r))
			b.ReportMetric(mean(defaultLeakCheck, heapThr, sg).Seconds(), fmt.Sprintf("windows_s_to_fire_%gx", r))
			b.ReportMetric(PredictedDetection(cfg, tInterval, r*heapThr, tFor).Seconds(), fmt.Sprintf("s_predicted_%gx", r))
		}
		gor := synthSignal{base: 200, noise: gorNoise, integer: true, leakAt: preLeak, shape: linearGrowth(2 * gorThr), end: preLeak + 2*tWindow}
		b.ReportMetric(mean(mainAlone, gorThr, gor).Seconds(), "s_to_fire_goroutines_2x")
		b.ReportMetric(mean(defaultLeakCheck, gorThr, gor).Seconds(), "windows_s_to_fire_goroutines_2x")
		slowThr := 0.1 * mib / 60
		slow := synthSignal{base: 50 * mib, noise: noiseModel{sd: 64 << 10}, leakAt: 2*time.Hour + 5*time.Minute,
			shape: linearGrowth(2 * slowThr), end: 2*time.Hour + 5*time.Minute + 2*time.Hour}
		b.ReportMetric(mean(mainAlone, slowThr, slow).Seconds(), "s_to_fire_slow_0.2_at_0.1")
		b.ReportMetric(mean(defaultLeakCheck, slowThr, slow).Seconds(), "windows_s_to_fire_slow_0.2_at_0.1")
	}
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
// runs (SOAKD_FAR_RUNS, default 100) per signal with the soak noise of
// each (GC sawtooth, wander, spikes, fault bumps), by the window that
// fired them: false_alarms_<signal>_<window> should be 0. The runs are
// spread over the machine's cores.
func BenchmarkFalseAlarms(b *testing.B) {
	runs := farRuns()
	for b.Loop() {
		for _, c := range []struct {
			name    string
			thr     float64
			noise   noiseModel
			base    float64
			integer bool
		}{{"heap", heapThr, heapClean, 50 * mib, false}, {"goroutines", gorThr, gorClean, 200, true}, {"fds", fdThr, fdClean, 40, true}} {
			var mu sync.Mutex
			byWindow := map[time.Duration]int{tWindow: 0}
			for _, w := range defaultLeakCheck.Windows {
				byWindow[w.Window.Std()] = 0
			}
			runsWith := 0
			var wg sync.WaitGroup
			seeds := make(chan uint64)
			for range runtime.NumCPU() {
				wg.Go(func() {
					for seed := range seeds {
						s := synthSignal{base: c.base, noise: c.noise, integer: c.integer, end: 72 * time.Hour}.samples(seed)
						_, by := replayWindows(newWindowSet(b, c.thr, defaultLeakCheck), s, tEpoch)
						mu.Lock()
						for _, w := range by {
							byWindow[w]++
						}
						if len(by) > 0 {
							runsWith++
						}
						mu.Unlock()
					}
				})
			}
			for seed := range uint64(runs) {
				seeds <- 1000 + seed
			}
			close(seeds)
			wg.Wait()
			for w, n := range byWindow {
				b.ReportMetric(float64(n), fmt.Sprintf("false_alarms_%s_%v", c.name, w))
			}
			b.ReportMetric(float64(runsWith), "runs_with_false_alarms_"+c.name)
		}
	}
}
