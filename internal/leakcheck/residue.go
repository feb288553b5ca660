package leakcheck

import (
	"slices"
	"sort"
	"sync"
	"time"
)

// Residue is what one fault kind left behind, over every injection so far.
type Residue struct {
	Kind        string `json:"kind"`
	Injections  int    `json:"injections"`
	WithResidue int    `json:"with_residue"`
	// Unmeasured counts injections never judged: other faults stayed in
	// force or settling for quietWait settle times after the revert.
	Unmeasured int `json:"unmeasured"`
	// LastResidue is each signal's level after the last revert (and settle)
	// minus its level before that injection.
	LastResidue map[string]float64 `json:"last_residue"`
	// TotalResidue sums the residues of every injection: a kind that leaks
	// a little each time shows a steady climb here.
	TotalResidue map[string]float64 `json:"total_residue"`
}

// FaultResidue is one injection's residue: each level after the revert
// (and settle) minus before the injection. Left says some level grew by
// more than its tolerance; Unmeasured that other faults kept acting and
// the injection was never judged.
type FaultResidue struct {
	ID, Kind string
	Residue  map[string]float64
	// Left is true when some level grew past its tolerance: those in Over.
	Left       bool
	Over       []string
	Unmeasured bool
}

// residueTolerance is the growth across one fault that counts as residue:
// above run-to-run noise of an idle soakd, well below one leaked object
// per request.
var residueTolerance = map[string]float64{
	SignalHeap:       4 << 20,
	SignalGoroutines: 5,
	SignalFDs:        2,
	SignalRSS:        16 << 20,
	SignalThreads:    2,
	LevelDiskUsed:    64 << 20,
}

// residueLevels are the levels compared across a fault.
var residueLevels = append(slices.Clone(Signals), LevelDiskUsed)

// levelSamples is how many recent readings make a level (their median), so
// one GC sawtooth tooth does not read as residue.
const levelSamples = 5

// maxPendingFaults bounds the faults tracked at once; more are not measured.
const maxPendingFaults = 64

// quietWait is how many settle times a reverted fault's check waits for a
// quiet moment (no other fault in force or settling) before it is given
// up as unmeasured: a level taken while another fault acts is that
// fault's effect, not this one's residue.
const quietWait = 4

// ResidueTracker compares each signal before a fault with after its revert
// plus a settle time, and counts per fault kind how often something was
// left behind. Safe for concurrent use: the fault runner calls the Fault*
// hooks, the monitor calls Observe.
type ResidueTracker struct {
	settle time.Duration

	mu      sync.Mutex
	recent  []Reading // last levelSamples readings, oldest first
	before  map[string]pending
	checks  []pending // reverted, waiting for their settle time
	byKind  map[string]*Residue
	scratch []float64
}

type pending struct {
	id, kind string
	levels   map[string]float64
	due      time.Time
}

// NewResidueTracker measures residue settle after each revert.
func NewResidueTracker(settle time.Duration) *ResidueTracker {
	return &ResidueTracker{settle: settle, before: map[string]pending{}, byKind: map[string]*Residue{}}
}

func (t *ResidueTracker) levelsLocked() map[string]float64 {
	lv := map[string]float64{}
	for _, sig := range residueLevels {
		t.scratch = t.scratch[:0]
		for _, r := range t.recent {
			if v, ok := r.valueAny(sig); ok {
				t.scratch = append(t.scratch, v)
			}
		}
		if len(t.scratch) == 0 {
			continue
		}
		slices.Sort(t.scratch)
		lv[sig] = t.scratch[len(t.scratch)/2]
	}
	return lv
}

// valueAny is Value without the freshness filter: for levels, the last
// completed GC's heap is the best figure there is.
func (r Reading) valueAny(signal string) (float64, bool) {
	switch signal {
	case SignalHeap:
		return r.HeapLive, r.GCCycles > 0
	case LevelDiskUsed:
		return r.DiskUsed, r.DiskUsed > 0
	}
	return r.Value(signal)
}

