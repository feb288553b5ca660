package config

import (
	"math"
	"testing"
	"time"
)

// The derived confidences spend exactly the budget (Σ E_w), the
// explicit ones are kept, and shorter windows get stricter bars.
func TestConfidencesSpendTheBudget(t *testing.T) {
	spend := func(l LeakCheck, main float64, wins []float64) float64 {
		per, step := l.FalseAlarmBudget.Per.Std(), l.Interval.Std()
		s := Upcrossings(per, l.Window.Std(), step, main)
		for i, w := range l.Windows {
			s += Upcrossings(per, w.Window.Std(), step, wins[i])
		}
		return s
	}
	d := Default().LeakCheck
	mixed := d
	mixed.Windows = append([]LeakWindow(nil), d.Windows...)
	mixed.Windows[2].Confidence = 0.9999999 // the 2h window
	for name, l := range map[string]LeakCheck{"default": d, "mixed": mixed} {
		main, wins, err := l.Confidences()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := spend(l, main, wins); math.Abs(got-l.FalseAlarmBudget.Alarms) > 1e-9 {
			t.Errorf("%s: the windows spend %g false alarms per %s, want the budget %g", name, got, l.FalseAlarmBudget.Per, l.FalseAlarmBudget.Alarms)
		}
		for i, w := range l.Windows {
			if w.Confidence != 0 && wins[i] != w.Confidence {
				t.Errorf("%s: window %s confidence %g, want its own %g", name, w.Window, wins[i], w.Confidence)
			}
			if w.Confidence == 0 && w.Window.Std() < l.Window.Std() && !(wins[i] > main) {
				t.Errorf("%s: the %s window's confidence %g is not stricter than the %s main window's %g", name, w.Window, wins[i], l.Window, main)
			}
		}
	}
	// Without a budget every unset window takes leakcheck.confidence.
	off := d
	off.FalseAlarmBudget = FalseAlarmBudget{}
	off.Confidence = 0.99
	if main, wins, err := off.Confidences(); err != nil || main != 0.99 || wins[0] != 0.99 {
		t.Errorf("no budget: %g %v %v, want 0.99 everywhere", main, wins, err)
	}
	off.Confidence = 0
	if _, _, err := off.Confidences(); err == nil {
		t.Error("no budget and no confidence: want an error")
	}
}

// Upcrossings grows with the run and falls with the confidence, and at the
// default 30-minute window it is about 13 times the naive P/W·(1−c).
func TestUpcrossings(t *testing.T) {
	const per, w, step = 72 * time.Hour, 30 * time.Minute, 15 * time.Second
	naive := 144 * 0.01
	if r := Upcrossings(per, w, step, 0.99) / naive; r < 10 || r > 16 {
		t.Errorf("E_w / naive = %.1f at 0.99, want about 13", r)
	}
	if !(Upcrossings(per, w, step, 0.999) < Upcrossings(per, w, step, 0.99)) ||
		!(Upcrossings(2*per, w, step, 0.99) > Upcrossings(per, w, step, 0.99)) {
		t.Error("E_w does not fall with the confidence and grow with the run")
	}
}
