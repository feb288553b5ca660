// Package tick is the periodic loop soakd's engines share: call a function
// on every tick of a (possibly fake) clock until told to stop, and stop the
// ticker on the way out.
package tick

import (
	"time"

	"github.com/jonboulle/clockwork"
)

// Loop calls fn with each tick's time until done is closed, then stops t.
// A caller that makes t before starting the goroutine that runs Loop lets
// a test's fake clock, advanced as soon as the caller returns, fire it.
func Loop(done <-chan struct{}, t clockwork.Ticker, fn func(now time.Time)) {
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case now := <-t.Chan():
			fn(now)
		}
	}
}

// Every runs Loop on a new ticker of clock's at interval.
func Every(done <-chan struct{}, clock clockwork.Clock, interval time.Duration, fn func(now time.Time)) {
	Loop(done, clock.NewTicker(interval), fn)
}
