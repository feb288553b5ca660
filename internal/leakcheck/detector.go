package leakcheck

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"time"
)

// DetectorConfig sets one signal's detector. Zero fields take the defaults
// documented on each field (see WithDefaults).
type DetectorConfig struct {
	// Threshold is the growth rate, in the signal's unit per second, above
	// which the signal is leaking (leakcheck.thresholds). Required, > 0.
	Threshold float64
	// Confidence is the one-sided confidence that the slope exceeds
	// Threshold (leakcheck.confidence); also the Mann–Kendall level, p <
	// 1-Confidence. Default 0.99.
	Confidence float64
	// Window is how far back an evaluation looks (leakcheck.window).
	// Required, > 0.
	Window time.Duration
	// Interval is the sampling interval (leakcheck.interval). It only sets
	// the MinSamples default.
	Interval time.Duration
	// MinSamples is the fewest samples in the window for a verdict. Default
	// max(8, half the samples a full window holds, (Window/Interval+1)/2):
	// a window missing more than half its samples (sampler stalls, stale
	// heap readings) is not evidence of anything. The floor of 8 keeps
	// short windows clear of the n at which Sen's bounds stop existing
	// (n < 6 at 0.99; Evaluate reports those as insufficient too).
	MinSamples int
	// PlateauFraction is the recent part of the window the plateau guard
	// looks at. Default 0.25 (7.5 minutes of a 30-minute window). Must be in
	// (0, 1].
	PlateauFraction float64
	// DisablePlateau turns the plateau guard off (for comparison only).
	DisablePlateau bool
	// Factor raises this window's bar: the slope's lower bound, and the
	// recent slope of the plateau guard, must exceed Factor·Threshold.
	// Default 1. A short window with a high factor catches a fast leak
	// early without firing on the noise a short window sees.
	Factor float64
	// MaxStepShare, when > 0, is the step guard: growth of which one rise
	// between two consecutive samples makes up more than this share (of
	// the fitted slope times the window's span) is a step or a staircase
	// of a few level shifts, not a leak. Short windows need it: a level
	// shift and a fault's transient in the same three minutes look to them
	// like a steep leak, and the plateau guard cannot tell while the last
	// step is recent. A leak grows in many small rises (even the "step"
	// canary's minute-sized ones are a third of a 3-minute rise).
	MaxStepShare float64
}

// Defaults for DetectorConfig.
const (
	DefaultConfidence      = 0.99
	DefaultPlateauFraction = 0.25
	// minMinSamples is the floor of the MinSamples default.
	minMinSamples = 8
	// coverage is the part of the window the oldest sample must reach back
	// to: before that the window is still filling (start-up, a long sampler
	// gap) and a slope over its short span would overstate noise.
	coverage = 0.8
	// minRecent is the fewest samples the plateau guard judges on.
	minRecent = 5
)

// WithDefaults returns c with zero fields set to their defaults.
func (c DetectorConfig) WithDefaults() DetectorConfig {
	if c.Confidence == 0 {
		c.Confidence = DefaultConfidence
	}
	if c.PlateauFraction == 0 {
		c.PlateauFraction = DefaultPlateauFraction
	}
	if c.Factor == 0 {
		c.Factor = 1
	}
	if c.MinSamples == 0 && c.Interval > 0 && c.Window > 0 {
		c.MinSamples = max(minMinSamples, (int(c.Window/c.Interval)+1)/2)
	}
	if c.MinSamples == 0 {
		c.MinSamples = minMinSamples
	}
	return c
}

