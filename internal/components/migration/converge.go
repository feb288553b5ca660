package migration

import (
	"time"
)

// The convergence rule, a pure core: after each pre-copy round the engine
// hands it what the round measured and how much is still dirty, and it
// says whether to go on, switch over, or give up; and how hard to throttle
// the guest.

// Round is what one pre-copy round measured.
type Round struct {
	N         int
	Pages     int   // pages sent
	RawBytes  int64 // their size in memory
	WireBytes int64 // what went on the wire
	Took      time.Duration
	// NetTime is the streams' mean time on the network: writing pages and
	// waiting for the round's sync (the rest is copying and compressing).
	NetTime time.Duration
	Dirtied int // pages the guest dirtied while the round ran
}

// Policy is the convergence configuration.
type Policy struct {
	DowntimeLimit time.Duration
	AutoConverge  bool
	// ProgressTimeout: no round lowered the pending pages for this long.
	ProgressTimeout time.Duration
	// CompletionTimeout bounds the whole migration.
	CompletionTimeout time.Duration
	// Force switches over at a timeout; otherwise the migration is
	// cancelled and the guest stays on its source.
	Force bool
}

// Action is what the engine does next.
type Action int

const (
	Continue Action = iota
	SwitchOver
	Cancel
)

func (a Action) String() string {
	return [...]string{"continue", "switch-over", "cancel"}[a]
}

// Decision is the rule's answer after a round.
type Decision struct {
	Action Action
	// Rule names what decided, for the journal: "downtime-fits",
	// "progress-timeout", "completion-timeout", "throttle", "shrinking".
	Rule               string
	Throttle           float64 // share of the guest's dirty rate held back
	PredictedBandwidth float64 // bytes/s the next round is forecast to move
	PredictedDowntime  time.Duration
}

// Auto-converge steps, as QEMU's defaults: start at 20 %, add 10 % per
// step, never above 99 %; a step is taken after two rounds in a row in
// which the guest dirtied at least half as much as was sent.
const (
	throttleInitial   = 0.20
	throttleIncrement = 0.10
	throttleMax       = 0.99
	dirtyShareTrigger = 0.5
	triggerRounds     = 2
	// predictorWindow rounds make the bandwidth forecast.
	predictorWindow = 4
	// predictorPriorBytes is how much measured data outweighs the link's
	// history: until a migration has moved this much, the forecast leans
	// on earlier migrations over the same link.
	predictorPriorBytes = 8 << 20
	// verifyOverhead is the fixed part of a switch-over besides moving the
	// last pages: the verdict round trip and the resume.
	verifyOverhead = 5 * time.Millisecond
)

// Planner holds the rule's state for one migration.
type Planner struct {
	p        Policy
	prior    float64 // the link's bandwidth from earlier migrations, bytes/s (0: none)
	window   []Round
	best     int
	bestAt   time.Duration
	hotRuns  int
	throttle float64
}

// NewPlanner starts a migration's rule; prior is the link's bandwidth
// history (0 when unknown).
func NewPlanner(p Policy, prior float64) *Planner {
	return &Planner{p: p, prior: prior, best: -1}
}

// Forecast is the bandwidth the next round is predicted to move: the
// window's bytes over its time, leaning on the link's prior until the
// window holds predictorPriorBytes.
func (pl *Planner) Forecast() float64 {
	var bytes int64
	var took time.Duration
	for _, r := range pl.window {
		bytes += r.WireBytes
		took += r.Took
	}
	measured := 0.0
	if took > 0 {
		measured = float64(bytes) / took.Seconds()
	}
	if pl.prior <= 0 || bytes >= predictorPriorBytes {
		return measured
	}
	if measured <= 0 {
		return pl.prior
	}
	w := float64(bytes) / predictorPriorBytes
	return w*measured + (1-w)*pl.prior
}

// wirePerPage is the recent wire bytes per re-sent page: what a pending
// page will cost. Round 0 does not count (its zero pages travel as markers,
// while a dirtied page is written, not zero); before any re-send, a page
// is assumed to go whole.
func (pl *Planner) wirePerPage() float64 {
	var bytes int64
	pages := 0
	for _, r := range pl.window {
		if r.N > 0 {
			bytes += r.WireBytes
			pages += r.Pages
		}
	}
	if pages == 0 {
		return PageSize
	}
	return float64(bytes) / float64(pages)
}

// Next takes a finished round, the pages now pending and the migration's
// elapsed time, and decides.
func (pl *Planner) Next(r Round, pending int, elapsed time.Duration) Decision {
	pl.window = append(pl.window, r)
	if len(pl.window) > predictorWindow {
		pl.window = pl.window[1:]
	}
	bw := pl.Forecast()
	d := Decision{Throttle: pl.throttle, PredictedBandwidth: bw}
	d.PredictedDowntime = verifyOverhead
	if bw > 0 {
		d.PredictedDowntime += time.Duration(float64(pending) * pl.wirePerPage() / bw * float64(time.Second))
	} else if pending > 0 {
		d.PredictedDowntime = time.Duration(1<<63 - 1)
	}
	if pl.best < 0 || pending < pl.best {
		pl.best, pl.bestAt = pending, elapsed
	}
	switch {
	case d.PredictedDowntime <= pl.p.DowntimeLimit:
		d.Action, d.Rule = SwitchOver, "downtime-fits"
		return d
	case pl.p.CompletionTimeout > 0 && elapsed >= pl.p.CompletionTimeout:
		d.Rule = "completion-timeout"
		return pl.timeout(d)
	case pl.p.ProgressTimeout > 0 && elapsed-pl.bestAt >= pl.p.ProgressTimeout:
		d.Rule = "progress-timeout"
		return pl.timeout(d)
	}
	d.Rule = "shrinking"
	if float64(r.Dirtied)*PageSize >= dirtyShareTrigger*float64(r.RawBytes) {
		pl.hotRuns++
	} else {
		pl.hotRuns = 0
	}
	if pl.p.AutoConverge && pl.hotRuns >= triggerRounds {
		pl.hotRuns = 0
		if pl.throttle == 0 {
			pl.throttle = throttleInitial
		} else {
			pl.throttle = min(pl.throttle+throttleIncrement, throttleMax)
		}
		d.Throttle, d.Rule = pl.throttle, "throttle"
	}
	return d
}

func (pl *Planner) timeout(d Decision) Decision {
	if pl.p.Force {
		d.Action = SwitchOver
		d.Rule += "-force"
	} else {
		d.Action = Cancel
	}
	return d
}
