package leakcheck

import (
	"bufio"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// A recorded series is a leak signal of a real soak (`make soak
// RECORD=dir`), kept in testdata/recorded/<signal>.tsv: a line per sample
// (seconds since the recording began, value, 1 where a fault disturbed the
// signal and the detector left the sample out). "# exclude a-b [why]"
// lines drop stretches that are not noise; "# canary a-b" marks the heap
// canary's leak, dropped from the noise and kept by loadCanary.
type recorded struct {
	signal string
	t, v   []float64 // the samples the detector judged, in time order
	canary float64   // where the canary starts (seconds), -1 if none
	step   float64   // the recording's sampling interval, seconds (the median gap)
	// runs are [start, end) index ranges of samples 15 s apart with no
	// gap, the blocks a bootstrap may cut from.
	runs [][2]int
}

var (
	recordedMu    sync.Mutex
	recordedCache = map[string]*recorded{}
)

// The recorded soaks: the embedded default config as it is, and `make
// soak`'s accelerated one (a fault a minute, the heap canary at 30m).
const (
	soakDefault     = "default"
	soakAccelerated = "accelerated"
)

// loadRecorded reads testdata/recorded/<soak>/<signal>.tsv once, as noise.
func loadRecorded(tb testing.TB, soak, signal string) *recorded {
	tb.Helper()
	return readRecorded(tb, soak, signal, false)
}

// loadCanary reads the recording with its canary kept and returns the
// canary's start, in seconds of the recording.
func loadCanary(tb testing.TB, soak, signal string) (*recorded, float64) {
	tb.Helper()
	r := readRecorded(tb, soak, signal, true)
	if r.canary < 0 {
		tb.Fatalf("%s: no # canary line", signal)
	}
	return r, r.canary
}

func readRecorded(tb testing.TB, soak, signal string, keepCanary bool) *recorded {
	recordedMu.Lock()
	defer recordedMu.Unlock()
	key := fmt.Sprint(soak, signal, keepCanary)
	if r, ok := recordedCache[key]; ok {
		return r
	}
	path := filepath.Join("testdata", "recorded", soak, signal+".tsv")
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	r := &recorded{signal: signal, canary: -1}
	var excl [][2]float64
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if kind, rest, ok := strings.Cut(strings.TrimPrefix(line, "# "), " "); ok && (kind == "exclude" || kind == "canary") {
			a, b, _ := strings.Cut(strings.Fields(rest)[0], "-")
			lo, err1 := strconv.ParseFloat(a, 64)
			hi, err2 := strconv.ParseFloat(b, 64)
			if err1 != nil || err2 != nil {
				tb.Fatalf("%s:%d: want # %s <from>-<to> seconds", path, n, kind)
			}
			if kind == "canary" {
				r.canary = lo
				if keepCanary {
					continue
				}
			}
			excl = append(excl, [2]float64{lo, hi})
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		fs := strings.Fields(line)
		if len(fs) != 3 {
			tb.Fatalf("%s:%d: want seconds, value, disturbed", path, n)
		}
		sec, err1 := strconv.ParseFloat(fs[0], 64)
		val, err2 := strconv.ParseFloat(fs[1], 64)
		if err1 != nil || err2 != nil {
			tb.Fatalf("%s:%d: %q", path, n, line)
		}
		if fs[2] != "0" || slices.ContainsFunc(excl, func(e [2]float64) bool { return sec >= e[0] && sec < e[1] }) {
			continue
		}
		if len(r.t) > 0 && sec <= r.t[len(r.t)-1] {
			continue // a scrape that saw the same sample twice
		}
		r.t, r.v = append(r.t, sec), append(r.v, val)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	if len(r.t) < 2 {
		tb.Fatalf("%s: fewer than 2 samples", path)
	}
	gaps := make([]float64, len(r.t)-1)
	for i := range gaps {
		gaps[i] = r.t[i+1] - r.t[i]
	}
	r.step = median(gaps)
	start := 0
	for i := 1; i <= len(r.t); i++ {
		if i == len(r.t) || r.t[i]-r.t[i-1] > 1.5*r.step {
			if i-start >= 8 {
				r.runs = append(r.runs, [2]int{start, i})
			}
			start = i
		}
	}
	if len(r.runs) == 0 {
		tb.Fatalf("%s: no stretch of 8 samples in a row", path)
	}
	recordedCache[key] = r
	return r
}

// recordedGen draws noise from r by a stationary block bootstrap (Politis
// and Romano 1994): blocks of mean length meanBlock cut at random from the
// recorded runs, so the series keeps the recording's local structure (GC
// timing, load bursts, fault transients) for as long as a test needs. Each
// block starts halfway between where the last one ended and its own level,
// a step no larger than the recording's own swings, and the level cannot
// wander off. Values are deviations from the recording's median.
type recordedGen struct {
	r       *recorded
	rng     *rand.Rand
	med     float64
	pBreak  float64
	i, end  int
	shift   float64
	last    float64
	started bool
}

func newRecordedGen(r *recorded, seed uint64, meanBlock time.Duration) *recordedGen {
	return &recordedGen{r: r, rng: rand.New(rand.NewPCG(seed, 0xb007)), med: median(r.v),
		pBreak: r.step / meanBlock.Seconds()}
}

// next returns the noise dt seconds after the last call: a series sampled
// more sparsely than the recording skips recorded samples.
func (g *recordedGen) next(dt float64) float64 {
	k := max(1, int(dt/g.r.step+0.5))
	if g.started {
		g.i += k - 1
	}
	if !g.started || g.i >= g.end || g.rng.Float64() < 1-math.Pow(1-g.pBreak, float64(k)) {
		run := g.r.runs[g.rng.IntN(len(g.r.runs))]
		g.i, g.end = run[0]+g.rng.IntN(run[1]-run[0]), run[1]
		g.shift = 0
		if g.started {
			g.shift = (g.last - (g.r.v[g.i] - g.med)) / 2
		}
		g.started = true
	}
	g.last = g.r.v[g.i] - g.med + g.shift
	g.i++
	return g.last
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// describe summarises r for a test log.
func (r *recorded) describe() string {
	d := make([]float64, len(r.v))
	med := median(r.v)
	for i, x := range r.v {
		d[i] = x - med
	}
	slices.Sort(d)
	q := func(p float64) float64 { return d[int(p*float64(len(d)-1))] }
	return fmt.Sprintf("%s: %d samples in %d runs over %.0f min; around the median %.4g: p1 %+.3g, p50 %+.3g, p99 %+.3g",
		r.signal, len(r.v), len(r.runs), (r.t[len(r.t)-1]-r.t[0])/60, med, q(0.01), q(0.5), q(0.99))
}

// Realistic noise: realNoise is the default soak's recorded signal,
// block-bootstrapped; realClean, for 72-hour runs, the accelerated soak's
// (a fault a minute: the harder case) with a day's load cycle, load phases
// and fault transients that recover on top (what a 2-hour recording
// cannot hold).
func realNoise(tb testing.TB, signal string) noiseModel {
	return noiseModel{recorded: loadRecorded(tb, soakDefault, signal)}
}

func realClean(tb testing.TB, signal string) noiseModel {
	m := noiseModel{recorded: loadRecorded(tb, soakAccelerated, signal)}
	switch signal {
	case SignalHeap:
		m.daily, m.phaseEvery, m.phaseStep = 4*mib, 6*time.Hour, 4*mib
		m.bumpEvery, m.bumpSize = 30*time.Minute, 64*mib
	case SignalGoroutines:
		m.daily, m.phaseEvery, m.phaseStep = 20, 6*time.Hour, 20
		m.bumpEvery, m.bumpSize = 30*time.Minute, 200
	case SignalFDs:
		m.daily, m.phaseEvery, m.phaseStep = 5, 6*time.Hour, 5
		m.bumpEvery, m.bumpSize = 30*time.Minute, 200
	}
	return m
}

// series returns r's judged samples as the detector saw them, the clock
// starting at tEpoch.
func (r *recorded) series() []Sample {
	s := make([]Sample, len(r.t))
	for i := range r.t {
		s[i] = Sample{T: tEpoch.Add(time.Duration(r.t[i] * float64(time.Second))), V: r.v[i]}
	}
	return s
}

// The recorded soaks, replayed as they ran through the default detector
// with the default thresholds, raise nothing: a real soak's noise, faults
// included, is quiet.
func TestRecordedSoakQuiet(t *testing.T) {
	for _, soak := range []string{soakDefault, soakAccelerated} {
		for _, c := range []struct {
			signal string
			thr    float64
		}{{SignalHeap, heapThr}, {SignalGoroutines, gorThr}, {SignalFDs, fdThr}, {SignalRSS, 4 * mib / 60}} {
			r := loadRecorded(t, soak, c.signal)
			t.Logf("%s soak: %s", soak, r.describe())
			if fired, by := replayWindows(newWindowSet(t, c.signal, c.thr, defaultLeakCheck), r.series(), tEpoch); len(fired) > 0 {
				t.Errorf("%s soak, %s: %d alerts, the first %v in on the %v window", soak, c.signal, len(fired), fired[0], by[0])
			}
		}
	}
}

// The recorded heap canary (2 MiB/min for 30 minutes in a real soak)
// fires the default detector, on which window and how soon: the positive
// control of TestRecordedSoakQuiet.
func TestRecordedCanaryFires(t *testing.T) {
	r, at := loadCanary(t, soakAccelerated, SignalHeap)
	fired, by := replayWindows(newWindowSet(t, SignalHeap, heapThr, defaultLeakCheck), r.series(), tEpoch.Add(time.Duration(at*float64(time.Second))))
	if len(fired) != 1 {
		t.Fatalf("the recorded canary fired %d alerts (%v on %v), want one", len(fired), fired, by)
	}
	t.Logf("the recorded canary fired %v after it started, on the %v window", fired[0], by[0])
	if fired[0] > 10*time.Minute {
		t.Errorf("the canary, 2× the threshold, fired after %v: want ≤ 10m", fired[0])
	}
}
