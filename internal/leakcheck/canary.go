package leakcheck

import (
	"slices"
	"time"
)

// A leak canary (the "leak" fault kind) grows a signal on purpose, to prove
// that a leak is detected and alerted. The canary book says which canary
// drives a signal at a given moment, so that the alert it causes is told
// apart from a leak (labelled canary="true", severity info) instead of
// paging, and which canary ended without its alert: then the detection path
// is broken, and that is the alert. It is a pure core: the monitor passes
// the times in.

// CanarySignals are the signals a canary of each resource drives on
// purpose; the first is the one its alert must fire on (the heap canary's
// bytes are resident too, but an RSS threshold need not see them).
var CanarySignals = map[string][]string{
	"heap":       {SignalHeap, SignalRSS},
	"goroutines": {SignalGoroutines},
	"fds":        {SignalFDs},
}

// AlertCanaryMissed is the alert raised when a canary ended without its
// alert having fired.
const AlertCanaryMissed = "SoakdCanaryMissed"

// maxCanaries bounds the canaries the book remembers; the oldest settled
// ones are forgotten first.
const maxCanaries = 64

// Canary is one leak canary as the book knows it.
type Canary struct {
	ID       string `json:"id"`
	Resource string `json:"resource"`
	// Rate is as configured (e.g. "2MiB/min"); PerSecond the same in the
	// signal's unit per second.
	Rate      string  `json:"rate"`
	PerSecond float64 `json:"per_second"`
	Shape     string  `json:"shape"`
	// Started is when it was first injected; a resumed run's re-injection
	// keeps it.
	Started time.Time `json:"started"`
	// Ended is when it was reverted (zero while in force).
	Ended time.Time `json:"ended,omitzero"`
	// DetectedAt is when the first alert on its main signal fired while it
	// drove the signal.
	DetectedAt time.Time `json:"detected_at,omitzero"`
	// Missed is set once it ended and settled without that alert.
	Missed bool `json:"missed,omitempty"`
}

// Signal is the signal the canary's alert must fire on.
func (c *Canary) Signal() string {
	if s := CanarySignals[c.Resource]; len(s) > 0 {
		return s[0]
	}
	return ""
}

// ExpectsAlert reports whether the canary must be detected: a plateau
// stops growing, and the plateau guard must keep it quiet.
func (c *Canary) ExpectsAlert() bool { return c.Shape != "plateau" && c.Signal() != "" }

// DetectionTime is how long after it started the canary was detected (0:
// not detected).
func (c *Canary) DetectionTime() time.Duration {
	if c.DetectedAt.IsZero() {
		return 0
	}
	return c.DetectedAt.Sub(c.Started)
}

// canaryBook is the canaries of the run; settle is how long after a
// canary's end an alert on its signals is still its doing (the leak window:
// the detector needs that long to see the growth stop).
type canaryBook struct {
	settle time.Duration
	list   []*Canary // in start order
}

// start records canary c injected at c.Started; the same id again (a
// resumed run re-injects it) is the same canary, in force again.
func (b *canaryBook) start(c Canary) *Canary {
	if i := slices.IndexFunc(b.list, func(k *Canary) bool { return k.ID == c.ID }); i >= 0 {
		b.list[i].Ended = time.Time{}
		return b.list[i]
	}
	if len(b.list) >= maxCanaries {
		// Forget the oldest that is over (ended and judged); if none is,
		// the oldest of all.
		i := slices.IndexFunc(b.list, func(k *Canary) bool { return !k.Ended.IsZero() && (k.Missed || !k.DetectedAt.IsZero()) })
		b.list = slices.Delete(b.list, max(i, 0), max(i, 0)+1)
	}
	k := c
	b.list = append(b.list, &k)
	return &k
}

// end records canary id reverted at now.
func (b *canaryBook) end(id string, now time.Time) {
	for _, c := range b.list {
		if c.ID == id && c.Ended.IsZero() {
			c.Ended = now
		}
	}
}

// covering is the latest canary that drives signal at now: in force, or
// ended less than settle ago. Nil: none.
func (b *canaryBook) covering(signal string, now time.Time) *Canary {
	for i := len(b.list) - 1; i >= 0; i-- {
		c := b.list[i]
		if !slices.Contains(CanarySignals[c.Resource], signal) || now.Before(c.Started) {
			continue
		}
		if c.Ended.IsZero() || now.Sub(c.Ended) < b.settle {
			return c
		}
	}
	return nil
}

// alerted records an alert on signal at now, while c covers it; it
// reports whether this is c's detection (its first alert on its main
// signal).
func (b *canaryBook) alerted(c *Canary, signal string, now time.Time) bool {
	if signal != c.Signal() || !c.DetectedAt.IsZero() {
		return false
	}
	c.DetectedAt = now
	return true
}

// missed marks and returns the canaries that expected an alert and did not
// get one: ended, and judged by a warm detector for the settle time after
// both their end and warmSince (the start of this incarnation's judging,
// so a stop in between does not count as watching).
func (b *canaryBook) missed(now, warmSince time.Time) []*Canary {
	var out []*Canary
	for _, c := range b.list {
		if c.Ended.IsZero() || c.Missed || !c.DetectedAt.IsZero() || !c.ExpectsAlert() || warmSince.IsZero() {
			continue
		}
		watched := c.Ended
		if warmSince.After(watched) {
			watched = warmSince
		}
		if now.Sub(watched) >= b.settle {
			c.Missed = true
			out = append(out, c)
		}
	}
	return out
}

// snapshot copies the canaries, oldest first.
func (b *canaryBook) snapshot() []Canary {
	out := make([]Canary, len(b.list))
	for i, c := range b.list {
		out[i] = *c
	}
	return out
}

// load replaces the book with saved canaries (a restart).
func (b *canaryBook) load(saved []Canary) {
	b.list = b.list[:0]
	for _, c := range saved {
		k := c
		b.list = append(b.list, &k)
	}
}
