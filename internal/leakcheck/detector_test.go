package leakcheck

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

// The tests use the defaults of DESIGN.md §3: interval 15s, window 30m,
// confidence 0.99, for 3, and its thresholds.
const (
	tInterval = 15 * time.Second
	tWindow   = 30 * time.Minute
	tFor      = 3
	mib       = 1 << 20
	heapThr   = mib / 60.0 // 1 MiB/min, per second
	gorThr    = 10 / 60.0  // 10/min
	fdThr     = 5 / 60.0   // 5/min
)

func simConfig(thr float64) DetectorConfig {
	return DetectorConfig{Threshold: thr, Confidence: 0.99, Window: tWindow, Interval: tInterval}
}

// noiseModel is a synthetic signal's noise. Each part models something a
// real soak process shows:
//   - GC sawtooth: a live-heap reading depends on where in its GC cycle the
//     sample lands; cycles of 20 s to 2 min (the runtime forces one at least
//     every 2 min) with amplitudes in [sawMin, sawMax], random phase;
//   - white noise: gaussian (sd) or uniform integers in ±uniform;
//   - wander: an Ornstein–Uhlenbeck (mean-reverting random walk) process with
//     stationary sd ouSD and time constant ouTau — load and cache churn;
//   - spikes: with probability spikeP a sample is spikeSize·[0.5, 1.5) higher
//     (a transient burst);
//   - bumps: every ~bumpEvery (exponential) the signal steps up by
//     bumpSize·[0.5, 1.5) for 30 s to 3 min and back — what soakd's own
//     memory, fds and partition faults do (faults.random duration 30s–3m).
type noiseModel struct {
	sawMin, sawMax   float64
	sawPMin, sawPMax time.Duration
	sd               float64
	uniform          int
	ouSD             float64
	ouTau            time.Duration
	spikeP           float64
	spikeSize        float64
	bumpEvery        time.Duration
	bumpSize         float64
}

var (
	// Leak tests: GC sawtooth of 5–10 MiB plus 1 MiB gaussian on the heap,
	// ±5 goroutines, ±2 fds.
	heapNoise = noiseModel{sawMin: 5 * mib, sawMax: 10 * mib, sawPMin: 20 * time.Second, sawPMax: 2 * time.Minute, sd: mib}
	gorNoise  = noiseModel{uniform: 5}
	fdNoise   = noiseModel{uniform: 2}

	// 72-hour clean runs: the above plus wander, spikes and fault bumps.
	heapClean = noiseModel{sawMin: 5 * mib, sawMax: 10 * mib, sawPMin: 20 * time.Second, sawPMax: 2 * time.Minute, sd: mib,
		ouSD: 4 * mib, ouTau: 20 * time.Minute, spikeP: 0.003, spikeSize: 40 * mib, bumpEvery: 15 * time.Minute, bumpSize: 200 * mib}
	gorClean = noiseModel{uniform: 5, ouSD: 40, ouTau: 15 * time.Minute, spikeP: 0.005, spikeSize: 60,
		bumpEvery: 15 * time.Minute, bumpSize: 300}
	fdClean = noiseModel{uniform: 2, ouSD: 10, ouTau: 15 * time.Minute, spikeP: 0.005, spikeSize: 10,
		bumpEvery: 15 * time.Minute, bumpSize: 300}
)

// noiseGen draws one noise series, sample by sample, deterministically from
// its seed.
type noiseGen struct {
	m                   noiseModel
	rng                 *rand.Rand
	cycStart, cycLen    float64
	amp, ou             float64
	nextBump, bumpUntil float64
	bump                float64
}

func newNoise(m noiseModel, seed uint64) *noiseGen {
	g := &noiseGen{m: m, rng: rand.New(rand.NewPCG(seed, 0x5eed))}
	if m.sawMax > 0 {
		g.newCycle(0)
		g.cycStart = -g.rng.Float64() * g.cycLen // random phase
	}
	g.ou = g.rng.NormFloat64() * m.ouSD
	g.nextBump = math.Inf(1)
	if m.bumpEvery > 0 {
		g.nextBump = g.rng.ExpFloat64() * m.bumpEvery.Seconds()
	}
	return g
}

func (g *noiseGen) newCycle(start float64) {
	g.cycStart = start
	g.cycLen = (g.m.sawPMin + time.Duration(g.rng.Float64()*float64(g.m.sawPMax-g.m.sawPMin))).Seconds()
	g.amp = g.m.sawMin + g.rng.Float64()*(g.m.sawMax-g.m.sawMin)
}

