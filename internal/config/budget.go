package config

import (
	"fmt"
	"math"
	"time"
)

// Confidences returns the confidence of the main window's bound and of
// each of Windows, deriving those left unset (0) from FalseAlarmBudget.
//
// An alert claims that a signal grows faster than its threshold. Take the
// worst case that claim can be wrong in: the signal grows at exactly the
// threshold (a window with a factor above 1 asks for more and errs less).
// A window's verdict is then a standardized statistic Z, here wrong when Z
// rises above z = Φ⁻¹(c), c the window's confidence. Z is judged again at
// every sample as the window slides, so over a run of length P it does not
// take P/W independent chances (W the window) but crosses z far more
// often: by the scan-statistic approximation (Siegmund and Venkatraman
// 1995, for a process whose correlation falls as 1 − β|τ|; for a sliding
// least-squares slope β = 3/W), the expected upcrossings over P are
//
//	E_w(z) = P/W · (1 − Φ(z) + 3·z·φ(z)·ν(z·√(6Δ/W)))
//
// with Δ the sampling interval and ν Siegmund's discreteness correction.
// At the default 30-minute window and 15 s interval that is 13 times
// P/W·(1−c) at c = 0.99. The alert's leakcheck.for consecutive verdicts and
// the plateau guard only make a false alarm rarer.
//
// The expected false alarms per signal over Per are at most Σ_w E_w.
// Windows with an explicit confidence spend their E_w first; the rest of
// Alarms is shared equally by the others, each solving E_w(z) = share, so
// the short windows, which cross most often, get the strictest bars. A
// signal that does not grow at all is far inside the claim's null and
// raises far fewer; what is left is noise the model does not know (steps,
// drifts), which the windows' factors and the plateau guard are for.
// TestFalseAlarmBudgetHolds and BenchmarkFalseAlarmBudget measure the
// bound, BenchmarkFalseAlarms the clean case.
//
// Its error is an Errors naming the field at fault.
func (l LeakCheck) Confidences() (main float64, windows []float64, err error) {
	type win struct {
		w    time.Duration
		c    *float64
		name string
	}
	main = l.Confidence
	windows = make([]float64, len(l.Windows))
	all := []win{{l.Window.Std(), &main, "leakcheck.confidence"}}
	for i, w := range l.Windows {
		windows[i] = w.Confidence
		all = append(all, win{w.Window.Std(), &windows[i], index("leakcheck.windows", i) + ".confidence"})
	}
	b := l.FalseAlarmBudget
	if b.Alarms == 0 {
		for _, w := range all[1:] {
			if *w.c == 0 {
				*w.c = main
			}
		}
		if main == 0 {
			return 0, nil, Errors{{"leakcheck.confidence", "must be set when leakcheck.false_alarm_budget.alarms is 0"}}
		}
		return main, windows, nil
	}
	per, step := b.Per.Std(), l.Interval.Std()
	spent, unset := 0.0, 0
	for _, w := range all {
		if *w.c == 0 {
			unset++
		} else if w.w > 0 {
			spent += Upcrossings(per, w.w, step, *w.c)
		}
	}
	left := b.Alarms - spent
	if left < 0 || (left == 0 && unset > 0) {
		return 0, nil, Errors{{"leakcheck.false_alarm_budget", fmt.Sprintf(
			"the windows with a confidence of their own spend %.3g false alarms per %s, all of the budget (%g; alarms: 0 turns it off)",
			spent, b.Per, b.Alarms)}}
	}
	if unset == 0 {
		return main, windows, nil
	}
	share := left / float64(unset)
	for _, w := range all {
		if *w.c != 0 {
			continue
		}
		if Upcrossings(per, w.w, step, 0.5) <= share {
			return 0, nil, Errors{{w.name, fmt.Sprintf(
				"the budget of %g false alarms per %s leaves this %s window no bar: lower the budget", b.Alarms, b.Per, w.w)}}
		}
		// E_w falls as c rises: bisect on z.
		lo, hi := 0.0, 40.0
		for range 100 {
			mid := (lo + hi) / 2
			if Upcrossings(per, w.w, step, normCDF(mid)) > share {
				lo = mid
			} else {
				hi = mid
			}
		}
		*w.c = normCDF(hi)
		if *w.c >= 1 {
			return 0, nil, Errors{{w.name, fmt.Sprintf(
				"the budget of %g false alarms per %s asks this %s window for a confidence that rounds to 1: raise the budget", b.Alarms, b.Per, w.w)}}
		}
	}
	return main, windows, nil
}

// Upcrossings is E_w (see Confidences): the expected number of times a
// window of length w sampled every step, judged at confidence c, rises
// above its bar over a run of length per, for a signal growing at exactly
// the threshold.
func Upcrossings(per, w, step time.Duration, c float64) float64 {
	z := math.Sqrt2 * math.Erfinv(2*c-1)
	if step <= 0 || step > w {
		step = w
	}
	x := z * math.Sqrt(6*float64(step)/float64(w))
	return float64(per) / float64(w) * (1 - normCDF(z) + 3*z*normPDF(z)*siegmundNu(x))
}

func normCDF(z float64) float64 { return 0.5 * math.Erfc(-z/math.Sqrt2) }
func normPDF(z float64) float64 { return math.Exp(-z*z/2) / math.Sqrt(2*math.Pi) }

// siegmundNu is Siegmund's approximation of ν(x), the overshoot
// correction for a continuous-time crossing rate sampled on a grid.
func siegmundNu(x float64) float64 {
	if x < 1e-6 {
		return 1
	}
	h := x / 2
	return (2 / x) * (normCDF(h) - 0.5) / (h*normCDF(h) + normPDF(h))
}
