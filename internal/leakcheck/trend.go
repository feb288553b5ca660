package leakcheck

import (
	"math"
	"slices"
	"time"
)

// Robust trend statistics over a series of Samples: the Theil–Sen slope, Sen's
// (1968) distribution-free confidence interval for it, and the Mann–Kendall
// trend test. All three are functions of the n(n-1)/2 pairwise comparisons.
//
// Cost. A detector evaluates a sliding window every interval: from one
// evaluation to the next a sample leaves at the old end and one arrives at
// the new end, changing 2(n-1) of the n(n-1)/2 pairs. The Estimator exploits
// that. It holds the last series and, when the next one is the same series
// slid forward (checked sample for sample), updates only the changed pairs:
// Mann–Kendall's S by their signs, the sorted values (tie groups) by one
// delete and one insert, and the multiset of slopes, kept sorted in blocks of
// at most 64 (type blocks), by one delete or insert per pair — a binary
// search over the blocks, one within a block, and a short copy. Any order
// statistic is then a walk over the block lengths. Anything else — the first call, a
// gap, an edited or unordered series, non-finite values — rebuilds from
// scratch (all pairs, one sort). Both paths compute a pair's slope with the
// same expression from the same integers, so their results are bit-identical
// (tested). For the default window (30m at 15s: n = 121, 7260 pairs) a
// detector's sliding evaluation costs ~35 µs and allocates nothing; a cold
// one ~0.9 ms (BenchmarkEvaluate). Recomputing every evaluation from scratch
// with quickselect instead cost ~55 µs plain but ~800 µs under -race, which
// made 72-hour simulations too slow to test; sliding is ~4× cheaper there.
//
// Time is measured in integer nanoseconds between samples, so slopes are per
// second and time differences are exact; the intercept is the fitted value at
// the first sample's time. Pairs with equal timestamps give no slope and are
// ties in time for Mann–Kendall. Samples may come in any order (unordered
// input always rebuilds); non-finite values are skipped.

// Fit is one robust trend estimate.
type Fit struct {
	N     int // finite samples used
	Pairs int // pairwise slopes (pairs with distinct times)
	// Slope is the Theil–Sen estimate (median pairwise slope), per second;
	// Intercept is the fitted value at the first sample's time.
	Slope, Intercept float64
	// Lower and Upper are Sen's confidence bounds for the slope, each
	// one-sided at the requested confidence (see SenConfidence). They are
	// -Inf and +Inf when the series is too short for that confidence.
	Lower, Upper float64
	// Mann–Kendall: S statistic, its tie-corrected variance, the
	// continuity-corrected Z and the one-sided p-value for an increasing
	// trend.
	S, VarS, Z, P float64
}

// Estimator computes Fits. It keeps the pairwise state of the last series it
// saw, so the next, overlapping one costs O(n) block operations rather than
// O(n² log n),
// and its buffers grow to the largest series and are then reused: a detector
// that runs every 15 seconds for days neither burns CPU nor churns the heap.
// The zero value is ready to use; an Estimator is not safe for concurrent
// use.
type Estimator struct {
	// The held series: finite samples, in the caller's order.
	valid   bool
	sliding bool      // win is the raw held series, time-ordered and all finite
	base    time.Time // ts are nanoseconds since base
	win     []Sample
	ts      []int64
	vs      []float64
	// Buffers that win, ts and vs slide through (dropFront).
	winBuf []Sample
	tsBuf  []int64
	vsBuf  []float64
	ys     []float64 // vs ascending, for the tie correction
	s      int       // Mann–Kendall S
	slopes blocks    // every pairwise slope

	all, tmp []float64 // scratch
	ranks    [4]int

	rebuilds, slides int // counters for tests and benchmarks
}

