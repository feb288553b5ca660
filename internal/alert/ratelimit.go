package alert

import (
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
)

// logEvery is how often one kind of problem of one sink may be logged.
const logEvery = time.Minute

// logLimiter lets one log line per key through every logEvery and counts
// the lines it held back. Keys are a fixed set (one per sink for its
// warnings and errors, one per sink for recoveries, two for Notify misuse),
// so its maps stay small.
type logLimiter struct {
	clock clockwork.Clock
	mu    sync.Mutex
	last  map[string]time.Time
	held  map[string]int
}

func newLogLimiter(c clockwork.Clock) *logLimiter {
	return &logLimiter{clock: c, last: map[string]time.Time{}, held: map[string]int{}}
}

// allow reports whether a line for key may be logged now, and if so how
// many were suppressed since the previous one.
func (l *logLimiter) allow(key string) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	if last, seen := l.last[key]; seen && now.Sub(last) < logEvery {
		l.held[key]++
		return false, 0
	}
	l.last[key] = now
	suppressed = l.held[key]
	l.held[key] = 0
	return true, suppressed
}
