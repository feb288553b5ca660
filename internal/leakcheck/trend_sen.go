package leakcheck

import "math"

// Sen's confidence bounds for the Theil–Sen slope: order statistics of the
// pairwise slopes, at ranks set by the Mann–Kendall variance. The detector
// alarms on the lower bound, so the rounding here errs towards a wider
// interval: fewer, not more, alarms.

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

// SenConfidence returns Sen's distribution-free bounds for the Theil–Sen
// slope of s, reusing e's state. See the package-level SenConfidence.
func (e *Estimator) SenConfidence(s []Sample, confidence float64) (lower, upper float64) {
	f := e.fit(s, confidence, true)
	return f.Lower, f.Upper
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
