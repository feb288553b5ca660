package leakcheck

import "math"

// The standard normal quantile, for z in Sen's bounds (C = z·sqrt(Var S)).
// The standard library has no inverse of Φ, and the usual stand-in loses
// precision in exactly the tails a 0.99 confidence uses.

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