// at returns the noise at t seconds; successive calls advance by dt.
func (g *noiseGen) at(t, dt float64) float64 {
	v := 0.0
	if g.m.sawMax > 0 {
		for t >= g.cycStart+g.cycLen {
			g.newCycle(g.cycStart + g.cycLen)
		}
		v += g.amp * (t - g.cycStart) / g.cycLen
	}
	if g.m.ouSD > 0 {
		a := math.Exp(-dt / g.m.ouTau.Seconds())
		g.ou = a*g.ou + math.Sqrt(1-a*a)*g.m.ouSD*g.rng.NormFloat64()
		v += g.ou
	}
	if t >= g.nextBump {
		g.bumpUntil = t + 30 + 150*g.rng.Float64()
		g.bump = g.m.bumpSize * (0.5 + g.rng.Float64())
		g.nextBump = g.bumpUntil + g.rng.ExpFloat64()*g.m.bumpEvery.Seconds()
	}
	if t < g.bumpUntil {
		v += g.bump
	}
	v += g.m.sd * g.rng.NormFloat64()
	if g.m.uniform > 0 {
		v += float64(g.rng.IntN(2*g.m.uniform+1) - g.m.uniform)
	}
	if g.m.spikeP > 0 && g.rng.Float64() < g.m.spikeP {
		v += g.m.spikeSize * (0.5 + g.rng.Float64())
	}
	return v
}

// scenario is one synthetic signal: base + noise, plus shape(seconds since
// leakAt) from leakAt on, sampled and evaluated every interval for dur; an
// AlertFSM with For = forN follows the evaluations.
type leakScenario struct {
	cfg     DetectorConfig
	base    float64
	noise   noiseModel
	integer bool // round samples (counts)
	leakAt  time.Duration
	shape   func(sec float64) float64
	dur     time.Duration
}

// outcome records what happened; times are offsets from leakAt.
type leakOutcome struct {
	fired, resolved []time.Duration
	evals           int // evaluations with a verdict
	plateauInLeak   int // Plateau verdicts once the recent sub-window lies in the leak
	minRecentInLeak float64
	maxSlope        float64 // largest Theil–Sen slope seen
	maxLower        float64 // largest Sen lower bound seen
	trendOnly       int     // verdicts where Mann–Kendall agreed but the bound stayed at or below threshold
}

// firingAt reports whether the alert was firing at offset d.
func (o leakOutcome) firingAt(d time.Duration) bool {
	var f, r time.Duration = -1 << 62, -1 << 62
	for _, x := range o.fired {
		if x <= d {
			f = x
		}
	}
	for _, x := range o.resolved {
		if x <= d {
			r = x
		}
	}
	return len(o.fired) > 0 && o.fired[0] <= d && f > r
}

func (sc leakScenario) run(t testing.TB, seed uint64) leakOutcome {
	t.Helper()
	d, err := NewDetector("sim", sc.cfg)
	if err != nil {
		t.Fatal(err)
	}
	fsm := AlertFSM{For: tFor}
	ring := NewRing(RingCapacity(sc.cfg.Window, tInterval))
	buf := make([]Sample, 0, ring.Cap())
	noise := newNoise(sc.noise, seed)
	start := tEpoch.Add(sc.leakAt)
	recentSpan := time.Duration(d.Config().PlateauFraction * float64(sc.cfg.Window))
	o := leakOutcome{minRecentInLeak: math.Inf(1), maxSlope: math.Inf(-1), maxLower: math.Inf(-1)}
	end := start.Add(sc.dur)
	for now := tEpoch; now.Before(end); now = now.Add(tInterval) {
		v := sc.base + noise.at(now.Sub(tEpoch).Seconds(), tInterval.Seconds())
		if sc.shape != nil && now.After(start) {
			v += sc.shape(now.Sub(start).Seconds())
		}
		if sc.integer {
			v = math.Round(v)
		}
		ring.Add(Sample{T: now, V: v})
		buf = ring.Samples(buf[:0])
		ev := d.Evaluate(now, buf)
		if !ev.Insufficient {
			o.evals++
			o.maxSlope = math.Max(o.maxSlope, ev.Slope)
			o.maxLower = math.Max(o.maxLower, ev.Lower)
			if ev.TrendAgrees && ev.Lower <= sc.cfg.Threshold {
				o.trendOnly++
			}
			if now.Sub(start) >= recentSpan {
				o.minRecentInLeak = math.Min(o.minRecentInLeak, ev.RecentSlope)
				if ev.Plateau {
					o.plateauInLeak++
				}
			}
		}
		switch fsm.Observe(ev) {
		case Fired:
			o.fired = append(o.fired, now.Sub(start))
		case Resolved:
			o.resolved = append(o.resolved, now.Sub(start))
		}
	}
	return o
}

