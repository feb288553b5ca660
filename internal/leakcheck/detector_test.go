package leakcheck

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// The tests use the defaults of DESIGN.md §3: interval 15s, window 30m,
// confidence 0.99, for 3, and its thresholds.
const (
	interval = 15 * time.Second
	window   = 30 * time.Minute
	forN     = 3
	MiB      = 1 << 20
	heapThr  = MiB / 60.0 // 1 MiB/min, per second
	gorThr   = 10 / 60.0  // 10/min
	fdThr    = 5 / 60.0   // 5/min
)

func testConfig(thr float64) DetectorConfig {
	return DetectorConfig{Threshold: thr, Confidence: 0.99, Window: window, Interval: interval}
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
	heapNoise = noiseModel{sawMin: 5 * MiB, sawMax: 10 * MiB, sawPMin: 20 * time.Second, sawPMax: 2 * time.Minute, sd: MiB}
	gorNoise  = noiseModel{uniform: 5}
	fdNoise   = noiseModel{uniform: 2}

	// 72-hour clean runs: the above plus wander, spikes and fault bumps.
	heapClean = noiseModel{sawMin: 5 * MiB, sawMax: 10 * MiB, sawPMin: 20 * time.Second, sawPMax: 2 * time.Minute, sd: MiB,
		ouSD: 4 * MiB, ouTau: 20 * time.Minute, spikeP: 0.003, spikeSize: 40 * MiB, bumpEvery: 15 * time.Minute, bumpSize: 200 * MiB}
	gorClean = noiseModel{uniform: 5, ouSD: 10, ouTau: 10 * time.Minute, spikeP: 0.005, spikeSize: 60,
		bumpEvery: 15 * time.Minute, bumpSize: 300}
	fdClean = noiseModel{uniform: 2, ouSD: 3, ouTau: 10 * time.Minute, spikeP: 0.005, spikeSize: 10,
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
type scenario struct {
	cfg     DetectorConfig
	base    float64
	noise   noiseModel
	integer bool // round samples (counts)
	leakAt  time.Duration
	shape   func(sec float64) float64
	dur     time.Duration
}

// outcome records what happened; times are offsets from leakAt.
type outcome struct {
	fired, resolved []time.Duration
	evals           int // evaluations with a verdict
	plateauInLeak   int // Plateau verdicts once the recent sub-window lies in the leak
	minRecentInLeak float64
	maxSlope        float64
	maxLower        float64
	trendOnly       int // verdicts where Mann–Kendall agreed but the slope bound did not clear the threshold
}

func (o outcome) firingAt(d time.Duration) bool {
	on := false
	for _, f := range o.fired {
		if f <= d {
			on = true
		}
	}
	for _, r := range o.resolved {
		if r <= d && len(o.fired) > 0 && r > o.fired[0] {
			on = r < lastBefore(o.fired, d)
		}
	}
	return on
}

func lastBefore(ds []time.Duration, d time.Duration) time.Duration {
	l := time.Duration(-1 << 62)
	for _, x := range ds {
		if x <= d {
			l = x
		}
	}
	return l
}

func (sc scenario) run(t testing.TB, seed uint64) outcome {
	t.Helper()
	d, err := NewDetector("sim", sc.cfg)
	if err != nil {
		t.Fatal(err)
	}
	fsm := AlertFSM{For: forN}
	ring := NewRing(RingCapacity(sc.cfg.Window, interval))
	buf := make([]Sample, 0, ring.Cap())
	noise := newNoise(sc.noise, seed)
	start := t0.Add(sc.leakAt)
	recentSpan := time.Duration(d.Config().PlateauFraction * float64(sc.cfg.Window))
	o := outcome{minRecentInLeak: math.Inf(1), maxSlope: math.Inf(-1), maxLower: math.Inf(-1)}
	end := start.Add(sc.dur)
	for now := t0; now.Before(end); now = now.Add(interval) {
		v := sc.base + noise.at(now.Sub(t0).Seconds(), interval.Seconds())
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

func linear(rate float64) func(float64) float64 { return func(s float64) float64 { return rate * s } }

// preLeak is how long a scenario runs before its leak starts: one window
// to fill the detector plus 5 minutes.
const preLeak = window + 5*time.Minute

func TestZZClean(t *testing.T) {
	for _, c := range []struct {
		name    string
		thr     float64
		base    float64
		m       noiseModel
		integer bool
	}{
		{"heap", heapThr, 50 * MiB, heapClean, false},
		{"goroutines", gorThr, 150, gorClean, true},
		{"fds", fdThr, 40, fdClean, true},
	} {
		for seed := range uint64(3) {
			st := time.Now()
			o := scenario{cfg: testConfig(c.thr), base: c.base, noise: c.m, integer: c.integer, dur: 72 * time.Hour}.run(t, seed)
			t.Logf("%s %d: evals %d fired %v maxSlope/thr %.3f maxLower/thr %.3f trendOnly %d (%v)", c.name, seed, o.evals, fmtD(o.fired), o.maxSlope/c.thr, o.maxLower/c.thr, o.trendOnly, time.Since(st))
		}
	}
}

func TestZZExplore2(t *testing.T) {
	for _, sc := range []struct {
		name  string
		shape func(float64) float64
	}{
		{"step40", func(s float64) float64 { return 40 * MiB }},
		{"step400", func(s float64) float64 { return 400 * MiB }},
		{"4x20m", func(s float64) float64 { return 4 * heapThr * min(s, 1200) }},
		{"4x5m", func(s float64) float64 { return 4 * heapThr * min(s, 300) }},
		{"8x5m", func(s float64) float64 { return 8 * heapThr * min(s, 300) }},
		{"4x8m", func(s float64) float64 { return 4 * heapThr * min(s, 480) }},
		{"logistic", func(s float64) float64 { return 60 * MiB / (1 + math.Exp(-(s-900)/180)) }},
		{"0.5x", linear(0.5 * heapThr)},
		{"0.9x", linear(0.9 * heapThr)},
	} {
		for _, np := range []bool{false, true} {
			cfg := testConfig(heapThr)
			cfg.DisablePlateau = np
			var res []string
			trendOnly := 0
			for seed := range uint64(6) {
				o := scenario{cfg: cfg, base: 50 * MiB, noise: heapNoise, leakAt: preLeak, shape: sc.shape, dur: 3 * time.Hour}.run(t, seed)
				res = append(res, fmtD(o.fired)+"/"+fmtD(o.resolved))
				trendOnly += o.trendOnly
			}
			t.Logf("%s noplateau=%v %v trendOnly %d", sc.name, np, res, trendOnly)
		}
	}
}

func fmtD(ds []time.Duration) string {
	s := ""
	for _, d := range ds {
		s += d.Round(time.Second).String() + ","
	}
	return "[" + s + "]"
}

var _ = strings.Contains
var _ = json.Marshal