// FaultInjected records the levels before fault id.
func (t *ResidueTracker) FaultInjected(id, kind string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.recent) == 0 || len(t.before) >= maxPendingFaults {
		return
	}
	t.before[id] = pending{id: id, kind: kind, levels: t.levelsLocked()}
}

// FaultReverted schedules the comparison for settle from now.
func (t *ResidueTracker) FaultReverted(id, kind string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.before[id]
	if !ok {
		return
	}
	delete(t.before, id)
	last := time.Time{}
	if n := len(t.recent); n > 0 {
		last = t.recent[n-1].T
	}
	p.due = last.Add(t.settle)
	if len(t.checks) < maxPendingFaults {
		t.checks = append(t.checks, p)
	}
}

// Observe feeds one reading and settles the checks that are due; it
// returns the injections judged (or given up) by this reading.
func (t *ResidueTracker) Observe(r Reading) (settled []FaultResidue) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.recent = append(t.recent, r)
	if len(t.recent) > levelSamples {
		t.recent = append(t.recent[:0], t.recent[1:]...)
	}
	if len(t.checks) == 0 {
		return
	}
	// Wait for a full set of post-settle readings, taken while no other
	// fault acts, before judging.
	oldest := t.recent[0].T
	settling := func(c pending) bool { return oldest.Before(c.due) }
	quiet := len(t.before) == 0 && !slices.ContainsFunc(t.checks, settling)
	kept := t.checks[:0]
	var now map[string]float64
	for _, c := range t.checks {
		switch {
		case settling(c):
			kept = append(kept, c)
		case !quiet && oldest.Sub(c.due) > quietWait*t.settle:
			t.kindLocked(c.kind).Unmeasured++
			settled = append(settled, FaultResidue{ID: c.id, Kind: c.kind, Unmeasured: true})
		case !quiet:
			kept = append(kept, c)
		default:
			if now == nil {
				now = t.levelsLocked()
			}
			settled = append(settled, t.settleLocked(c, now))
		}
	}
	t.checks = kept
	return settled
}

func (t *ResidueTracker) kindLocked(kind string) *Residue {
	res := t.byKind[kind]
	if res == nil {
		res = &Residue{Kind: kind, LastResidue: map[string]float64{}, TotalResidue: map[string]float64{}}
		t.byKind[kind] = res
	}
	return res
}

func (t *ResidueTracker) settleLocked(c pending, now map[string]float64) FaultResidue {
	res := t.kindLocked(c.kind)
	res.Injections++
	fr := FaultResidue{ID: c.id, Kind: c.kind, Residue: make(map[string]float64, len(c.levels))}
	left := false
	for sig, before := range c.levels {
		after, ok := now[sig]
		if !ok {
			continue
		}
		d := after - before
		fr.Residue[sig] = d
		res.LastResidue[sig] = d
		res.TotalResidue[sig] += d
		if d > residueTolerance[sig] {
			left = true
			fr.Over = append(fr.Over, sig)
		}
	}
	if left {
		res.WithResidue++
	}
	fr.Left = left
	sort.Strings(fr.Over)
	return fr
}

// Residues returns every kind's tally, worst first.
func (t *ResidueTracker) Residues() []Residue {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Residue, 0, len(t.byKind))
	for _, r := range t.byKind {
		c := *r
		c.LastResidue = cloneMap(r.LastResidue)
		c.TotalResidue = cloneMap(r.TotalResidue)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].WithResidue != out[j].WithResidue {
			return out[i].WithResidue > out[j].WithResidue
		}
		return out[i].Kind < out[j].Kind
	})
	return out
}

// Leaky returns the kinds that left residue after most of their injections.
func (t *ResidueTracker) Leaky() []Residue {
	var out []Residue
	for _, r := range t.Residues() {
		if r.WithResidue > 0 && 2*r.WithResidue >= r.Injections {
			out = append(out, r)
		}
	}
	return out
}

func cloneMap(m map[string]float64) map[string]float64 {
	out := make(map[string]float64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Over is the last injection's residue of each level above its tolerance.
func (r Residue) Over() map[string]float64 {
	out := map[string]float64{}
	for sig, d := range r.LastResidue {
		if d > residueTolerance[sig] {
			out[sig] = d
		}
	}
	return out
}
