package leakcheck

import "math"

// The Mann–Kendall test: does the series rise more often than it falls,
// pair by pair? It is reported beside the slope bound as a separate,
// distribution-free rank check; Detector says why the threshold on the
// slope bound, not this test, carries the decision.

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

// MannKendall returns the Mann–Kendall S statistic of s, the tie- and
// continuity-corrected Z, and the one-sided p-value for an increasing trend,
// reusing e's state.
func (e *Estimator) MannKendall(s []Sample) (S, z, p float64) {
	f := e.fit(s, DefaultConfidence, false)
	return f.S, f.Z, f.P
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