// Validate reports the first problem with a defaulted config.
func (c DetectorConfig) Validate() error {
	switch {
	case !(c.Threshold > 0) || math.IsInf(c.Threshold, 0):
		return errors.New("threshold must be > 0")
	case !(c.Confidence > 0.5 && c.Confidence < 1):
		return errors.New("confidence must be in (0.5, 1)")
	case c.Window <= 0:
		return errors.New("window must be > 0")
	case c.Interval < 0:
		return errors.New("interval must be >= 0")
	case c.MinSamples < 3:
		return errors.New("min samples must be >= 3")
	case !(c.PlateauFraction > 0 && c.PlateauFraction <= 1):
		return errors.New("plateau fraction must be in (0, 1]")
	case !(c.MaxStepShare >= 0 && c.MaxStepShare <= 1):
		return errors.New("max step share must be in [0, 1]")
	case !(c.Factor >= 1) || math.IsInf(c.Factor, 0):
		return errors.New("factor must be >= 1")
	}
	return nil
}

// Evaluation is one detector verdict. It is JSON-safe: every float is finite.
type Evaluation struct {
	Signal string    `json:"signal"`
	At     time.Time `json:"at"`
	// Window is the window judged (DetectorConfig.Window).
	Window time.Duration `json:"window"`
	N      int           `json:"n"` // samples in the window
	// Slope is the Theil–Sen slope over the window, per second; Lower and
	// Upper are Sen's one-sided bounds at the configured confidence.
	Slope float64 `json:"slope_per_second"`
	Lower float64 `json:"lower_per_second"`
	Upper float64 `json:"upper_per_second"`
	// MKZ and MKP are the Mann–Kendall Z and one-sided p (increasing).
	MKZ float64 `json:"mk_z"`
	MKP float64 `json:"mk_p"`
	// TrendAgrees: the Mann–Kendall test rejects "no trend" in favour of
	// growth at the configured confidence (MKP < 1-Confidence).
	TrendAgrees bool `json:"trend_agrees"`
	// Detectable is the smallest growth rate this window's noise lets the
	// detector call a leak: Factor·Threshold plus the width of Sen's one-sided
	// bound (Slope - Lower). A leak at rate r reads with a lower bound of
	// about r minus that width, so it clears the threshold once r exceeds
	// this. With no noise it is the threshold; a heap wandering by 100 MiB
	// in 5-minute swings pushes it to a few MiB/min over 30 minutes.
	// Like Sen's bound it treats samples as independent, so noise that
	// wanders slower than the window makes it optimistic.
	Detectable float64 `json:"detectable_per_second"`
	// RecentSlope is the Theil–Sen slope over the last PlateauFraction of
	// the window; Plateau says it is below Threshold: growth has stopped.
	RecentSlope float64 `json:"recent_slope_per_second"`
	Plateau     bool    `json:"plateau"`
	// Insufficient: too few samples, or the window not yet covered; no
	// verdict (Suspect is false). AlertFSM.Observe treats it specially.
	Insufficient bool   `json:"insufficient"`
	Suspect      bool   `json:"suspect"`
	Reason       string `json:"reason"`
	// Hold: not suspect, but an extra window's slope is still above its
	// bar (see decide). It neither fires nor resolves: AlertFSM.Observe
	// leaves a firing alert as it is and cancels a pending one.
	Hold bool `json:"hold,omitempty"`
}

// Evaluation reasons, one per outcome (constants, so an evaluation allocates
// nothing).
const (
	ReasonInsufficient = "insufficient data"
	ReasonBelow        = "slope lower bound not above threshold"
	ReasonNoTrend      = "no significant increasing trend"
	ReasonPlateau      = "growth stopped (plateau)"
	ReasonLeak         = "leak suspected"
	ReasonHeld         = "suspect, not yet for as long as the window's plateau span"
	ReasonStep         = "one step makes most of the rise (step guard)"
	ReasonStillGrowing = "not suspect, but a window's slope is still above its bar"
)

