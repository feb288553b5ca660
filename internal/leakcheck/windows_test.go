package leakcheck

import (
	"math"
	"testing"
	"time"

	"github.com/soakd/soakd/internal/config"
)

// windowSet is a main detector and the extra windows of leakcheck.windows,
// combined as Monitor combines them.
type windowSet struct {
	main  *Detector
	extra []*extraWindow
}

// newWindowSet builds lc's windows (its interval and for are the tests'
// tInterval and tFor) with their confidences resolved as soakd does.
func newWindowSet(tb testing.TB, thr float64, lc config.LeakCheck) *windowSet {
	tb.Helper()
	mainConf, winConf, err := lc.Confidences()
	if err != nil {
		tb.Fatal(err)
	}
	mc := simConfig(thr)
	mc.Window, mc.Confidence = lc.Window.Std(), mainConf
	main, err := NewDetector("sim", mc)
	if err != nil {
		tb.Fatal(err)
	}
	ws := &windowSet{main: main}
	for i, w := range lc.Windows {
		x, err := newExtraWindow("sim", w, thr, winConf[i], tInterval, tFor)
		if err != nil {
			tb.Fatal(err)
		}
		ws.extra = append(ws.extra, x)
	}
	return ws
}

// replayWindows feeds s through ws and an alert with For = tFor, and
// returns the times of each firing (offset from ref) and which window
// fired it.
func replayWindows(ws *windowSet, s []Sample, ref time.Time) (fired []time.Duration, by []time.Duration) {
	fsm := AlertFSM{For: tFor}
	var scratch []Sample
	evs := make([]Evaluation, len(ws.extra))
	for i, p := range s {
		main := ws.main.Evaluate(p.T, s[:i+1])
		for j, x := range ws.extra {
			scratch, evs[j] = x.observe(p, scratch)
		}
		ev := decide(main, evs)
		if fsm.Observe(ev) == Fired {
			fired = append(fired, p.T.Sub(ref))
			by = append(by, ev.Window)
		}
	}
	return fired, by
}

// defaultLeakCheck is the embedded default's detector; mainAlone its main
// window alone at 0.99, the detector before leakcheck.windows.
var (
	defaultLeakCheck = config.Default().LeakCheck
	mainAlone        = config.LeakCheck{Window: config.Duration(tWindow), Confidence: 0.99}
)

// The default windows stay quiet over 72 hours of the clean soak noise
// (GC sawtooth, wander, spikes, 200 MiB fault bumps) of each signal.
func TestWindowsQuietOnClean72h(t *testing.T) {
	if testing.Short() {
		t.Skip("72 simulated hours per signal")
	}
	for _, c := range []struct {
		name  string
		thr   float64
		noise noiseModel
		base  float64
	}{{"heap", heapThr, heapClean, 50 * mib}, {"goroutines", gorThr, gorClean, 200}, {"fds", fdThr, fdClean, 40}} {
		for seed := range uint64(1) { // BenchmarkFalseAlarms runs 100 seeds
			ws := newWindowSet(t, c.thr, defaultLeakCheck)
			s := synthSignal{base: c.base, noise: c.noise, integer: c.name != "heap", end: 72 * time.Hour}.samples(seed + 1)
			if fired, by := replayWindows(ws, s, tEpoch); len(fired) > 0 {
				t.Errorf("%s seed %d: %d false alarms, first at %v on the %v window", c.name, seed+1, len(fired), fired[0], by[0])
			}
		}
	}
}

// A fast leak fires on the short window long before the main window could;
// a slow leak just above a low threshold fires on the long one.
func TestWindowsCatchFastAndSlowLeaks(t *testing.T) {
	fast := synthSignal{base: 50 * mib, noise: heapNoise, leakAt: preLeak, shape: linearGrowth(16 * heapThr), end: preLeak + 30*time.Minute}
	single, _ := replayWindows(newWindowSet(t, heapThr, mainAlone), fast.samples(1), tEpoch.Add(preLeak))
	multi, by := replayWindows(newWindowSet(t, heapThr, defaultLeakCheck), fast.samples(1), tEpoch.Add(preLeak))
	if len(single) == 0 || len(multi) == 0 {
		t.Fatalf("16× leak: fired %v (main window only), %v (with windows)", single, multi)
	}
	t.Logf("16× threshold: fired after %v on the main window alone, after %v on the %v window with the defaults", single[0], multi[0], by[0])
	if 2*multi[0] > single[0] || by[0] != 4*time.Minute {
		t.Errorf("16× leak fired after %v on the %v window, want on the 4m window in under half the main window's %v", multi[0], by[0], single[0])
	}

	slowThr := 0.1 * mib / 60
	slow := synthSignal{base: 50 * mib, noise: noiseModel{sd: 64 << 10}, leakAt: 2*time.Hour + 5*time.Minute,
		shape: linearGrowth(2 * slowThr), end: 2*time.Hour + 5*time.Minute + 90*time.Minute}
	multi, by = replayWindows(newWindowSet(t, slowThr, defaultLeakCheck), slow.samples(1), tEpoch.Add(slow.leakAt))
	if len(multi) == 0 {
		t.Fatal("0.2 MiB/min at a 0.1 MiB/min threshold never fired")
	}
	t.Logf("0.2 MiB/min at a 0.1 MiB/min threshold: fired after %v on the %v window", multi[0], by[0])
	if multi[0] > time.Hour {
		t.Errorf("slow leak fired after %v, want ≤ 1h", multi[0])
	}
}

// A window longer than maxWindowSamples intervals keeps every stride-th
// sample, so its memory stays fixed.
func TestExtraWindowDownsamples(t *testing.T) {
	x, err := newExtraWindow("sim", config.LeakWindow{Window: config.Duration(2 * time.Hour)}, 1, 0.99, time.Second, 3)
	if err != nil {
		t.Fatal(err)
	}
	if x.stride != 15 || x.ring.Cap() > maxWindowSamples+1 {
		t.Fatalf("2h at 1s: stride %d, capacity %d", x.stride, x.ring.Cap())
	}
	var scratch []Sample
	var ev Evaluation
	for i := range 3 * 3600 {
		scratch, ev = x.observe(Sample{T: tEpoch.Add(time.Duration(i) * time.Second), V: float64(i) / 30}, scratch)
	}
	if ev.Insufficient || math.Abs(ev.Slope-1.0/30) > 1e-9 || ev.N > maxWindowSamples+1 {
		t.Fatalf("after 3h: %+v", ev)
	}
}
