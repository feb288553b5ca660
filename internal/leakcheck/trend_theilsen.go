package leakcheck

// The Theil–Sen estimator: the median of the pairwise slopes, which ignores
// up to 29% wild points, and the median intercept that goes with it.

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

// TheilSen returns the Theil–Sen slope of s (the median of the slopes between
// every pair of samples, per second) and the intercept, the median of
// V - slope·t with t in seconds since s[0].T, i.e. the fitted value at the
// first sample's time. Fewer than two samples give slope 0. It allocates; a
// caller that repeats should keep an Estimator.
func TheilSen(s []Sample) (slope, intercept float64) {
	var e Estimator
	return e.TheilSen(s)
}
