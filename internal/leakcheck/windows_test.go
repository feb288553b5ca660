package leakcheck

import (
	"cmp"
	"math"
	"slices"
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

// newWindowSet builds lc's windows at its interval (tInterval if unset;
// for is the tests' tFor) with their confidences resolved as soakd does.
func newWindowSet(tb testing.TB, signal string, thr float64, lc config.LeakCheck) *windowSet {
	tb.Helper()
	mainConf, winConf, err := lc.Confidences()
	if err != nil {
		tb.Fatal(err)
	}
	interval := cmp.Or(lc.Interval.Std(), tInterval)
	mc := simConfig(thr)
	mc.Window, mc.Confidence, mc.Interval = lc.Window.Std(), mainConf, interval
	main, err := NewDetector("sim", mc)
	if err != nil {
		tb.Fatal(err)
	}
	ws := &windowSet{main: main}
	for i, w := range lc.Windows {
		x, err := newExtraWindow(signal, w, thr, winConf[i], interval, tFor)
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
	growing := make([]bool, len(ws.extra))
	for i, p := range s {
		main := ws.main.Evaluate(p.T, s[:i+1])
		for j, x := range ws.extra {
			scratch, evs[j] = x.observe(p, scratch)
			growing[j] = x.growing
		}
		ev := decide(main, evs, growing)
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
	mainAlone        = config.LeakCheck{Interval: config.Duration(tInterval), Window: config.Duration(tWindow), Confidence: 0.99}
)

// The default windows stay quiet over 72 hours of each signal's realistic
// clean noise (a recorded soak, block-bootstrapped, with a day's load
// cycle, load phases and fault transients: realClean), sampled at the
// default interval; 24 hours under the race detector.
func TestWindowsQuietOnClean72h(t *testing.T) {
	if testing.Short() {
		t.Skip("72 simulated hours per signal")
	}
	hours := 72 * time.Hour
	if raceEnabled {
		hours = 24 * time.Hour
	}
	for _, c := range []struct {
		signal string
		thr    float64
		base   float64
	}{{SignalHeap, heapThr, 50 * mib}, {SignalGoroutines, gorThr, 2200}, {SignalFDs, fdThr, 120}} {
		for seed := range uint64(1) { // BenchmarkFalseAlarms runs 100 seeds
			ws := newWindowSet(t, c.signal, c.thr, defaultLeakCheck)
			s := synthSignal{base: c.base, noise: realClean(t, c.signal), integer: c.signal != SignalHeap, end: hours,
				interval: defaultLeakCheck.Interval.Std()}.samples(seed + 1)
			if fired, by := replayWindows(ws, s, tEpoch); len(fired) > 0 {
				t.Errorf("%s seed %d: %d false alarms, first at %v on the %v window", c.signal, seed+1, len(fired), fired[0], by[0])
			}
		}
	}
}

// On the recorded heap noise, a fast leak fires on the shortest window
// long before the main window alone could; a slow leak just above a low
// threshold fires within the hour on a quiet signal (soakd's own heap
// under load cannot see 0.1 MiB/min: its detectable slope is about 1
// MiB/min, which is what status says).
func TestWindowsCatchFastAndSlowLeaks(t *testing.T) {
	heap := realNoise(t, SignalHeap)
	fast := synthSignal{base: 50 * mib, noise: heap, leakAt: preLeak, shape: linearGrowth(16 * heapThr), end: preLeak + 30*time.Minute}
	single, _ := replayWindows(newWindowSet(t, SignalHeap, heapThr, mainAlone), fast.samples(1), tEpoch.Add(preLeak))
	fast.interval = defaultLeakCheck.Interval.Std()
	multi, by := replayWindows(newWindowSet(t, SignalHeap, heapThr, defaultLeakCheck), fast.samples(1), tEpoch.Add(preLeak))
	if len(single) == 0 || len(multi) == 0 {
		t.Fatalf("16× leak: fired %v (main window only), %v (with windows)", single, multi)
	}
	t.Logf("16× threshold: fired after %v on the main window alone, after %v on the %v window with the defaults", single[0], multi[0], by[0])
	shortest := defaultLeakCheck.Windows[0].Window.Std()
	if multi[0] > 3*time.Minute || by[0] != shortest {
		t.Errorf("16× leak fired after %v on the %v window, want on the %v window within 3m", multi[0], by[0], shortest)
	}

	slowThr := 0.1 * mib / 60
	slow := synthSignal{base: 50 * mib, noise: quietHeap, leakAt: 2*time.Hour + 5*time.Minute,
		shape: linearGrowth(2 * slowThr), end: 2*time.Hour + 5*time.Minute + 90*time.Minute, interval: defaultLeakCheck.Interval.Std()}
	multi, by = replayWindows(newWindowSet(t, SignalHeap, slowThr, defaultLeakCheck), slow.samples(1), tEpoch.Add(slow.leakAt))
	if len(multi) == 0 {
		t.Fatal("0.2 MiB/min at a 0.1 MiB/min threshold never fired")
	}
	t.Logf("0.2 MiB/min at a 0.1 MiB/min threshold: fired after %v on the %v window", multi[0], by[0])
	if multi[0] > time.Hour || multi[0] < 0 {
		t.Errorf("slow leak fired after %v, want within its first hour", multi[0])
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

// staircase is the fds a 100-run false-alarm simulation raised its first
// false alarm on (seed 1090, 62h04m, 5 s apart): two level shifts between
// bootstrapped blocks of a recorded soak, then a fault's transient bump,
// all within three minutes; the bump then ends.
var staircase = []float64{124, 124, 124, 122, 124, 124, 124, 124, 124, 124, 122, 122, 122, 124, 124, 122, 124, 124, 125, 124,
	122, 124, 122, 122, 122, 122, 122, 122, 122, 122, 122, 122, 122, 122, 122, 122, 122, 122, 122, 121, 122, 122, 122, 122, 122,
	122, 96, 96, 96, 96, 98, 96, 96, 96, 96, 96, 96, 101, 99, 99, 99, 101, 101, 101, 101, 100, 98, 123, 122, 121, 123, 123, 124,
	124, 124, 124, 124, 125, 112, 176, 167, 169, 169, 170, 172, 174, 176, 173, 173, 173, 167, 427, 418, 425, 425, 425, 426,
	425, 426, 425, 424, 426, 425, 425, 426, 425, 424, 426, 425, 425, 175, 174, 175, 173}

// The step guard keeps the short window quiet on that staircase, where
// the same window without it fires; the default windows raise nothing.
func TestStepGuardStaircase(t *testing.T) {
	const every = 5 * time.Second
	var s []Sample
	for i := range 360 { // half an hour flat at the staircase's first level
		s = append(s, Sample{T: tEpoch.Add(time.Duration(i) * every), V: 122 + float64(i%3)})
	}
	for _, v := range staircase {
		s = append(s, Sample{T: s[len(s)-1].T.Add(every), V: v})
	}
	lc := defaultLeakCheck
	lc.Interval = config.Duration(every)
	if fired, by := replayWindows(newWindowSet(t, SignalFDs, fdThr, lc), s, tEpoch); len(fired) > 0 {
		t.Fatalf("the default windows fired on the staircase at %v (%v)", fired, by)
	}
	_, winConf, err := lc.Confidences()
	if err != nil {
		t.Fatal(err)
	}
	short := slices.IndexFunc(lc.Windows, func(w config.LeakWindow) bool { return w.Window.Std() <= stepGuardWindow })
	if short < 0 {
		t.Skip("the default has no short window")
	}
	fires := func(share float64) bool {
		d, err := NewDetector("fds", DetectorConfig{Threshold: fdThr, Confidence: winConf[short], Window: lc.Windows[short].Window.Std(),
			Interval: every, Factor: lc.Windows[short].Factor, MaxStepShare: share})
		if err != nil {
			t.Fatal(err)
		}
		fsm := AlertFSM{For: lc.For}
		for i := range s {
			if fsm.Observe(d.Evaluate(s[i].T, s[:i+1])) == Fired {
				return true
			}
		}
		return false
	}
	if !fires(0) {
		t.Fatal("control: the short window without the step guard does not fire on the staircase")
	}
	if fires(stepGuardShare) {
		t.Fatal("the short window with the step guard fires on the staircase")
	}
}
