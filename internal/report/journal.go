package report

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/components/migration"
	"github.com/soakd/soakd/internal/faults"
	"github.com/soakd/soakd/internal/leakcheck"
	"github.com/soakd/soakd/internal/run"
)

// maxRows bounds every table the report keeps of the journal (faults,
// alerts, violations); the totals still count everything. A 72-hour run
// of the default config injects about 900 faults.
const maxRows = 5000

// maxIncarnations bounds the incarnations kept (a crash loop would add
// one per restart).
const maxIncarnations = 1000

// journal folds a run's events, in order, into the report's tables. It is
// pure (no I/O, no clock) and its memory is bounded by maxRows, whatever
// the journal's length.
type journal struct {
	incarnations []Incarnation
	faultAt      map[string]int // fault id -> index in faults, for the open ones and their residue
	faults       []Fault
	faultsTotal  int
	skipped      int
	failed       int
	alerts       []Alert
	firing       map[string]int // "node|signal" -> index in alerts of its open alert
	violations   []Violation
	violTotal    int
	violByKey    map[string]int // component/invariant -> count
	migOutcomes  map[string]int
	moved        int
	downtime     *hdrhistogram.Histogram // microseconds
	elapsed      Seconds                 // the latest event's
	journalFull  bool
	started      bool  // a run_started or run_resumed was seen
	readErr      error // reading the journal failed part way
	alertsTotal  int
	leakFaults   []leakWindow
	// settle is how long after a canary's end an alert on its signals is
	// still its doing (leakcheck.window; a default without a config).
	settle time.Duration
}

// leakWindow is a leak canary's span, for telling its alerts apart.
type leakWindow struct {
	id       string
	signals  []string
	plateau  bool    // a plateau canary must raise nothing
	from, to Seconds // to: -1 while in force
	// detected: the seconds from its start to its alert, as soakd
	// journaled it (leak_canary_detected); missed: SoakdCanaryMissed.
	detected *Seconds
	missed   bool
}

func newJournal(settle time.Duration) *journal {
	return &journal{faultAt: map[string]int{}, firing: map[string]int{}, violByKey: map[string]int{},
		migOutcomes: map[string]int{}, downtime: hdrhistogram.New(1, int64(time.Hour/time.Microsecond), 3), settle: settle}
}

