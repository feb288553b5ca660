package leakcheck

import (
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

// A fault that ramps goroutines up while in force and lets them go at the
// revert fires a goroutine alert when nobody says it is a fault's doing;
// declared as a disturbance, its samples stay out of the window and
// nothing fires. A leak that goes on after the fault settles is still
// caught.
func TestDisturbedSamplesStayOutOfTheWindow(t *testing.T) {
	run := func(disturb bool, leakAfter float64) (fired bool, disturbedTicks int) {
		clock := clockwork.NewFakeClock()
		// Ticked by hand, not started: Settle reads the fake clock, which
		// the test advances, and a started monitor would tick on it too.
		m, sig := newTestMonitor(t, MonitorOptions{Clock: clock, ResidueSettle: 30 * time.Second})
		now := clock.Now()
		tick := func(n int) {
			for range n {
				now = now.Add(testInterval)
				m.Tick(now)
				fired = fired || len(m.Firing()) > 0
				if m.disturbed.isDisturbed(SignalGoroutines, now) {
					disturbedTicks++
				}
			}
		}
		tick(24) // a full window, flat
		if disturb {
			m.Disturb("f1", []string{SignalGoroutines, SignalFDs})
		}
		sig.slope = 25 // 100 goroutines a minute while the fault is in force
		tick(12)
		sig.slope = 0
		sig.goroutines -= 12 * 25 // the revert lets them all go
		clock.Advance(now.Sub(clock.Now()))
		if disturb {
			m.Settle("f1", []string{SignalGoroutines, SignalFDs})
		}
		sig.slope = leakAfter
		tick(30)
		return fired, disturbedTicks
	}
	if fired, _ := run(false, 0); !fired {
		t.Fatal("the ramp fired nothing undeclared: the test shows nothing")
	}
	fired, ticks := run(true, 0)
	if fired {
		t.Error("a declared disturbance fired an alert")
	}
	if ticks != 12+1 { // in force, then the one sample inside the 30 s settle
		t.Errorf("%d disturbed ticks, want 13", ticks)
	}
	if fired, _ := run(true, 10); !fired {
		t.Error("a leak after the disturbance settled was not caught")
	}
}
