package leakcheck

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// Synthetic signals and a replay of the detector and its alert over them:
// the fixtures of the detector tests, the benchmarks and the datadriven
// scenarios (testdata/*.txt).

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
	// recorded, when set, is a real soak's signal (recorded_test.go),
	// replayed by a block bootstrap with blocks of mean recordedBlock.
	recorded      *recorded
	recordedBlock time.Duration
	// daily is the amplitude of a 24-hour sine (a day's load cycle);
	// phaseEvery/phaseStep a load phase: every ~phaseEvery the level
	// moves to a new one uniform in ±phaseStep.
	daily      float64
	phaseEvery time.Duration
	phaseStep  float64
}

var (
	// Leak tests: GC sawtooth of 5–10 MiB plus 1 MiB gaussian on the heap,
	// ±5 goroutines, ±2 fds.
	heapNoise = noiseModel{sawMin: 5 * mib, sawMax: 10 * mib, sawPMin: 20 * time.Second, sawPMax: 2 * time.Minute, sd: mib}
	gorNoise  = noiseModel{uniform: 5}
	// quietHeap: a heap with 64 KiB of gaussian noise, for thresholds
	// below what soakd's own heap lets anyone see.
	quietHeap = noiseModel{sd: 64 << 10}
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
	rec                 *recordedGen
	nextPhase, phase    float64
	dayPhase            float64
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
	if m.recorded != nil {
		g.rec = newRecordedGen(m.recorded, seed, cmp.Or(m.recordedBlock, 20*time.Minute))
	}
	g.nextPhase = math.Inf(1)
	if m.phaseEvery > 0 {
		g.nextPhase = g.rng.ExpFloat64() * m.phaseEvery.Seconds()
	}
	if m.daily > 0 { // drawn only when used: the other models' series stay as they were
		g.dayPhase = 2 * math.Pi * g.rng.Float64()
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
	if g.rec != nil {
		v += g.rec.next(dt)
	}
	if g.m.daily > 0 {
		v += g.m.daily * math.Sin(2*math.Pi*t/86400+g.dayPhase)
	}
	if t >= g.nextPhase {
		g.phase = g.m.phaseStep * (2*g.rng.Float64() - 1)
		g.nextPhase = t + g.rng.ExpFloat64()*g.m.phaseEvery.Seconds()
	}
	v += g.phase
	return v
}

// synthSignal is one synthetic series: base + noise, plus shape(seconds since
// leakAt) after leakAt, sampled every interval from tEpoch until end.
type synthSignal struct {
	base     float64
	noise    noiseModel
	integer  bool // round samples (counts)
	leakAt   time.Duration
	shape    func(sec float64) float64 // nil: no leak
	end      time.Duration
	interval time.Duration // 0: tInterval
}

// samples draws the series for one noise seed, deterministically.
func (sg synthSignal) samples(seed uint64) []Sample {
	step := cmp.Or(sg.interval, tInterval)
	noise := newNoise(sg.noise, seed)
	start, end := tEpoch.Add(sg.leakAt), tEpoch.Add(sg.end)
	var s []Sample
	for now := tEpoch; now.Before(end); now = now.Add(step) {
		v := sg.base + noise.at(now.Sub(tEpoch).Seconds(), step.Seconds())
		if sg.shape != nil && now.After(start) {
			v += sg.shape(now.Sub(start).Seconds())
		}
		if sg.integer {
			v = math.Round(v)
		}
		s = append(s, Sample{T: now, V: v})
	}
	return s
}

func linearGrowth(rate float64) func(float64) float64 {
	return func(s float64) float64 { return rate * s }
}

// preLeak is how long a scenario runs before its leak starts: one window
// to fill the detector plus 5 minutes.
const preLeak = tWindow + 5*time.Minute

// event is one alert transition and the evaluation that caused it.
type event struct {
	tr Transition
	ev Evaluation
}

// replayOutcome is what a detector and its alert did over a series.
type replayOutcome struct {
	events   []event // every transition but None, in order
	verdicts int     // evaluations with a verdict (not insufficient)
	maxSlope float64 // largest Theil–Sen slope seen
	maxLower float64 // largest Sen lower bound seen
	// trendOnly counts verdicts where Mann–Kendall agreed but the slope
	// bound stayed at or below the threshold.
	trendOnly int
	// Once the plateau guard's recent sub-window lies wholly after the
	// leak's start (only when replay is given one): Plateau verdicts, and
	// the smallest recent slope.
	plateauInLeak   int
	minRecentInLeak float64
}

// replay feeds s (time-ordered) to d and an alert like fsm, evaluating at
// every sample as Monitor does every interval. leak, if not zero, is when
// the series' leak starts.
func replay(d *Detector, fsm AlertFSM, s []Sample, leak time.Time) replayOutcome {
	cfg := d.Config()
	recentSpan := time.Duration(cfg.PlateauFraction * float64(cfg.Window))
	o := replayOutcome{minRecentInLeak: math.Inf(1), maxSlope: math.Inf(-1), maxLower: math.Inf(-1)}
	for i, p := range s {
		// Evaluate takes the samples within the window itself.
		ev := d.Evaluate(p.T, s[:i+1])
		if !ev.Insufficient {
			o.verdicts++
			o.maxSlope = math.Max(o.maxSlope, ev.Slope)
			o.maxLower = math.Max(o.maxLower, ev.Lower)
			if ev.TrendAgrees && ev.Lower <= cfg.Threshold {
				o.trendOnly++
			}
			if !leak.IsZero() && p.T.Sub(leak) >= recentSpan {
				o.minRecentInLeak = math.Min(o.minRecentInLeak, ev.RecentSlope)
				if ev.Plateau {
					o.plateauInLeak++
				}
			}
		}
		if tr := fsm.Observe(ev); tr != None {
			o.events = append(o.events, event{tr, ev})
		}
	}
	return o
}

// at returns the times, as offsets from ref, of the transitions tr.
func (o replayOutcome) at(tr Transition, ref time.Time) []time.Duration {
	var ds []time.Duration
	for _, e := range o.events {
		if e.tr == tr {
			ds = append(ds, e.ev.At.Sub(ref))
		}
	}
	return ds
}

// firingAt reports whether the alert was firing at t.
func (o replayOutcome) firingAt(t time.Time) bool {
	firing := false
	for _, e := range o.events {
		if e.ev.At.After(t) {
			break
		}
		switch e.tr {
		case Fired:
			firing = true
		case Resolved:
			firing = false
		}
	}
	return firing
}

// simulate replays one seed of sg through a detector with cfg and an alert
// with For = tFor.
func simulate(tb testing.TB, cfg DetectorConfig, sg synthSignal, seed uint64) replayOutcome {
	tb.Helper()
	d, err := NewDetector("sim", cfg)
	if err != nil {
		tb.Fatal(err)
	}
	var leak time.Time
	if sg.shape != nil {
		leak = tEpoch.Add(sg.leakAt)
	}
	return replay(d, AlertFSM{For: tFor}, sg.samples(seed), leak)
}

func medianOf(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
