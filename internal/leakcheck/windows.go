package leakcheck

import (
	"fmt"
	"math"
	"time"

	"github.com/soakd/soakd/internal/config"
)

// maxWindowSamples bounds the samples a window keeps: a window longer than
// this many intervals keeps every stride-th sample (a 2-hour window at 15 s
// keeps all 481; at 1 s, every 15th). Theil–Sen costs O(n log n) a step on
// a sliding window, and this keeps the memory of every window fixed.
const maxWindowSamples = 481

// extraWindow is one window judged beside the main one
// (leakcheck.windows): its own ring of (downsampled) samples, detector and
// last verdict.
type extraWindow struct {
	ring   *Ring
	det    *Detector
	stride int // keeps every stride-th sample
	seen   int // samples offered so far
	last   Evaluation
	label  string // the window as written in the config, for metrics
	// hold is how many suspect verdicts in a row this window needs before
	// it counts: as many as cover its plateau guard's sub-window, so a step
	// (a fault's transient) has left that sub-window before the window
	// could call it growth; streak counts them.
	hold, streak int
	// growing: the last slope (not its bound) the window judged is above
	// its bar; kept while the window refills after a gap.
	growing bool
}

// newExtraWindow builds window w of signal; confidence is the window's
// own, resolved by config.LeakCheck.Confidences.
// Step guard of the short windows (DetectorConfig.MaxStepShare): a window
// of at most stepGuardWindow judges growth of which one sample-to-sample
// rise is over stepGuardShare a step. Longer windows see a leak's rise
// over many noise jumps and need no guard; there the guard could block a
// 2× heap leak, whose 10-minute rise is only about twice a GC jump.
const (
	stepGuardWindow = 5 * time.Minute
	stepGuardShare  = 0.5
)

func newExtraWindow(signal string, w config.LeakWindow, threshold, confidence float64, interval time.Duration, forCount int) (*extraWindow, error) {
	win := w.Window.Std()
	stride := max(1, (int(win/interval)+maxWindowSamples)/maxWindowSamples)
	dc := DetectorConfig{Threshold: threshold, Confidence: confidence, Window: win,
		Interval: time.Duration(stride) * interval, Factor: w.FactorFor(signal)}
	if win <= stepGuardWindow {
		dc.MaxStepShare = stepGuardShare
	}
	det, err := NewDetector(signal, dc)
	if err != nil {
		return nil, fmt.Errorf("leakcheck.windows %s: %w", w.Window, err)
	}
	cfg := det.Config()
	// The alert's own leakcheck.for consecutive verdicts come on top, so a
	// window holds for the rest of its plateau span only.
	hold := max(1, int(math.Ceil(cfg.PlateauFraction*float64(win)/float64(interval)))+1-forCount)
	return &extraWindow{ring: NewRing(RingCapacity(win, time.Duration(stride)*interval)), det: det, stride: stride,
		label: w.Window.String(), hold: hold}, nil
}

// observe offers one sample and judges the window at now.
func (x *extraWindow) observe(s Sample, scratch []Sample) ([]Sample, Evaluation) {
	if x.seen%x.stride == 0 {
		x.ring.Add(s)
	}
	x.seen++
	scratch = x.ring.Samples(scratch[:0])
	x.last = x.det.Evaluate(s.T, scratch)
	ev := x.last
	if cfg := x.det.Config(); !ev.Insufficient { // a gap (a disturbance, a restart) changes nothing
		x.growing = ev.Slope > cfg.Factor*cfg.Threshold
	}
	if ev.Suspect {
		x.streak++
	} else {
		x.streak = 0
	}
	if ev.Suspect && x.streak < x.hold {
		ev.Suspect, ev.Reason = false, ReasonHeld
	}
	return scratch, ev
}

// decide combines a signal's verdicts: main is the main window's, extra
// the others', growing whether each extra window's slope is still above
// its bar. Any window's suspect verdict counts (the first, in config
// order, is the one reported). A clear verdict comes only from the main
// window, so a short window that has refilled after a restart cannot
// resolve an alert the main window has not judged again; and only while no
// extra window still grows above its bar, so an alert a short window fired
// is not resolved by a main window that has not caught up with the leak,
// nor fired again minutes later (the short window's bound flaps around its
// bar while the leak goes on).
func decide(main Evaluation, extra []Evaluation, growing []bool) Evaluation {
	if main.Suspect {
		return main
	}
	for _, e := range extra {
		if e.Suspect {
			return e
		}
	}
	for _, g := range growing {
		if g {
			main.Hold, main.Reason = true, ReasonStillGrowing
			return main
		}
	}
	return main
}
