package leakcheck

import (
	"math"
	"time"
)

// Robust trend statistics over a series of Samples: the Theil–Sen slope, Sen's
// (1968) distribution-free confidence interval for it, and the Mann–Kendall
// trend test. They are rank statistics on purpose: GC sawtooth, spikes and
// fault bumps drag a least-squares slope about but barely move a median of
// slopes or a count of signs. All three are functions of the n(n-1)/2
// pairwise comparisons, so one Estimator holds the pairs once and every
// statistic reads them. This file is the Estimator and the Fit it returns;
// each part has its own file:
//
//	trend_window.go      the held series and its pairs, slid forward one
//	                     evaluation at a time instead of recomputed
//	trend_blocks.go      the sorted multiset of pairwise slopes
//	trend_theilsen.go    Theil–Sen slope and intercept
//	trend_sen.go         Sen's confidence bounds for the slope
//	trend_mannkendall.go Mann–Kendall S, tie-corrected variance, Z and p
//	trend_normal.go      the normal quantile that sets Sen's bounds' width
//	trend_select.go      quickselect, for the intercept's median
//
// All of it is pure: no clock, no goroutines, no I/O; time is an argument.
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