func str(f map[string]any, k string) string {
	switch v := f[k].(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

func num(f map[string]any, k string) float64 {
	if v, ok := f[k].(float64); ok {
		return v
	}
	return 0
}

// add folds one event.
func (j *journal) add(e run.Event) {
	at := Seconds(e.ElapsedSeconds)
	j.elapsed = max(j.elapsed, at)
	f := e.Fields
	switch e.Type {
	case run.EventRunStarted, run.EventRunResumed:
		if n := len(j.incarnations); n > 0 && j.incarnations[n-1].Ended == "" {
			j.incarnations[n-1].Ended = "killed"
		}
		j.started = true
		inc := Incarnation{N: e.Incarnation, Started: e.Time, At: at, Version: str(f, "version")}
		if len(j.incarnations) < maxIncarnations {
			j.incarnations = append(j.incarnations, inc)
		} else {
			j.incarnations[len(j.incarnations)-1] = inc // past the cap the last row is the latest
		}
		// Faults and alerts a killed incarnation left open are resumed or
		// restored by the next; their rows stay open until it ends them.
	case run.EventRunCompleted, run.EventRunStopped:
		if n := len(j.incarnations); n > 0 {
			j.incarnations[n-1].Ended = map[string]string{run.EventRunCompleted: "completed", run.EventRunStopped: "stopped"}[e.Type]
		}
	case run.EventJournalFull:
		j.journalFull = true
	case faults.EventFaultInjected:
		id := str(f, "id")
		if b, _ := f["resumed"].(bool); b {
			if i, ok := j.faultAt[id]; ok {
				// The same injection, re-applied by a resumed run: it is
				// in force again until its own end.
				j.faults[i].Incarnation = e.Incarnation
				j.faults[i].Duration, j.faults[i].EndedBy = 0, ""
				for k := range j.leakFaults {
					if j.leakFaults[k].id == id {
						j.leakFaults[k].to = -1
					}
				}
				return
			}
		}
		j.faultsTotal++
		if str(f, "kind") == "leak" {
			params, _ := f["params"].(map[string]any)
			j.leakFaults = append(j.leakFaults, leakWindow{id: id, signals: leakcheck.CanarySignals[str(params, "resource")],
				plateau: str(params, "shape") == "plateau", from: at, to: -1})
			if len(j.leakFaults) > maxRows {
				j.leakFaults = j.leakFaults[1:]
			}
		}
		if len(j.faults) >= maxRows {
			return
		}
		row := Fault{ID: id, Kind: str(f, "kind"), Target: str(f, "target"), Selector: str(f, "selector"), Start: at,
			Verified: str(f, "verified"), Incarnation: e.Incarnation}
		if ps, ok := f["params"].(map[string]any); ok && len(ps) > 0 {
			row.Params = map[string]string{}
			for k, v := range ps {
				row.Params[k] = fmt.Sprint(v)
			}
		}
		j.faultAt[id] = len(j.faults)
		j.faults = append(j.faults, row)
	case faults.EventFaultReverted:
		id := str(f, "id")
		if i, ok := j.faultAt[id]; ok {
			j.faults[i].Duration = at - j.faults[i].Start
			j.faults[i].EndedBy = str(f, "why")
		}
		for i := range j.leakFaults {
			if j.leakFaults[i].id == id && j.leakFaults[i].to < 0 {
				j.leakFaults[i].to = at
			}
		}
	case faults.EventFaultSkipped:
		j.skipped++
	case faults.EventFaultFailed:
		j.failed++
		if str(f, "phase") == "revert" {
			if i, ok := j.faultAt[str(f, "id")]; ok && j.faults[i].EndedBy == "" {
				j.faults[i].EndedBy = "revert failed: " + str(f, "error")
			}
		}
	case leakcheck.EventFaultResidue:
		i, ok := j.faultAt[str(f, "id")]
		if !ok {
			return
		}
		row := &j.faults[i]
		if b, _ := f["unmeasured"].(bool); b {
			row.ResidueNote = "unmeasured: other faults kept acting"
			return
		}
		row.LeftResidue, _ = f["left_residue"].(bool)
		if over, ok := f["over_tolerance"].([]any); ok {
			for _, o := range over {
				row.ResidueOver = append(row.ResidueOver, fmt.Sprint(o))
			}
		}
		if r, ok := f["residue"].(map[string]any); ok {
			row.Residue = map[string]float64{}
			for k, v := range r {
				if x, ok := v.(float64); ok {
					row.Residue[k] = x
				}
			}
		}
	case leakcheck.EventLeakAlertFired:
		sig, node := str(f, "signal"), str(f, "node")
		j.alertsTotal++
		if len(j.alerts) >= maxRows {
			return
		}
		j.firing[node+"|"+sig] = len(j.alerts)
		canary, said := f["canary"].(string) // soakd's own verdict; older journals lack it
		if !said && node == "" {             // canaries leak in soakd, never in a node
			canary = j.canaryAt(sig, at)
		}
		j.alerts = append(j.alerts, Alert{Name: str(f, "alertname"), Signal: sig, Window: str(f, "window"), Fired: at,
			Slope: num(f, "slope_per_second"), Threshold: num(f, "threshold_per_second"), Evidence: str(f, "evidence"),
			Canary: canary, Node: node})
	case leakcheck.EventLeakCanaryDetected:
		if w := j.leakWindow(str(f, "id")); w != nil {
			d := Seconds(num(f, "detection_seconds"))
			w.detected = &d
		}
	case leakcheck.EventLeakCanaryMissed:
		if w := j.leakWindow(str(f, "id")); w != nil {
			w.missed = true
		}
	case leakcheck.EventLeakAlertResolved:
		key := str(f, "node") + "|" + str(f, "signal")
		if i, ok := j.firing[key]; ok {
			r := at
			j.alerts[i].Resolved = &r
			delete(j.firing, key)
		}
	case components.EventInvariantViolation:
		j.violTotal++
		j.violByKey[str(f, "component")+"/"+str(f, "invariant")]++
		if len(j.violations) < maxRows {
			j.violations = append(j.violations, Violation{At: at, Component: str(f, "component"), Invariant: str(f, "invariant"),
				Evidence: str(f, "evidence"), Detail: str(f, "detail")})
		}
	case migration.EventMigration:
		j.migOutcomes[str(f, "outcome")]++
		if b, _ := f["moved"].(bool); b {
			j.moved++
			_ = j.downtime.RecordValue(max(int64(num(f, "downtime_seconds")*1e6), 1))
		}
	}
}

// defaultCanarySettle is the settle time of a run without a config: the
// default leakcheck.window.
const defaultCanarySettle = 30 * time.Minute

// leakWindow is canary id's window, or nil.
func (j *journal) leakWindow(id string) *leakWindow {
	for i := range j.leakFaults {
		if j.leakFaults[i].id == id {
			return &j.leakFaults[i]
		}
	}
	return nil
}

// canaryAt names the leak canary whose signals include sig and whose span
// (plus the settle time) covers at, or "": for journals written before
// soakd said so itself in leak_alert_fired.
func (j *journal) canaryAt(sig string, at Seconds) string {
	for _, w := range j.leakFaults {
		end := w.to + Seconds(j.settle.Seconds())
		if at >= w.from && (w.to < 0 || at <= end) && slices.Contains(w.signals, sig) {
			return w.id
		}
	}
	return ""
}

// violationsOf counts the violations of one component.
func (j *journal) violationsOf(component string) (n int, which []string) {
	for k, c := range j.violByKey {
		if strings.HasPrefix(k, component+"/") {
			n += c
			which = append(which, strings.TrimPrefix(k, component+"/"))
		}
	}
	sort.Strings(which)
	return n, which
}
