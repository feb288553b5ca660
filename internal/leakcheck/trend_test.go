package leakcheck

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var tEpoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// series returns samples at t0 + i·step with values vs.
func seriesOf(step time.Duration, vs ...float64) []Sample {
	s := make([]Sample, len(vs))
	for i, v := range vs {
		s[i] = Sample{T: tEpoch.Add(time.Duration(i) * step), V: v}
	}
	return s
}

func nearlyEqual(a, b, tol float64) bool {
	if math.IsInf(a, 0) || math.IsInf(b, 0) {
		return a == b
	}
	return math.Abs(a-b) <= tol*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

// brute is an independent, deliberately naive implementation: every pair by
// time order, a full sort, tie groups by map.
type bruteFit struct {
	slopes        []float64
	slope, icept  float64
	lower, upper  float64
	s, varS, z, p float64
}

func brute(s []Sample, conf float64) bruteFit {
	var f bruteFit
	var fs []Sample
	for _, p := range s {
		if !math.IsNaN(p.V) && !math.IsInf(p.V, 0) {
			fs = append(fs, p)
		}
	}
	n := len(fs)
	for i := range n {
		for j := range n {
			a, b := fs[i], fs[j]
			if !a.T.Before(b.T) {
				continue // each unordered pair once, earlier first
			}
			dt := b.T.Sub(a.T).Seconds()
			f.slopes = append(f.slopes, (b.V-a.V)/dt)
			switch {
			case b.V > a.V:
				f.s++
			case b.V < a.V:
				f.s--
			}
		}
	}
	slices.Sort(f.slopes)
	m := len(f.slopes)
	if m > 0 {
		if m%2 == 1 {
			f.slope = f.slopes[m/2]
		} else {
			f.slope = (f.slopes[m/2-1] + f.slopes[m/2]) / 2
		}
	}
	groups := map[float64]int{}
	for _, p := range fs {
		groups[p.V]++
	}
	nf := float64(n)
	f.varS = nf * (nf - 1) * (2*nf + 5)
	for _, t := range groups {
		tf := float64(t)
		f.varS -= tf * (tf - 1) * (2*tf + 5)
	}
	f.varS /= 18
	if f.varS > 0 {
		switch {
		case f.s > 0:
			f.z = (f.s - 1) / math.Sqrt(f.varS)
		case f.s < 0:
			f.z = (f.s + 1) / math.Sqrt(f.varS)
		}
	}
	f.p = 1 - 0.5*(1+math.Erf(f.z/math.Sqrt2))
	c := NormalQuantile(conf) * math.Sqrt(f.varS)
	m1 := int(math.Floor((float64(m) - c) / 2)) // 1-based
	m2 := int(math.Ceil((float64(m)+c)/2)) + 1  // 1-based
	f.lower, f.upper = math.Inf(-1), math.Inf(1)
	if m1 >= 1 {
		f.lower = f.slopes[m1-1]
	}
	if m2 <= m {
		f.upper = f.slopes[m2-1]
	}
	if n > 0 {
		var res []float64
		for _, p := range fs {
			res = append(res, p.V-f.slope*p.T.Sub(fs[0].T).Seconds())
		}
		slices.Sort(res)
		f.icept = (res[(n-1)/2] + res[n/2]) / 2
	}
	return f
}

func TestTheilSenExactLine(t *testing.T) {
	// y = 2x + 7 per second, sampled every 15 s.
	var vs []float64
	for i := range 20 {
		vs = append(vs, 7+2*15*float64(i))
	}
	s := seriesOf(15*time.Second, vs...)
	slope, icept := TheilSen(s)
	if slope != 2 || icept != 7 {
		t.Fatalf("TheilSen = %v, %v; want 2, 7", slope, icept)
	}
	S, z, p := MannKendall(s)
	if n := 20.0; S != n*(n-1)/2 {
		t.Errorf("S = %v, want n(n-1)/2 = 190", S)
	}
	if z < 5 || p > 1e-6 {
		t.Errorf("z, p = %v, %v; want a certain increase", z, p)
	}
	lo, hi := SenConfidence(s, 0.99)
	if lo != 2 || hi != 2 {
		t.Errorf("Sen bounds of an exact line = %v, %v; want 2, 2", lo, hi)
	}
}

func TestTheilSenIgnoresOutliers(t *testing.T) {
	// Slope 1 per second with 5 of 20 points wild (25% < breakdown 29%).
	var vs []float64
	for i := range 20 {
		vs = append(vs, float64(i))
	}
	vs[3], vs[8], vs[11], vs[15], vs[19] = 1e6, -1e6, 5e5, 1e6, -3e5
	slope, _ := TheilSen(seriesOf(time.Second, vs...))
	if math.Abs(slope-1) > 0.25 {
		t.Fatalf("slope with 25%% outliers = %v, want about 1", slope)
	}
}

func TestMannKendallFallingSeriesNearOne(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	var vs []float64
	for i := range 100 {
		vs = append(vs, 1000-3*float64(i)+rng.NormFloat64()*20)
	}
	_, z, p := MannKendall(seriesOf(15*time.Second, vs...))
	if z > -5 || p < 0.999999 {
		t.Fatalf("falling series: z %v p %v, want p near 1", z, p)
	}
}

func TestSenConfidenceByHand(t *testing.T) {
	// n = 10 distinct values: N = 45 slopes, Var S = 10·9·25/18 = 125,
	// C = 2.3263·√125 = 26.01; M1 = 9.49 → floor 9 (9th smallest),
	// M2 = 35.51 → ceil 36, +1 → 37th smallest. 45+1-9 = 37: symmetric.
	rng := rand.New(rand.NewPCG(1, 1))
	var vs []float64
	for i := range 10 {
		vs = append(vs, float64(i)+rng.Float64()*3)
	}
	s := seriesOf(time.Second, vs...)
	var slopes []float64
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			slopes = append(slopes, (s[j].V-s[i].V)/float64(j-i))
		}
	}
	slices.Sort(slopes)
	lo, hi := SenConfidence(s, 0.99)
	if lo != slopes[8] || hi != slopes[36] {
		t.Fatalf("bounds %v, %v; want 9th %v and 37th %v of %v", lo, hi, slopes[8], slopes[36], slopes)
	}
	// Too few samples for 0.99: unbounded rather than made up.
	lo, hi = SenConfidence(seriesOf(time.Second, 1, 2, 3, 4), 0.99)
	if !math.IsInf(lo, -1) || !math.IsInf(hi, 1) {
		t.Fatalf("n=4 at 0.99: %v, %v; want -Inf, +Inf", lo, hi)
	}
}