// pairSlope returns the slope between (ti, vi) and (tj, vj) in units per
// second, the pair's Mann–Kendall sign (sign of the change, oriented forward
// in time), and whether it has a slope (distinct times). Every path calls
// it, so a pair's slope is always the same bits.
func pairSlope(ti int64, vi float64, tj int64, vj float64) (slope float64, sg int, ok bool) {
	dy := vj - vi
	if dy > 0 {
		sg = 1
	} else if dy < 0 {
		sg = -1
	}
	d := tj - ti
	switch {
	case d == 0:
		return 0, 0, false
	case d < 0: // only in unordered series
		sg = -sg
	}
	slope = dy / (float64(d) / 1e9)
	if slope == 0 {
		slope = 0 // one zero: -0 and +0 are the same slope
	}
	return slope, sg, true
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// sync makes the held series equal to the finite samples of s.
func (e *Estimator) sync(s []Sample) {
	if e.valid && e.sliding && len(s) > 0 {
		// The first held sample not before the new series' start.
		w := e.win
		k, hi := 0, len(w)
		for k < hi {
			m := int(uint(k+hi) >> 1)
			if w[m].T.Before(s[0].T) {
				k = m + 1
			} else {
				hi = m
			}
		}
		overlap := len(w) - k
		if overlap > 0 && overlap <= len(s) && 2*(k+len(s)-overlap) <= len(s) &&
			slices.Equal(w[k:], s[:overlap]) && e.appendable(s[overlap:]) {
			if e.slide(k, s[overlap:]) {
				return
			}
		}
	}
	e.rebuild(s)
}

// appendable reports whether news can extend the held series: all finite and
// in time order after its last sample.
func (e *Estimator) appendable(news []Sample) bool {
	last := e.win[len(e.win)-1].T
	for _, p := range news {
		if !finite(p.V) || p.T.Before(last) {
			return false
		}
		last = p.T
	}
	return true
}

// rebuild replaces the held series with the finite samples of s and computes
// every pair.
func (e *Estimator) rebuild(s []Sample) {
	e.rebuilds++
	// Room for 2n, so sliding moves the series back to the start of its
	// buffer only every n steps (dropFront).
	e.tsBuf = slices.Grow(e.tsBuf[:0], 2*len(s))
	e.vsBuf = slices.Grow(e.vsBuf[:0], 2*len(s))
	e.winBuf = slices.Grow(e.winBuf[:0], 2*len(s))
	e.ts, e.vs, e.win = e.tsBuf, e.vsBuf, e.winBuf
	e.sliding = true
	for i, p := range s {
		if !finite(p.V) {
			e.sliding = false
			continue
		}
		if len(e.ts) == 0 {
			e.base = p.T
		}
		if i > 0 && p.T.Before(s[i-1].T) {
			e.sliding = false
		}
		e.ts = append(e.ts, int64(p.T.Sub(e.base)))
		e.vs = append(e.vs, p.V)
	}
	if e.sliding {
		e.win = append(e.win, s...)
	}
	e.valid = len(e.ts) > 0
	e.ys = append(e.ys[:0], e.vs...)
	slices.Sort(e.ys)
	e.s = 0
	e.all = e.all[:0]
	for i, ti := range e.ts {
		vi := e.vs[i]
		for j := i + 1; j < len(e.ts); j++ {
			sl, sg, ok := pairSlope(ti, vi, e.ts[j], e.vs[j])
			e.s += sg
			if ok {
				e.all = append(e.all, sl)
			}
		}
	}
	slices.Sort(e.all)
	e.slopes.reset(e.all)
}

// slide drops the first k held samples and appends news (finite, ordered),
// updating S, the sorted values and the slopes. It reports false if the
// state turned out inconsistent (a removed slope not held: impossible while
// every path computes slopes identically); the caller then rebuilds.
func (e *Estimator) slide(k int, news []Sample) bool {
	e.slides++
	ts, vs := e.ts, e.vs
	for i := range k {
		ti, vi := ts[i], vs[i]
		for j := i + 1; j < len(ts); j++ {
			sl, sg, ok := pairSlope(ti, vi, ts[j], vs[j])
			e.s -= sg
			if ok && !e.slopes.remove(sl) {
				return false
			}
		}
	}
	for _, v := range e.vs[:k] {
		i, found := slices.BinarySearch(e.ys, v)
		if !found {
			return false
		}
		e.ys = slices.Delete(e.ys, i, i+1)
	}
	e.ts = dropFront(e.ts, &e.tsBuf, k, len(news))
	e.vs = dropFront(e.vs, &e.vsBuf, k, len(news))
	e.win = dropFront(e.win, &e.winBuf, k, len(news))
	for _, p := range news {
		ta, va := int64(p.T.Sub(e.base)), p.V
		vs := e.vs
		for j, tj := range e.ts {
			sl, sg, ok := pairSlope(tj, vs[j], ta, va)
			e.s += sg
			if ok {
				e.slopes.insert(sl)
			}
		}
		e.ts = append(e.ts, ta)
		e.vs = append(e.vs, va)
		e.win = append(e.win, p)
		i, _ := slices.BinarySearch(e.ys, va)
		e.ys = slices.Insert(e.ys, i, va)
	}
	return true
}

// dropFront removes the first k elements of s, a window into *buf, and
// returns it with room to append add more: usually s[k:] itself, and every
// so often s moved back to the start of *buf (grown if too small). A sliding
// series is thus shifted once per len(*buf)-len(s) steps, not every step.
func dropFront[T any](s []T, buf *[]T, k, add int) []T {
	s = s[k:]
	if cap(s)-len(s) >= add {
		return s
	}
	if cap(*buf) < 2*(len(s)+add) {
		*buf = make([]T, 0, 2*(len(s)+add))
	}
	return append((*buf)[:0], s...) // memmove: overlap is fine
}

// blocks is a sorted multiset of float64 (no NaN) in blocks of at most
// blockCap values: a value is inserted or removed with a binary search over
// the blocks' last values, one within a block and a copy of at most
// blockCap values; the k-th smallest is a walk over the block lengths.
// Blocks split when full, and a block under a quarter full merges with its
// right neighbour when the two fit in three quarters of a block, so there
// are between len/blockCap and about 4·len/blockCap+1 of them. Storage is
// reused: a steady sliding window allocates nothing.
type blocks struct {
	vals  []float64 // segment g holds vals[g*blockCap : g*blockCap+blockCap]
	free  []int32   // unused segments
	seg   []int32   // segment of the i-th block, blocks in value order
	n     []int32   // length of the i-th block (> 0)
	last  []float64 // largest value of the i-th block
	total int
}

const blockCap = 64

func (b *blocks) block(i int) []float64 {
	o := int(b.seg[i]) * blockCap
	return b.vals[o : o+int(b.n[i])]
}

// newSeg returns an unused segment.
func (b *blocks) newSeg() int32 {
	if k := len(b.free); k > 0 {
		g := b.free[k-1]
		b.free = b.free[:k-1]
		return g
	}
	g := int32(len(b.vals) / blockCap)
	b.vals = append(b.vals, make([]float64, blockCap)...)
	return g
}

// reset fills b with sorted, in half-full blocks.
func (b *blocks) reset(sorted []float64) {
	b.free = b.free[:0]
	for g := range int32(len(b.vals) / blockCap) {
		b.free = append(b.free, g)
	}
	b.seg, b.n, b.last = b.seg[:0], b.n[:0], b.last[:0]
	b.total = len(sorted)
	for len(sorted) > 0 {
		c := min(len(sorted), blockCap/2)
		g := b.newSeg()
		copy(b.vals[int(g)*blockCap:], sorted[:c])
		b.seg = append(b.seg, g)
		b.n = append(b.n, int32(c))
		b.last = append(b.last, sorted[c-1])
		sorted = sorted[c:]
	}
}

// find returns the first block whose last value is >= v (len if none).
func (b *blocks) find(v float64) int {
	last := b.last
	lo, hi := 0, len(last)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if last[m] < v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

func (b *blocks) insert(v float64) {
	b.total++
	if len(b.seg) == 0 {
		g := b.newSeg()
		b.vals[int(g)*blockCap] = v
		b.seg, b.n, b.last = append(b.seg, g), append(b.n, 1), append(b.last, v)
		return
	}
	i := min(b.find(v), len(b.seg)-1)
	if b.n[i] == blockCap {
		b.split(i)
		if v > b.last[i] {
			i++
		}
	}
	blk := b.block(i)
	j := lowerBound(blk, v)
	blk = blk[:len(blk)+1] // within the segment: len < blockCap
	copy(blk[j+1:], blk[j:])
	blk[j] = v
	b.n[i]++
	if j == len(blk)-1 {
		b.last[i] = v
	}
}

// split moves the upper half of full block i into a new block i+1.
func (b *blocks) split(i int) {
	g := b.newSeg()
	blk := b.block(i)
	h := len(blk) / 2
	copy(b.vals[int(g)*blockCap:], blk[h:])
	b.seg = slices.Insert(b.seg, i+1, g)
	b.n = slices.Insert(b.n, i+1, int32(len(blk)-h))
	b.last = slices.Insert(b.last, i+1, b.last[i])
	b.n[i] = int32(h)
	b.last[i] = blk[h-1]
}

// remove deletes one value equal to v; false if there is none.
func (b *blocks) remove(v float64) bool {
	i := b.find(v)
	if i == len(b.seg) {
		return false
	}
	blk := b.block(i)
	j := lowerBound(blk, v)
	if j == len(blk) || blk[j] != v {
		return false
	}
	copy(blk[j:], blk[j+1:])
	blk = blk[:len(blk)-1]
	b.n[i]--
	b.total--
	switch {
	case len(blk) == 0:
		b.drop(i)
		return true
	case j == len(blk):
		b.last[i] = blk[len(blk)-1]
	}
	// Merge a small block with its right neighbour when both fit
	// comfortably, so the block count stays O(len/blockCap).
	if int(b.n[i]) < blockCap/4 && i+1 < len(b.seg) && int(b.n[i]+b.n[i+1]) <= blockCap*3/4 {
		next := b.block(i + 1)
		o := int(b.seg[i]) * blockCap
		copy(b.vals[o+len(blk):], next)
		b.n[i] += b.n[i+1]
		b.last[i] = b.last[i+1]
		b.drop(i + 1)
	}
	return true
}

// drop removes block i from the order and frees its segment.
func (b *blocks) drop(i int) {
	b.free = append(b.free, b.seg[i])
	b.seg = slices.Delete(b.seg, i, i+1)
	b.n = slices.Delete(b.n, i, i+1)
	b.last = slices.Delete(b.last, i, i+1)
}

// at stores the ranks-th smallest values (ranks ascending, in [0, total))
// into out.
func (b *blocks) at(ranks []int, out []float64) {
	base, i := 0, 0
	for k, r := range ranks {
		for base+int(b.n[i]) <= r {
			base += int(b.n[i])
			i++
		}
		out[k] = b.vals[int(b.seg[i])*blockCap+r-base]
	}
}

// lowerBound returns the first index of a with a[i] >= v (len(a) if none).
func lowerBound(a []float64, v float64) int {
	lo, hi := 0, len(a)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if a[m] < v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// mkVariance returns Var(S) under H0 with the correction for tied values:
// [n(n-1)(2n+5) - Σ t(t-1)(2t+5)] / 18 over groups of t equal values.
func (e *Estimator) mkVariance() float64 {
	ys := e.ys
	n := len(ys)
	ties := 0.0
	for i := 0; i < n; {
		j := i + 1
		for j < n && ys[j] == ys[i] {
			j++
		}
		if t := float64(j - i); t > 1 {
			ties += t * (t - 1) * (2*t + 5)
		}
		i = j
	}
	nf := float64(n)
	return (nf*(nf-1)*(2*nf+5) - ties) / 18
}

// mkZP returns the continuity-corrected Z of S and the one-sided p-value
// P(Z' >= Z) for an increasing trend.
func mkZP(s, varS float64) (z, p float64) {
	if varS <= 0 {
		return 0, 0.5
	}
	switch {
	case s > 0:
		z = (s - 1) / math.Sqrt(varS)
	case s < 0:
		z = (s + 1) / math.Sqrt(varS)
	}
	return z, 0.5 * math.Erfc(z/math.Sqrt2)
}

// senRanks returns the 0-based ranks, among m sorted pairwise slopes, of
// Sen's lower and upper confidence bounds for half-width c = z·sqrt(Var S).
//
// Sen's interval is [slope_(M1), slope_(M2+1)] (1-based order statistics)
// with M1 = (m - c)/2 and M2 = (m + c)/2. M1 and M2 are rarely integers; we
// round outwards (floor for M1, ceil for M2) instead of interpolating, so the
// interval is never narrower than the nominal one: the conservative side for
// an alarm that fires when the lower bound clears a threshold. A rank that
// falls off either end means the data cannot bound the slope at this
// confidence; it is reported as -1 or m (the caller maps them to ∓Inf).
func senRanks(m int, c float64) (lo, hi int) {
	m1 := math.Floor((float64(m) - c) / 2) // 1-based rank of the lower bound
	m2 := math.Ceil((float64(m)+c)/2) + 1  // 1-based rank of the upper bound
	lo, hi = -1, m
	if m1 >= 1 {
		lo = int(m1) - 1
	}
	if m2 <= float64(m) {
		hi = int(m2) - 1
	}
	return lo, hi
}

// Fit estimates the trend of s. confidence, in (0.5, 1), sets the one-sided
// level of Sen's bounds (see SenConfidence).
func (e *Estimator) Fit(s []Sample, confidence float64) Fit {
	f := e.fit(s, confidence, true)
	if f.N >= 1 {
		f.Intercept = e.intercept(f.Slope)
	}
	return f
}

// fit is Fit without the intercept; bounds false skips Sen's bounds too.
func (e *Estimator) fit(s []Sample, confidence float64, bounds bool) Fit {
	e.sync(s)
	f := Fit{N: len(e.ts), Lower: math.Inf(-1), Upper: math.Inf(1), P: 0.5}
	if f.N < 2 {
		return f
	}
	f.S = float64(e.s)
	f.VarS = e.mkVariance()
	f.Z, f.P = mkZP(f.S, f.VarS)
	m := e.slopes.total
	f.Pairs = m
	if m == 0 {
		return f
	}
	lo, hi := -1, m
	if bounds {
		lo, hi = senRanks(m, NormalQuantile(confidence)*math.Sqrt(max(f.VarS, 0)))
	}
	ranks := e.ranks[:0]
	if lo >= 0 {
		ranks = append(ranks, lo)
	}
	ranks = append(ranks, (m-1)/2, m/2)
	if hi < m {
		ranks = append(ranks, hi)
	}
	var v [4]float64
	e.slopes.at(ranks, v[:len(ranks)])
	i := 0
	if lo >= 0 {
		f.Lower = v[0]
		i = 1
	}
	f.Slope = (v[i] + v[i+1]) / 2
	if hi < m {
		f.Upper = v[i+2]
	}
	return f
}

// slope returns only the Theil–Sen slope of s.
func (e *Estimator) slope(s []Sample) float64 {
	return e.fit(s, DefaultConfidence, false).Slope
}

// intercept returns median(v - slope·t) over the held series, t in seconds
// since its first sample.
func (e *Estimator) intercept(slope float64) float64 {
	e.tmp = e.tmp[:0]
	t0 := e.ts[0]
	for i, t := range e.ts {
		e.tmp = append(e.tmp, e.vs[i]-slope*(float64(t-t0)/1e9))
	}
	m := len(e.tmp)
	e.ranks[0], e.ranks[1] = (m-1)/2, m/2
	selectRanks(e.tmp, e.ranks[:2])
	return (e.tmp[(m-1)/2] + e.tmp[m/2]) / 2
}

// TheilSen returns the median of the pairwise slopes of s (per second) and the
// median intercept at the first sample's time, reusing e's state.
func (e *Estimator) TheilSen(s []Sample) (slope, intercept float64) {
	f := e.fit(s, DefaultConfidence, false)
	if f.N >= 1 {
		f.Intercept = e.intercept(f.Slope)
	}
	return f.Slope, f.Intercept
}

// SenConfidence returns Sen's distribution-free bounds for the Theil–Sen
// slope of s, reusing e's state. See the package-level SenConfidence.
func (e *Estimator) SenConfidence(s []Sample, confidence float64) (lower, upper float64) {
	f := e.fit(s, confidence, true)
	return f.Lower, f.Upper
}

// MannKendall returns the Mann–Kendall S statistic of s, the tie- and
// continuity-corrected Z, and the one-sided p-value for an increasing trend,
// reusing e's state.
func (e *Estimator) MannKendall(s []Sample) (S, z, p float64) {
	f := e.fit(s, DefaultConfidence, false)
	return f.S, f.Z, f.P
}

// TheilSen returns the Theil–Sen slope of s (the median of the slopes between
// every pair of samples, per second) and the intercept, the median of
// V - slope·t with t in seconds since s[0].T, i.e. the fitted value at the
// first sample's time. Fewer than two samples give slope 0. It allocates; a
// caller that repeats should keep an Estimator.
func TheilSen(s []Sample) (slope, intercept float64) {
	var e Estimator
	return e.TheilSen(s)
}

// SenConfidence returns Sen's (1968) nonparametric confidence bounds for the
// Theil–Sen slope of s. With the N pairwise slopes sorted and
// C = z·sqrt(Var S) (Var S the tie-corrected Mann–Kendall variance), the
// lower bound is the M1-th and the upper the (M2+1)-th slope, M1 = (N-C)/2,
// M2 = (N+C)/2, with ranks rounded outwards (never narrower than nominal).
//
// z is the ONE-sided quantile z_confidence, not z_{1-α/2}: a leak alarm asks
// only whether the slope is above a threshold with the given confidence, so
// lower is a one-sided lower bound at that confidence (0.99 → z = 2.326).
// upper is its mirror image, so [lower, upper] is a two-sided interval at
// 2·confidence-1. A bound the data cannot support at that confidence (too
// few samples) is -Inf or +Inf.
func SenConfidence(s []Sample, confidence float64) (lower, upper float64) {
	var e Estimator
	return e.SenConfidence(s, confidence)
}

// MannKendall returns the Mann–Kendall trend statistic of s: S, the sum over
// all pairs (i earlier than j) of sign(V_j - V_i); the Z score
// (S∓1)/sqrt(Var S) with continuity correction and Var S corrected for tied
// values, [n(n-1)(2n+5) - Σ t(t-1)(2t+5)]/18; and the one-sided p-value of
// an increasing trend, 1 - Φ(Z). No trend gives p near 0.5, a falling series
// p near 1.
func MannKendall(s []Sample) (S, z, p float64) {
	var e Estimator
	return e.MannKendall(s)
}

// NormalQuantile returns the standard normal quantile Φ⁻¹(p) for p in
// (0, 1) (±Inf at 0 and 1, NaN outside): Acklam's rational approximation
// (relative error 1.2e-9) refined by one Halley step on Φ computed with
// Erfc, which brings it to full double precision. It avoids √2·erfinv(2p-1),
// which loses half the digits of a tail probability in 2p-1.
func NormalQuantile(p float64) float64 {
	switch {
	case math.IsNaN(p) || p < 0 || p > 1:
		return math.NaN()
	case p == 0:
		return math.Inf(-1)
	case p == 1:
		return math.Inf(1)
	case p > 0.5:
		return -NormalQuantile(1 - p)
	}
	// Lower half, where Φ(x) = erfc(-x/√2)/2 is accurate.
	var x float64
	if p < 0.02425 {
		q := math.Sqrt(-2 * math.Log(p))
		x = (((((-7.784894002430293e-03*q-3.223964580411365e-01)*q-2.400758277161838e+00)*q-2.549732539343734e+00)*q+4.374664141464968e+00)*q + 2.938163982698783e+00) /
			((((7.784695709041462e-03*q+3.224671290700398e-01)*q+2.445134137142996e+00)*q+3.754408661907416e+00)*q + 1)
	} else {
		q := p - 0.5
		r := q * q
		x = (((((-3.969683028665376e+01*r+2.209460984245205e+02)*r-2.759285104469687e+02)*r+1.383577518672690e+02)*r-3.066479806614716e+01)*r + 2.506628277459239e+00) * q /
			(((((-5.447609879822406e+01*r+1.615858368580409e+02)*r-1.556989798598866e+02)*r+6.680131188771972e+01)*r-1.328068155288572e+01)*r + 1)
	}
	e := 0.5*math.Erfc(-x/math.Sqrt2) - p
	u := e * math.Sqrt(2*math.Pi) * math.Exp(x*x/2)
	return x - u/(1+x*u/2)
}

// selectRanks partially orders a so that a[k] holds the k-th smallest value
// (0-based) for every k in ranks, which must lie in [0, len(a)) and be sorted
// ascending (duplicates allowed). It is quickselect for several ranks at
// once: one partition serves every rank, and only the sides holding a rank
// are visited. Expected time O(len(a)); recursion depth is at most len(ranks).
func selectRanks(a []float64, ranks []int) { selectIn(a, 0, len(a), ranks) }

func selectIn(a []float64, lo, hi int, ranks []int) {
	for len(ranks) > 0 {
		if hi-lo <= 16 {
			insertionSort(a[lo:hi])
			return
		}
		j := lo + partition(a[lo:hi]) // a[lo:j+1] <= pivot <= a[j+1:hi]
		split := 0
		for split < len(ranks) && ranks[split] <= j {
			split++
		}
		left, right := ranks[:split], ranks[split:]
		switch {
		case len(left) > 0 && len(right) > 0:
			selectIn(a, lo, j+1, left)
			lo, ranks = j+1, right
		case len(left) > 0:
			hi, ranks = j+1, left
		default:
			lo, ranks = j+1, right
		}
	}
}

// partition is Hoare's scheme with a median-of-three pivot moved to a[0]. It
// returns j with 0 <= j < len(a)-1, every a[:j+1] <= pivot and every
// a[j+1:] >= pivot. Runs of equal values split evenly, so slopes that tie
// (integer-valued signals) do not degrade it.
func partition(a []float64) int {
	n := len(a)
	m := n / 2
	// Median of a[0], a[m], a[n-1] to a[0].
	if a[m] < a[0] {
		a[m], a[0] = a[0], a[m]
	}
	if a[n-1] < a[m] {
		a[n-1], a[m] = a[m], a[n-1]
		if a[m] < a[0] {
			a[m], a[0] = a[0], a[m]
		}
	}
	a[0], a[m] = a[m], a[0]
	p := a[0]
	i, j := -1, n
	for {
		for i++; a[i] < p; i++ {
		}
		for j--; a[j] > p; j-- {
		}
		if i >= j {
			return j
		}
		a[i], a[j] = a[j], a[i]
	}
}

func insertionSort(a []float64) {
	for i := 1; i < len(a); i++ {
		v := a[i]
		j := i
		for j > 0 && a[j-1] > v {
			a[j] = a[j-1]
			j--
		}
		a[j] = v
	}
}
