package load

import (
	"math"
	"math/rand/v2"
	"time"
)

// day is the period of the diurnal swing.
const day = 24 * time.Hour

// rampFloor is where a ramp-up starts, as a share of the full rate.
const rampFloor = 0.1

// Profile is a component's target rate over the run's elapsed time.
type Profile struct {
	Rate             float64 // ops/s at steady state
	RampUp           time.Duration
	DiurnalAmplitude float64 // 0..1: ± share of Rate over 24 h
}

// RateAt is the target rate at elapsed run time el.
func (p Profile) RateAt(el time.Duration) float64 {
	r := p.Rate
	if p.RampUp > 0 && el < p.RampUp {
		r *= rampFloor + (1-rampFloor)*float64(el)/float64(p.RampUp)
	}
	if p.DiurnalAmplitude > 0 {
		r *= 1 + p.DiurnalAmplitude*math.Sin(2*math.Pi*float64(el%day)/float64(day))
	}
	return r
}

// Arrivals draws intended start times on the run's elapsed time. It is a
// pure function of its seed and start: the same seed gives the same
// schedule.
type Arrivals struct {
	prof    Profile
	poisson bool
	rng     *rand.Rand
	next    time.Duration
	// owed is how much of the next uniform arrival has accrued (0..1)
	// over the maxGap steps taken without one.
	owed float64
}

// NewArrivals starts the schedule at elapsed time from (a resumed run
// continues its ramp and its day from where it is).
func NewArrivals(p Profile, poisson bool, rng *rand.Rand, from time.Duration) *Arrivals {
	return &Arrivals{prof: p, poisson: poisson, rng: rng, next: from}
}

// maxGap bounds one inter-arrival gap, so a rate near zero (deep in a
// diurnal trough) re-reads the rate instead of sleeping for hours.
const maxGap = time.Second

// Next returns the next arrival's elapsed time and advances. For Poisson
// arrivals the gap is exponential at the rate in force at the previous
// arrival: the rate changes over minutes, gaps are milliseconds. A gap
// longer than maxGap is taken in steps of maxGap that re-read the rate: a
// Poisson draw is redrawn (memoryless, so still exact), a uniform one
// carries what accrued, so a rate of one a minute arrives every minute.
func (a *Arrivals) Next() time.Duration {
	for {
		r := a.prof.RateAt(a.next)
		var gap float64 // seconds
		switch {
		case a.poisson:
			gap = a.rng.ExpFloat64() / r
		default:
			gap = (1 - a.owed) / r
		}
		if gap < maxGap.Seconds() {
			a.owed = 0
			a.next += time.Duration(gap * float64(time.Second))
			return a.next
		}
		// No arrival within maxGap: move on without one, then look again.
		if !a.poisson && r > 0 {
			a.owed = min(a.owed+r*maxGap.Seconds(), 1)
		}
		a.next += maxGap
	}
}