func TestNormalQuantile(t *testing.T) {
	for _, tc := range []struct{ p, z float64 }{
		{0.5, 0},
		{0.975, 1.959963984540054},
		{0.99, 2.3263478740408408},
		{0.999, 3.090232306167813},
		{0.025, -1.959963984540054},
		{1e-10, -6.361340902404056},
	} {
		if got := NormalQuantile(tc.p); !nearlyEqual(got, tc.z, 1e-13) {
			t.Errorf("NormalQuantile(%v) = %v, want %v", tc.p, got, tc.z)
		}
	}
	if !math.IsInf(NormalQuantile(1), 1) || !math.IsInf(NormalQuantile(0), -1) || !math.IsNaN(NormalQuantile(2)) {
		t.Error("NormalQuantile edges")
	}
}

// randomSeries makes awkward series: integer values with many ties, some
// duplicate timestamps, a few NaNs, optionally shuffled.
func randomSeries(rng *rand.Rand, n int) []Sample {
	s := make([]Sample, n)
	tt := tEpoch
	for i := range s {
		if rng.IntN(8) != 0 { // 1 in 8: same timestamp as previous
			tt = tt.Add(time.Duration(1+rng.IntN(30)) * time.Second)
		}
		v := float64(rng.IntN(6)) + 0.5*float64(i)
		if rng.IntN(4) == 0 {
			v = rng.NormFloat64() * 10
		}
		if rng.IntN(40) == 0 {
			v = math.NaN()
		}
		s[i] = Sample{T: tt, V: v}
	}
	if rng.IntN(3) == 0 {
		rng.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	}
	return s
}