func linearGrowth(rate float64) func(float64) float64 {
	return func(s float64) float64 { return rate * s }
}

// preLeak is how long a scenario runs before its leak starts: one window
// to fill the detector plus 5 minutes.
const preLeak = tWindow + 5*time.Minute

func medianOf(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

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

// detectMargin is the slack allowed over PredictedDetection for a noisy
// leak. The prediction is for a noiseless line; noise moves Sen's bound a
// little either way. Over 20 seeds of the heap noise (5–10 MiB sawtooth,
// 1 MiB gaussian) the latest detection was 3% after the prediction at 2×,
// 8% at 1.5×, and 4×–16× fired up to 10% before it; ±5 goroutines changed
// nothing measurable. 10% covers that with room, and is tight enough that
// a detector one evaluation-window slower would fail.
const detectMargin = 0.10

func TestLinearLeaksFireWithinPrediction(t *testing.T) {
	t.Parallel()
	type leak struct {
		name    string
		thr     float64
		base    float64
		noise   noiseModel
		integer bool
		ratio   float64
	}
	cases := []leak{
		{"heap", heapThr, 50 * mib, heapNoise, false, 2},
		{"heap", heapThr, 50 * mib, heapNoise, false, 4},
		{"heap", heapThr, 50 * mib, heapNoise, false, 8},
		{"goroutines", gorThr, 150, gorNoise, true, 2},
		{"open_fds", fdThr, 40, fdNoise, true, 2},
	}
	medians := map[float64]time.Duration{}
	for _, c := range cases {
		cfg := simConfig(c.thr)
		rate := c.ratio * c.thr
		pred := PredictedDetection(cfg, tInterval, rate, tFor)
		limit := pred + time.Duration(detectMargin*float64(pred))
		var times []time.Duration
		for seed := range uint64(5) {
			sc := leakScenario{cfg: cfg, base: c.base, noise: c.noise, integer: c.integer,
				leakAt: preLeak, shape: linearGrowth(rate), dur: limit + 15*time.Minute}
			o := sc.run(t, seed)
			if len(o.fired) != 1 || o.fired[0] > limit || len(o.resolved) != 0 {
				t.Errorf("%s %v× seed %d: fired %v resolved %v; want one firing by %v (predicted %v +%.0f%%)",
					c.name, c.ratio, seed, o.fired, o.resolved, limit, pred, 100*detectMargin)
				continue
			}
			// The plateau guard must never take a linear leak at ≥2× for
			// a plateau once its recent sub-window lies in the leak.
			if o.plateauInLeak > 0 || !(o.minRecentInLeak > c.thr) {
				t.Errorf("%s %v× seed %d: %d plateau verdicts, min recent slope %.2f× threshold",
					c.name, c.ratio, seed, o.plateauInLeak, o.minRecentInLeak/c.thr)
			}
			times = append(times, o.fired[0])
		}
		if c.name == "heap" && len(times) > 0 {
			medians[c.ratio] = medianOf(times)
		}
		t.Logf("%s %v×: predicted %v, fired at %v", c.name, c.ratio, pred, times)
	}
	if !(medians[8] < medians[4] && medians[4] < medians[2]) {
		t.Errorf("median detection 2× %v, 4× %v, 8× %v: want faster for faster leaks", medians[2], medians[4], medians[8])
	}
}

// guardless is cfg with the plateau guard off: the control that shows a
// scenario needs the guard.
func guardless(cfg DetectorConfig) DetectorConfig {
	cfg.DisablePlateau = true
	return cfg
}

// resolveBound is how soon after growth stops a firing alert must resolve:
// once the recent sub-window (PlateauFraction·Window = 7.5 min) holds no
// growth, its slope is noise around 0, below threshold, so every evaluation
// is clear (plateau), and ResolveAfter (= For) clear evaluations resolve.
const resolveBound = tWindow/4 + tFor*tInterval // 8m15s

func TestStepNeverFires(t *testing.T) {
	t.Parallel()
	cfg := simConfig(heapThr)
	for _, step := range []float64{40 * mib, 400 * mib} {
		for seed := range uint64(3) {
			sc := leakScenario{cfg: cfg, base: 50 * mib, noise: heapNoise, leakAt: preLeak,
				shape: func(float64) float64 { return step }, dur: 2 * time.Hour}
			if o := sc.run(t, seed); len(o.fired) > 0 {
				t.Errorf("step %v MiB seed %d fired at %v", step/mib, seed, o.fired)
			}
			// Control: without the guard the same step fires. In noise,
			// pairs on the same side of a step have slopes spread both ways,
			// those across it are all large, and once the step is near the
			// window's middle the lower bound clears the threshold (~13 min
			// after it). By then the step has left the 7.5-minute recent
			// sub-window, which is flat: a plateau.
			sc.cfg = guardless(cfg)
			if o := sc.run(t, seed); len(o.fired) == 0 {
				t.Errorf("control: step %v MiB seed %d did not fire without the plateau guard", step/mib, seed)
			}
		}
	}
}

func TestPlateauResolvesAfterGrowthStops(t *testing.T) {
	t.Parallel()
	cfg := simConfig(heapThr)
	// A cache growing at 4× threshold for 20 minutes, then flat; and a
	// logistic warm-up of 60 MiB (midpoint 15 min, scale 3 min: 5× threshold
	// at its steepest) whose growth rate falls below the threshold at
	// s* = 900 + 180·ln(σ*/(1-σ*)) s with σ*(1-σ*) = threshold·180/60MiB.
	sigma := (1 + math.Sqrt(1-4*heapThr*180/(60*mib))) / 2
	logisticStop := time.Duration((900 + 180*math.Log(sigma/(1-sigma))) * float64(time.Second))
	for _, c := range []struct {
		name  string
		shape func(float64) float64
		stop  time.Duration // when growth stops, or falls below threshold
	}{
		{"4× for 20m", func(s float64) float64 { return 4 * heapThr * min(s, 1200) }, 20 * time.Minute},
		{"logistic", func(s float64) float64 { return 60 * mib / (1 + math.Exp(-(s-900)/180)) }, logisticStop},
	} {
		for seed := range uint64(3) {
			sc := leakScenario{cfg: cfg, base: 50 * mib, noise: heapNoise, leakAt: preLeak, shape: c.shape, dur: 3 * time.Hour}
			o := sc.run(t, seed)
			// It grows well above threshold for minutes, so it fires while
			// growing (the assertion below would be empty otherwise), and
			// resolves within the bound — once, for good.
			if len(o.fired) != 1 || o.fired[0] > c.stop || len(o.resolved) != 1 || o.resolved[0] > c.stop+resolveBound {
				t.Errorf("%s seed %d: fired %v resolved %v; want one firing before %v resolved by %v",
					c.name, seed, o.fired, o.resolved, c.stop, c.stop+resolveBound)
			} else {
				t.Logf("%s seed %d: fired %v, resolved %v after growth stopped", c.name, seed, o.fired[0], (o.resolved[0] - c.stop).Round(time.Second))
			}
			// Control: without the guard it is still firing at the bound;
			// the whole window keeps straddling the growth for ~18 more
			// minutes.
			sc.cfg = guardless(cfg)
			if o := sc.run(t, seed); !o.firingAt(c.stop + resolveBound) {
				t.Errorf("control: %s seed %d without the guard is not firing at %v (fired %v resolved %v)",
					c.name, seed, c.stop+resolveBound, o.fired, o.resolved)
			}
		}
	}
}

func TestShortWarmupNeverFires(t *testing.T) {
	t.Parallel()
	cfg := simConfig(heapThr)
	for seed := range uint64(3) {
		// 5 minutes at 8× threshold (40 MiB), then flat. Without the guard
		// this fires ~12 minutes in, long after the growth stopped (the
		// window still straddles it); with it, the recent sub-window is
		// flat by then.
		sc := leakScenario{cfg: cfg, base: 50 * mib, noise: heapNoise, leakAt: preLeak,
			shape: func(s float64) float64 { return 8 * heapThr * min(s, 300) }, dur: 2 * time.Hour}
		if o := sc.run(t, seed); len(o.fired) > 0 {
			t.Errorf("8× for 5m seed %d fired at %v", seed, o.fired)
		}
		sc.cfg = guardless(cfg)
		if o := sc.run(t, seed); len(o.fired) == 0 {
			t.Errorf("control: 8× for 5m seed %d did not fire without the guard", seed)
		}
		// 5 minutes at 4× (20 MiB) is quiet even without the guard: too
		// little of the window to move the lower bound. Kept as a check of
		// the detector as a whole, not of the guard.
		sc.shape = func(s float64) float64 { return 4 * heapThr * min(s, 300) }
		sc.cfg = cfg
		if o := sc.run(t, seed); len(o.fired) > 0 {
			t.Errorf("4× for 5m seed %d fired at %v", seed, o.fired)
		}
	}
}

func TestSlowLeakBelowThresholdNeverFires(t *testing.T) {
	t.Parallel()
	for seed := range uint64(3) {
		sc := leakScenario{cfg: simConfig(heapThr), base: 50 * mib, noise: heapNoise, leakAt: preLeak,
			shape: linearGrowth(0.5 * heapThr), dur: 6 * time.Hour}
		o := sc.run(t, seed)
		if len(o.fired) > 0 {
			t.Errorf("0.5× seed %d fired at %v", seed, o.fired)
		}
		// Control: the growth is plain to Mann–Kendall in most windows; it
		// is the threshold on the slope bound that keeps it quiet, as
		// intended (growth below the user's threshold is not a leak).
		if o.trendOnly < o.evals*3/4 {
			t.Errorf("0.5× seed %d: Mann–Kendall agreed in only %d of %d verdicts", seed, o.trendOnly, o.evals)
		}
	}
}

// TestCleanSeries72h runs 72 hours of realistic noise — GC sawtooth, wander,
// spikes, fault bumps of hundreds of MiB or fds lasting up to 3 minutes —
// through the detector every 15 seconds (17280 evaluations) and requires
// that nothing fires. The positive control: the same noise with a leak at 2×
// threshold added does fire, within the predicted delay + 25%.
//
// One 72-hour series costs ~0.5 s, ~3 s under -race; the default set (five
// series, five seeds) keeps `go test -race` of the package well under 30 s.
// LEAKCHECK_CLEAN_SEEDS=n runs n seeds per signal instead, for a deeper soak
// of the detector itself.
func TestCleanSeries72h(t *testing.T) {
	t.Parallel()
	extra := 0
	if v := os.Getenv("LEAKCHECK_CLEAN_SEEDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("LEAKCHECK_CLEAN_SEEDS=%q: want a positive integer", v)
		}
		extra = n
	}
	seeds := func(def ...uint64) []uint64 {
		if extra == 0 {
			return def
		}
		var s []uint64
		for i := range uint64(extra) {
			s = append(s, def[0]+100*i)
		}
		return s
	}
	for _, c := range []struct {
		name    string
		thr     float64
		base    float64
		noise   noiseModel
		integer bool
		seeds   []uint64
	}{
		{"heap_live_bytes", heapThr, 50 * mib, heapClean, false, seeds(1, 2)},
		{"heap_live_bytes/sawtooth-only", heapThr, 50 * mib, heapNoise, false, seeds(3)},
		{"goroutines", gorThr, 150, gorClean, true, seeds(4)},
		{"open_fds", fdThr, 40, fdClean, true, seeds(5)},
	} {
		for _, seed := range c.seeds {
			t.Run(fmt.Sprintf("%s/seed=%d", c.name, seed), func(t *testing.T) {
				t.Parallel()
				cfg := simConfig(c.thr)
				sc := leakScenario{cfg: cfg, base: c.base, noise: c.noise, integer: c.integer, dur: 72 * time.Hour}
				o := sc.run(t, seed)
				if len(o.fired) > 0 || o.evals < 17000 {
					t.Errorf("seed %d: fired %v in %d evaluations", seed, o.fired, o.evals)
				}
				t.Logf("seed %d: %d evaluations, max slope %.2f× and max lower bound %.2f× threshold, Mann–Kendall alone agreed %d times",
					seed, o.evals, o.maxSlope/c.thr, o.maxLower/c.thr, o.trendOnly)
				// The wander and bumps make this noisier than the leak tests'
				// noise, hence the wider margin (worst seen: +15%).
				pred := PredictedDetection(cfg, tInterval, 2*c.thr, tFor)
				limit := pred + pred/4
				sc.leakAt, sc.dur, sc.shape = preLeak, limit+5*time.Minute, linearGrowth(2*c.thr)
				if o := sc.run(t, seed); len(o.fired) == 0 || o.fired[0] > limit {
					t.Errorf("control: seed %d with a 2× leak fired at %v, want by %v", seed, o.fired, limit)
				} else {
					t.Logf("control: 2× leak fired after %v (predicted %v)", o.fired[0], pred)
				}
			})
		}
	}
}
