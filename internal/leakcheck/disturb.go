package leakcheck

import (
	"sync"
	"time"
)

// disturbances are the signals a fault in force moves on purpose (a
// connections fault's accepted connections add descriptors and
// goroutines). While a signal is disturbed, and for the settle time after
// the last such fault's revert, its samples are kept out of the detector's
// window and its alert state stands still: the detector judges the level
// before against the level after, so a fault whose effect goes away leaves
// no trend, and one that leaves something behind shows as growth (and as
// the fault's residue).
type disturbances struct {
	mu     sync.Mutex
	settle time.Duration
	active map[string]map[string]bool // signal -> ids of the faults in force
	until  map[string]time.Time       // signal -> end of the settle time
}

func newDisturbances(settle time.Duration) *disturbances {
	return &disturbances{settle: settle, active: map[string]map[string]bool{}, until: map[string]time.Time{}}
}

// Disturb marks signals as moved by fault id from now until its Settle.
func (m *Monitor) Disturb(id string, signals []string) {
	d := m.disturbed
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, sig := range signals {
		if d.active[sig] == nil {
			d.active[sig] = map[string]bool{}
		}
		d.active[sig][id] = true
	}
}

// Settle ends fault id's disturbance of signals after the settle time.
func (m *Monitor) Settle(id string, signals []string) {
	d := m.disturbed
	now := m.o.Clock.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, sig := range signals {
		if ids := d.active[sig]; ids[id] {
			delete(ids, id)
			if end := now.Add(d.settle); end.After(d.until[sig]) {
				d.until[sig] = end
			}
		}
	}
}

// isDisturbed reports whether signal's sample at now is a fault's doing.
func (d *disturbances) isDisturbed(signal string, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.active[signal]) > 0 || now.Before(d.until[signal])
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