func checkAgainstBrute(t *testing.T, s []Sample, conf float64, got Fit) {
	t.Helper()
	want := brute(s, conf)
	if got.Pairs != len(want.slopes) || !nearlyEqual(got.Slope, want.slope, 1e-12) ||
		!nearlyEqual(got.Lower, want.lower, 1e-12) || !nearlyEqual(got.Upper, want.upper, 1e-12) ||
		got.S != want.s || !nearlyEqual(got.VarS, want.varS, 1e-12) || !nearlyEqual(got.Z, want.z, 1e-12) ||
		!nearlyEqual(got.P, want.p, 1e-9) || !nearlyEqual(got.Intercept, want.icept, 1e-9) {
		t.Fatalf("n=%d: got %+v\nwant slope %v [%v, %v] icept %v S %v var %v z %v p %v pairs %d",
			len(s), got, want.slope, want.lower, want.upper, want.icept, want.s, want.varS, want.z, want.p, len(want.slopes))
	}
}

func TestFitMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var e Estimator // reused across unrelated series on purpose
	for range 300 {
		s := randomSeries(rng, 2+rng.IntN(60))
		conf := 0.9 + 0.099*rng.Float64()
		checkAgainstBrute(t, s, conf, e.Fit(s, conf))
	}
}

// TestSlidingIsBitIdentical drives one Estimator through a long sliding
// series — steps of several samples, gaps, restarts, edits — and checks every
// fit bit for bit against a fresh Estimator, and periodically against brute
// force. It also checks the incremental path was actually taken.
func TestSlidingIsBitIdentical(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	ring := NewRing(70)
	var e Estimator
	var buf []Sample
	now := tEpoch
	v := 100.0
	for step := range 2000 {
		adds := 1
		switch r := rng.IntN(50); {
		case r == 0:
			adds = 3
		case r == 1:
			now = now.Add(time.Hour) // gap: the window restarts
		}
		for range adds {
			now = now.Add(15 * time.Second)
			v += rng.NormFloat64() * 3
			if step > 1000 {
				v = math.Round(v) // integer-valued: ties everywhere
			}
			ring.Add(Sample{T: now, V: v + float64(rng.IntN(3))})
		}
		buf = ring.Since(now.Add(-15*time.Minute), buf[:0])
		if rng.IntN(200) == 0 && len(buf) > 2 {
			buf[len(buf)/2].V += 1 // edited history must not be trusted
		}
		conf := 0.99
		got := e.Fit(buf, conf)
		var fresh Estimator
		want := fresh.Fit(buf, conf)
		if !sameBits(got, want) {
			t.Fatalf("step %d: sliding %+v\nfresh %+v", step, got, want)
		}
		if step%100 == 0 {
			checkAgainstBrute(t, buf, conf, got)
		}
	}
	if e.slides < 1500 {
		t.Fatalf("only %d of 2000 fits slid (rebuilds %d): incremental path not exercised", e.slides, e.rebuilds)
	}
	t.Logf("slides %d rebuilds %d", e.slides, e.rebuilds)
}

func sameBits(a, b Fit) bool {
	fb := math.Float64bits
	return a.N == b.N && a.Pairs == b.Pairs && fb(a.Slope) == fb(b.Slope) && fb(a.Intercept) == fb(b.Intercept) &&
		fb(a.Lower) == fb(b.Lower) && fb(a.Upper) == fb(b.Upper) && fb(a.S) == fb(b.S) &&
		fb(a.VarS) == fb(b.VarS) && fb(a.Z) == fb(b.Z) && fb(a.P) == fb(b.P)
}

// TestSenLowerBoundCoverage checks the one-sided bound means what it says:
// for a linear trend in i.i.d. noise, the 0.99 lower bound lies below the
// true slope in at least about 99% of series (rounding outwards can only
// raise that), and is not uselessly loose.
func TestSenLowerBoundCoverage(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(11, 12))
	const trials, n, slope = 1000, 40, 0.5
	var e Estimator
	covered, falsePos := 0, 0
	s := make([]Sample, n)
	for range trials {
		for i := range s {
			s[i] = Sample{T: tEpoch.Add(time.Duration(i) * time.Second), V: slope*float64(i) + rng.NormFloat64()*5}
		}
		if f := e.Fit(s, 0.99); f.Lower <= slope {
			covered++
		}
		for i := range s { // no trend: MK's one-sided p < 0.01 about 1% of the time
			s[i].V = rng.NormFloat64()
		}
		if _, _, p := MannKendall(s); p < 0.01 {
			falsePos++
		}
	}
	t.Logf("coverage %.4f, MK false positives %.4f", float64(covered)/trials, float64(falsePos)/trials)
	if c := float64(covered) / trials; c < 0.98 || c > 0.9995 {
		t.Errorf("lower-bound coverage %.4f, want about 0.99", c)
	}
	if fp := float64(falsePos) / trials; fp < 0.002 || fp > 0.025 {
		t.Errorf("Mann–Kendall false-positive rate %.4f at 0.01, want about 0.01", fp)
	}
}