// Detector decides, from a window of samples, whether one signal is leaking.
// It is a pure function of its arguments (no clock, no goroutines): the
// caller samples, keeps the window (a Ring) and calls Evaluate every
// interval. It keeps scratch state, so it is not safe for concurrent use.
//
// A window is suspect when all of:
//
//  1. Sen's one-sided lower bound on the Theil–Sen slope is above Threshold:
//     the signal grows faster than the threshold at the configured
//     confidence. Theil–Sen shrugs off spikes and GC sawtooth (it tolerates
//     29% wild points). The bound is about the 43rd percentile of the
//     pairwise slopes (n = 121, 0.99), and pairs from before a leak have
//     slope ~0, so no leak, however fast, fires before it spans about a
//     third of the window (about 10 minutes at 30m; PredictedDetection).
//  2. Mann–Kendall rejects "no trend" in favour of growth at the same level
//     (p < 1-Confidence). Sen's interval is built from the same Var S, so
//     a lower bound above a positive threshold nearly implies this (S ≥ C
//     up to ties and the continuity correction); it is an explicit,
//     separately reported rank test, not an independent filter. On its own
//     it would fire constantly: autocorrelated noise (wander, sawtooth)
//     makes about a third of clean 30-minute windows "significant" (the
//     72-hour tests count it). The threshold is what carries the decision.
//  3. Not a plateau: the Theil–Sen slope over the most recent
//     PlateauFraction of the window is at least Threshold.
//
// Why the plateau guard, and why this form. A cache that fills and then
// stops, or a one-off step, keeps the whole-window bound above threshold
// for up to a window after growth ends: the window straddles the growth,
// and with noise the pairs on either side of it spread both ways while the
// pairs across it are all steep. The guard asks the question that matters
// for an alert — is it still growing faster than the threshold now? — over
// a sub-window that forgets the growth PlateauFraction·Window after it
// stops, so a firing alert resolves within that plus ResolveAfter
// intervals, and a step or a short warm-up, which takes ~12 minutes to
// push the whole-window bound over, has left the 7.5-minute sub-window by
// then and never fires (tested, with the guard-less detector firing as the
// control). The cut is Threshold itself, the rate the user called a leak:
// a linear leak at ≥2× threshold has a true recent slope ≥ 2·Threshold and
// a stopped one 0, so noise must move the estimate by a whole Threshold to
// misclassify either. With a quarter window (31 samples) the tests' 5–10
// MiB GC sawtooth moved the recent heap slope by at most half the 1 MiB/min
// threshold. A statistical guard (MK p ≥ 0.5) would not do: a flat
// segment's p is uniform, so it would miss half of all plateaus. A shorter
// sub-window reacts faster but doubles the noise: 0.25 is the balance.
type Detector struct {
	signal string
	cfg    DetectorConfig
	// Two estimators, so each keeps its own sliding state.
	est, recent Estimator
}

// NewDetector returns a detector for signal with cfg (defaults applied).
func NewDetector(signal string, cfg DetectorConfig) (*Detector, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("leakcheck: %s detector: %w", signal, err)
	}
	return &Detector{signal: signal, cfg: cfg}, nil
}

// Config returns the detector's config with defaults applied.
func (d *Detector) Config() DetectorConfig { return d.cfg }

// Signal returns the signal name.
func (d *Detector) Signal() string { return d.signal }

// windowOf returns the samples of s (time-ordered) with now-w <= T <= now.
func windowOf(s []Sample, now time.Time, w time.Duration) []Sample {
	from := now.Add(-w)
	i := sort.Search(len(s), func(k int) bool { return !s[k].T.Before(from) })
	j := sort.Search(len(s), func(k int) bool { return s[k].T.After(now) })
	if i >= j {
		return nil
	}
	return s[i:j]
}

