package leakcheck

import "time"

// AlertState is where one signal's alert is.
type AlertState int

// Alert states, as Prometheus names them.
const (
	Inactive AlertState = iota
	Pending
	Firing
)

func (s AlertState) String() string {
	switch s {
	case Inactive:
		return "inactive"
	case Pending:
		return "pending"
	case Firing:
		return "firing"
	}
	return "unknown"
}

// Transition is what one step of an AlertFSM did.
type Transition int

// Transitions.
const (
	// None: the state did not change.
	None Transition = iota
	// BecamePending: Inactive → Pending, the first suspect evaluation.
	BecamePending
	// Fired: → Firing, on the For-th consecutive suspect evaluation.
	Fired
	// Resolved: Firing → Inactive after ResolveAfter consecutive clear
	// evaluations.
	Resolved
	// Cancelled: Pending → Inactive, a clear (or no-data) evaluation before
	// the alert fired.
	Cancelled
)

func (t Transition) String() string {
	switch t {
	case None:
		return "none"
	case BecamePending:
		return "pending"
	case Fired:
		return "fired"
	case Resolved:
		return "resolved"
	case Cancelled:
		return "cancelled"
	}
	return "unknown"
}

// AlertFSM is one signal's alert state machine, driven by one step per
// detector evaluation; a pure function of its inputs (the caller passes the
// time). Its fields are plain data so the caller can checkpoint and restore
// it.
//
//	Inactive --suspect--> Pending --(For-1 more suspect in a row)--> Firing
//	Pending --clear or no data--> Inactive           (Cancelled)
//	Firing --(ResolveAfter clear in a row)--> Inactive (Resolved)
//
// With For = 1 the first suspect evaluation fires directly.
//
// Evaluations without a verdict (insufficient data: the sampler stalled,
// or the window refilled after a restart) are handled by Observe
// asymmetrically, on purpose: they cancel a Pending alert, because firing
// needs For consecutive positive verdicts and a gap breaks the run; and they
// are ignored by a Firing alert — neither resolve progress nor a reset —
// because losing the data is not evidence that the leak stopped. A firing
// alert resolves only on ResolveAfter real clear verdicts.
type AlertFSM struct {
	// For is the number of consecutive suspect evaluations that fire
	// (leakcheck.for); values below 1 count as 1.
	For int
	// ResolveAfter is the number of consecutive clear evaluations that
	// resolve a firing alert; 0 means For. Hysteresis: a leak hovering at
	// the threshold does not flap.
	ResolveAfter int

	State AlertState
	// Streak counts consecutive suspect evaluations while Inactive or
	// Pending, and consecutive clear evaluations while Firing.
	Streak int
	// ActiveAt is the first suspect evaluation of the current episode
	// (Pending or Firing); zero when Inactive.
	ActiveAt time.Time
	// Since is when the alert fired; zero unless Firing.
	Since time.Time
	// ResolvedAt is when the last episode resolved; zero before that.
	ResolvedAt time.Time
}

func (f *AlertFSM) forN() int { return max(f.For, 1) }

func (f *AlertFSM) resolveN() int {
	if f.ResolveAfter > 0 {
		return f.ResolveAfter
	}
	return f.forN()
}

// Step advances the machine by one evaluation with a verdict.
func (f *AlertFSM) Step(now time.Time, suspect bool) Transition {
	switch f.State {
	case Inactive, Pending:
		if !suspect {
			return f.cancel()
		}
		f.Streak++
		if f.State == Inactive {
			f.ActiveAt = now
		}
		if f.Streak >= f.forN() {
			f.State, f.Since, f.Streak = Firing, now, 0
			return Fired
		}
		if f.State == Inactive {
			f.State = Pending
			return BecamePending
		}
		return None
	case Firing:
		if suspect {
			f.Streak = 0
			return None
		}
		f.Streak++
		if f.Streak >= f.resolveN() {
			f.State, f.Streak = Inactive, 0
			f.ActiveAt, f.Since, f.ResolvedAt = time.Time{}, time.Time{}, now
			return Resolved
		}
	}
	return None
}

// StepNoData advances the machine by an evaluation without a verdict: it
// cancels a Pending alert and leaves a Firing one untouched.
func (f *AlertFSM) StepNoData(time.Time) Transition {
	if f.State == Firing {
		return None
	}
	return f.cancel()
}

// Observe steps with a detector evaluation: Step with e.Suspect, or
// StepNoData when e.Insufficient or e.Hold.
func (f *AlertFSM) Observe(e Evaluation) Transition {
	if e.Insufficient || e.Hold {
		return f.StepNoData(e.At)
	}
	return f.Step(e.At, e.Suspect)
}

func (f *AlertFSM) cancel() Transition {
	was := f.State
	f.State, f.Streak, f.ActiveAt = Inactive, 0, time.Time{}
	if was == Pending {
		return Cancelled
	}
	return None
}