func TestSelectRanks(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for range 500 {
		n := 1 + rng.IntN(300)
		a := make([]float64, n)
		for i := range a {
			a[i] = float64(rng.IntN(20)) // many duplicates
			if rng.IntN(2) == 0 {
				a[i] = rng.NormFloat64()
			}
		}
		want := slices.Sorted(slices.Values(a))
		var ranks []int
		for range 1 + rng.IntN(4) {
			ranks = append(ranks, rng.IntN(n))
		}
		slices.Sort(ranks)
		selectRanks(a, ranks)
		for _, r := range ranks {
			if a[r] != want[r] {
				t.Fatalf("rank %d: %v, want %v", r, a[r], want[r])
			}
		}
	}
}

func TestEstimatorZeroAndTinyInputs(t *testing.T) {
	var e Estimator
	if f := e.Fit(nil, 0.99); f.N != 0 || f.Slope != 0 || f.P != 0.5 {
		t.Errorf("empty: %+v", f)
	}
	if f := e.Fit(seriesOf(time.Second, 5), 0.99); f.N != 1 || f.Intercept != 5 {
		t.Errorf("one sample: %+v", f)
	}
	// Two samples at the same instant: no slope, no trend.
	s := []Sample{{T: tEpoch, V: 1}, {T: tEpoch, V: 9}}
	if f := e.Fit(s, 0.99); f.Pairs != 0 || f.Slope != 0 || f.S != 0 {
		t.Errorf("same instant: %+v", f)
	}
	if f := e.Fit([]Sample{{T: tEpoch, V: math.NaN()}, {T: tEpoch.Add(time.Second), V: math.Inf(1)}}, 0.99); f.N != 0 {
		t.Errorf("non-finite only: %+v", f)
	}
}

// TestBlocksMultiset checks the blocked sorted multiset against a sorted
// slice under random inserts and removes (many duplicates, growth and
// shrinkage so blocks split, merge and empty).
func TestBlocksMultiset(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	var b blocks
	var ref []float64
	b.reset(nil)
	for step := range 20000 {
		grow := (step/2000)%2 == 0 // phases of net growth and net shrinkage
		if len(ref) == 0 || (rng.IntN(10) < 6) == grow {
			v := float64(rng.IntN(50))
			if rng.IntN(2) == 0 {
				v = rng.NormFloat64()
			}
			b.insert(v)
			i, _ := slices.BinarySearch(ref, v)
			ref = slices.Insert(ref, i, v)
		} else {
			v := ref[rng.IntN(len(ref))]
			if rng.IntN(20) == 0 {
				v += 0.5 // absent (mostly)
			}
			i, found := slices.BinarySearch(ref, v)
			if got := b.remove(v); got != found {
				t.Fatalf("step %d: remove(%v) = %v, want %v", step, v, got, found)
			}
			if found {
				ref = slices.Delete(ref, i, i+1)
			}
		}
		if b.total != len(ref) {
			t.Fatalf("step %d: total %d, want %d", step, b.total, len(ref))
		}
		if step%97 == 0 && len(ref) > 0 {
			ranks := []int{0, len(ref) / 3, len(ref) / 2, len(ref) - 1}
			out := make([]float64, len(ranks))
			b.at(ranks, out)
			for k, r := range ranks {
				if out[k] != ref[r] {
					t.Fatalf("step %d: rank %d = %v, want %v", step, r, out[k], ref[r])
				}
			}
			if nb := len(b.seg); nb > 4*len(ref)/blockCap+1 {
				t.Fatalf("step %d: %d blocks for %d values", step, nb, len(ref))
			}
		}
	}
}