// Evaluate judges the samples within [now-Window, now]; samples must be in
// time order (as Ring.Samples returns them), others are ignored. It
// allocates nothing once its scratch buffers have grown to the window.
func (d *Detector) Evaluate(now time.Time, samples []Sample) Evaluation {
	c := &d.cfg
	ev := Evaluation{Signal: d.signal, At: now, Window: c.Window}
	bar := c.Factor * c.Threshold
	win := windowOf(samples, now, c.Window)
	ev.N = len(win)
	first := 0 // the oldest finite sample must reach back far enough
	for first < len(win) && !finite(win[first].V) {
		first++
	}
	covered := first < len(win) && !win[first].T.After(now.Add(-time.Duration(coverage*float64(c.Window))))
	if ev.N < c.MinSamples || !covered {
		ev.Insufficient, ev.Reason = true, ReasonInsufficient
		return ev
	}
	f := d.est.fit(win, c.Confidence, true)
	ev.N = f.N // finite values only
	if f.N < c.MinSamples || math.IsInf(f.Lower, 0) || math.IsInf(f.Upper, 0) {
		// Non-finite values removed too many, or the series cannot bound
		// its slope at this confidence.
		ev.Insufficient, ev.Reason = true, ReasonInsufficient
		return ev
	}
	ev.Slope, ev.Lower, ev.Upper = f.Slope, f.Lower, f.Upper
	ev.Detectable = bar + max(0, f.Slope-f.Lower)
	ev.MKZ, ev.MKP = f.Z, f.P
	ev.TrendAgrees = f.P < 1-c.Confidence

	if !c.DisablePlateau {
		recent := windowOf(win, now, time.Duration(c.PlateauFraction*float64(c.Window)))
		if len(recent) >= minRecent {
			ev.RecentSlope = d.recent.slope(recent)
			ev.Plateau = ev.RecentSlope < bar
		}
	}

	switch {
	case !(ev.Lower > bar):
		ev.Reason = ReasonBelow
	case !ev.TrendAgrees:
		ev.Reason = ReasonNoTrend
	case ev.Plateau:
		ev.Reason = ReasonPlateau
	case c.MaxStepShare > 0 && stepShare(win[first:], ev.Slope) > c.MaxStepShare:
		ev.Reason = ReasonStep
	default:
		ev.Suspect, ev.Reason = true, ReasonLeak
	}
	return ev
}

// stepShare is the largest rise between consecutive finite samples of win
// over the rise slope makes across win's span (+Inf when that is not
// positive).
func stepShare(win []Sample, slope float64) float64 {
	var jump float64
	prev := math.NaN()
	for _, s := range win {
		if !finite(s.V) {
			continue
		}
		if !math.IsNaN(prev) {
			jump = max(jump, s.V-prev)
		}
		prev = s.V
	}
	rise := slope * win[len(win)-1].T.Sub(win[0].T).Seconds()
	if !(rise > 0) {
		return math.Inf(1)
	}
	return jump / rise
}

// PredictedDetection returns how long after a leak starts the detector with
// cfg, fed a noiseless signal sampled every interval, first has forCount
// consecutive suspect evaluations (when an AlertFSM with For = forCount
// fires). The signal is flat for one full window, then grows at rate per
// second; every interval one sample is added and the detector evaluates.
// It is the detector's own math, simulated, not a formula: noise can move
// the real delay either way, and tests allow a stated margin. It returns -1
// when the leak is not detected within three windows (a rate at or below
// the threshold) or the config is invalid.
func PredictedDetection(cfg DetectorConfig, interval time.Duration, rate float64, forCount int) time.Duration {
	if interval <= 0 || forCount < 1 {
		return -1
	}
	if cfg.Interval == 0 {
		cfg.Interval = interval
	}
	d, err := NewDetector("predicted", cfg)
	if err != nil {
		return -1
	}
	w := d.cfg.Window
	ring := NewRing(RingCapacity(w, interval))
	buf := make([]Sample, 0, ring.Cap())
	t0 := time.Unix(0, 0).UTC()
	start := t0.Add(w) // the leak starts after a full flat window
	const base = 1000.0
	streak := 0
	for now := t0; !now.After(start.Add(3 * w)); now = now.Add(interval) {
		v := base
		if now.After(start) {
			v += rate * now.Sub(start).Seconds()
		}
		ring.Add(Sample{T: now, V: v})
		if !now.After(start) {
			continue
		}
		buf = ring.Samples(buf[:0])
		if d.Evaluate(now, buf).Suspect {
			streak++
			if streak >= forCount {
				return now.Sub(start)
			}
		} else {
			streak = 0
		}
	}
	return -1
}
