package report

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/leakcheck"
	"github.com/soakd/soakd/internal/report/history"
	"github.com/soakd/soakd/internal/run"
)

// Inputs are what a report is computed from; ReadStateDir gathers them.
type Inputs struct {
	State run.State
	// Config is the run's effective config (config.yaml); nil when the
	// state dir has none (a run from before soakd wrote it).
	Config *config.Config
	// Events calls fn with the journal's events in order (run.EachEvent).
	Events func(fn func(run.Event) bool) error
	// History is the run's downsampled metrics; nil when there is none.
	History *history.History
	// Evidence lists the evidence files, relative to the state dir.
	Evidence []string
	// Notes are problems met while reading (a torn history file).
	Notes []string
	// StateDir, when set, makes evidence paths under it relative to it.
	StateDir string
}

// A load holds its schedule when it started at least minLoadShare of the
// scheduled arrivals over the run (the SoakdLoadBelowTarget condition,
// 95%) and spent at most maxBelowShare of the run below that, so a few
// bad hours cannot hide in a run-long mean.
const (
	minLoadShare  = 0.95
	maxBelowShare = 0.05
)

// Build computes the report. It is pure: everything comes from in.
func Build(in Inputs) Report {
	settle := defaultCanarySettle
	if in.Config != nil {
		settle = in.Config.LeakCheck.Window.Std()
	}
	j := newJournal(settle)
	var eventsErr error
	if in.Events != nil {
		eventsErr = in.Events(func(e run.Event) bool { j.add(e); return true })
	}
	if n := len(j.incarnations); n > 0 && j.incarnations[n-1].Ended == "" {
		j.incarnations[n-1].Ended = map[bool]string{true: "completed", false: "running or killed"}[in.State.Completed]
	}
	st := in.State
	r := Report{
		Run: RunInfo{ID: st.RunID, Seed: st.Seed, StartedAt: st.StartedAt, Elapsed: Seconds(st.ElapsedSeconds),
			Target: Seconds(st.TargetSeconds), Completed: st.Completed, Incarnations: j.incarnations},
		Faults:          Faults{Rows: j.faults, Total: j.faultsTotal, Skipped: j.skipped, Failed: j.failed},
		Alerts:          j.alerts,
		Violations:      j.violations,
		ViolationsTotal: j.violTotal,
		Evidence:        in.Evidence,
		Notes:           in.Notes,
	}
	for i := range r.Alerts {
		r.Alerts[i].Evidence = relative(in.StateDir, r.Alerts[i].Evidence)
	}
	for i := range r.Violations {
		r.Violations[i].Evidence = relative(in.StateDir, r.Violations[i].Evidence)
	}
	if r.Run.Incarnations == nil {
		r.Run.Incarnations = []Incarnation{}
	}
	if r.Faults.Rows == nil {
		r.Faults.Rows = []Fault{}
	}
	if r.Alerts == nil {
		r.Alerts = []Alert{}
	}
	if r.Violations == nil {
		r.Violations = []Violation{}
	}
	if r.Evidence == nil {
		r.Evidence = []string{}
	}
	j.readErr = eventsErr
	r.AlertsTotal = j.alertsTotal
	if eventsErr != nil {
		r.Notes = append(r.Notes, fmt.Sprintf("reading the journal: %v (the tables stop there)", eventsErr))
	}
	if j.journalFull {
		r.Notes = append(r.Notes, "the journal reached its size cap: events after that point are missing from every table")
	}
	if in.History == nil {
		r.Notes = append(r.Notes, "no history: leak slopes, load rates and latencies are not shown")
	}
	var series []history.Series
	if in.History != nil {
		series = in.History.Series()
	}
	cfg := in.Config
	if cfg == nil {
		r.Notes = append(r.Notes, "no config.yaml in the state dir: targets that come from the config are not judged")
	}
	if cfg != nil {
		// The residue tracker ignores the warm-up: say so rather than
		// "not measured".
		warm := Seconds(cfg.Run.Warmup.Std().Seconds())
		for i := range r.Faults.Rows {
			if f := &r.Faults.Rows[i]; f.Residue == nil && f.ResidueNote == "" && f.Start < warm {
				f.ResidueNote = "not measured: injected during run.warmup"
			}
		}
	}
	r.Leaks = leaks(cfg, series, j)
	r.Load = loads(cfg, series)
	if len(j.migOutcomes) > 0 {
		m := &Migrations{ByOutcome: j.migOutcomes, Moved: j.moved}
		if j.downtime.TotalCount() > 0 {
			q := func(v int64) *float64 { s := float64(v) / 1e6; return &s }
			m.DowntimeP50, m.DowntimeP99 = q(j.downtime.ValueAtQuantile(50)), q(j.downtime.ValueAtQuantile(99))
			m.DowntimeMax = q(j.downtime.Max())
		}
		if cfg != nil {
			m.Limit = cfg.Components.Migration.DowntimeLimit.Std().Seconds()
		}
		r.Migrations = m
	}
	if cfg != nil && cfg.Components.PBFT.Enabled {
		r.PBFT = pbftSummary(cfg, series, j)
	}
	r.Verdicts = verdicts(cfg, series, r, j, in)
	r.Verdict = overall(r.Verdicts)
	r.Reproduce = Reproduce{Command: fmt.Sprintf("soakd run --config config.yaml --seed %d --duration %s --state-dir NEW_DIR",
		st.Seed, st.Target()),
		Replay: "soakd run --config config.yaml with faults.replay: <this state dir>/journal.jsonl (the same faults at the same times)"}
	if cfg != nil {
		r.Reproduce.Config = run.ConfigFile
	}
	return r
}

// relative makes path relative to dir when it lies under it.
func relative(dir, path string) string {
	if dir == "" || !filepath.IsAbs(path) {
		return path
	}
	// A state dir copied elsewhere still holds its evidence under
	// evidence/ (the journal keeps the path the run wrote).
	if rel, ok := underEvidence(dir, path); ok {
		return rel
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return path
	}
	rel, err := filepath.Rel(absDir, path)
	if err != nil || strings.HasPrefix(rel, "..") {
		return path
	}
	return filepath.ToSlash(rel)
}

// underEvidence maps an absolute evidence path that is not under dir (a
// copied state dir) to its evidence/... suffix.
func underEvidence(dir, path string) (string, bool) {
	absDir, err := filepath.Abs(dir)
	if err == nil && strings.HasPrefix(path, absDir+string(filepath.Separator)) {
		return "", false // under dir: the caller makes it relative
	}
	if i := strings.LastIndex(path, "/evidence/"); i >= 0 {
		return path[i+1:], true
	}
	return "", false
}

func overall(vs []Verdict) string {
	if len(vs) == 0 {
		return "incomplete" // nothing judged is not a pass
	}
	out := Pass
	for _, v := range vs {
		switch v.Outcome {
		case Fail:
			return Fail
		case NoData:
			out = "incomplete"
		}
	}
	return out
}

// find returns the series of name whose labels include want.
func find(series []history.Series, name string, want map[string]string) []history.Series {
	var out []history.Series
	for _, s := range series {
		if s.Key.Name != name {
			continue
		}
		ok := true
		for k, v := range want {
			if s.Labels[k] != v {
				ok = false
			}
		}
		if ok {
			out = append(out, s)
		}
	}
	return out
}

// lastGauge is a gauge's latest sample over the run.
func lastGauge(series []history.Series, name string, labels map[string]string) (float64, bool) {
	ss := find(series, name, labels)
	if len(ss) == 0 || len(ss[0].Points) == 0 {
		return 0, false
	}
	v := ss[0].Points[len(ss[0].Points)-1].Last
	return v, finiteNum(v)
}

// finiteNum guards every figure the report prints or encodes (JSON has no
// NaN).
func finiteNum(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// meanGauge is a gauge's mean over every sample of the run.
func meanGauge(series []history.Series, name string, labels map[string]string) (float64, bool) {
	var sum, n float64
	for _, s := range find(series, name, labels) {
		for _, p := range s.Points {
			if finiteNum(p.Sum) {
				sum, n = sum+p.Sum, n+p.Count
			}
		}
	}
	if n == 0 {
		return 0, false
	}
	return sum / n, true
}

// total sums a counter's increases over the run.
func total(series []history.Series, name string, labels map[string]string) (float64, bool) {
	ss := find(series, name, labels)
	var sum float64
	for _, s := range ss {
		for _, p := range s.Points {
			sum += p.Increase
		}
	}
	return sum, len(ss) > 0
}

// merged sums a histogram's points over the run into one.
func merged(s history.Series) history.Point {
	m := history.Point{Bounds: s.Bounds, Buckets: make([]float64, len(s.Bounds))}
	for _, p := range s.Points {
		m.Count += p.Count
		m.Sum += p.Sum
		for i := range min(len(p.Buckets), len(m.Buckets)) {
			m.Buckets[i] += p.Buckets[i]
		}
	}
	return m
}

var signalUnits = map[string]string{leakcheck.SignalHeap: "bytes", leakcheck.SignalRSS: "bytes",
	leakcheck.SignalGoroutines: "goroutines", leakcheck.SignalFDs: "fds", leakcheck.SignalThreads: "threads"}

// longest picks the entry of the longest window.
// maxGauge is a gauge's largest sample over the run.
func maxGauge(series []history.Series, name string, labels map[string]string) (float64, bool) {
	m, ok := math.Inf(-1), false
	for _, s := range find(series, name, labels) {
		for _, p := range s.Points {
			if p.Count > 0 && finiteNum(p.Max) {
				m, ok = max(m, p.Max), true
			}
		}
	}
	return m, ok
}

func pbftSummary(cfg *config.Config, series []history.Series, j *journal) *PBFT {
	p := &PBFT{CommitBound: cfg.Components.PBFT.Liveness.Commit.Std().Seconds(),
		DrainBound:         cfg.Components.PBFT.Liveness.Drain.Std().Seconds(),
		LivenessViolations: j.violByKey["pbft/"+livenessInvariant]}
	for _, vs := range find(series, "soakd_pbft_view_changes_total", nil) {
		n := int64(0)
		for _, pt := range vs.Points {
			n += int64(pt.Increase)
		}
		if p.ViewChanges == nil || n > *p.ViewChanges {
			p.ViewChanges = &n
		}
	}
	if v, ok := maxGauge(series, "soakd_pbft_recovery_seconds", map[string]string{"phase": "commit"}); ok {
		p.WorstCommit = &v
	}
	if v, ok := maxGauge(series, "soakd_pbft_recovery_seconds", map[string]string{"phase": "drain"}); ok {
		p.WorstDrain = &v
	}
	return p
}

// livenessInvariant is the PBFT checker's name for a missed liveness
// bound (pbftcheck.InvLiveness).
const livenessInvariant = "pbft_liveness"

func longest(m map[string]float64) (window string, v float64, ok bool) {
	var best time.Duration
	for w, x := range m {
		if d, err := time.ParseDuration(w); err == nil && d > best {
			best, window, v, ok = d, w, x, true
		}
	}
	return window, v, ok
}

func leaks(cfg *config.Config, series []history.Series, j *journal) []Leak {
	out := []Leak{}
	for _, sig := range leakcheck.Signals {
		l := Leak{Signal: sig, Unit: signalUnits[sig]}
		thr, judged := config.Rate(0), false
		if cfg != nil {
			thr, judged = cfg.LeakCheck.Thresholds[sig]
		}
		l.Threshold = thr.PerSecond()
		for _, s := range find(series, "soakd_leak_window_slope_per_second", map[string]string{"signal": sig}) {
			if n := len(s.Points); n > 0 && finiteNum(s.Points[n-1].Last) {
				if l.WindowSlopes == nil {
					l.WindowSlopes = map[string]float64{}
				}
				l.WindowSlopes[s.Labels["window"]] = s.Points[n-1].Last
			}
		}
		if v, ok := lastGauge(series, "soakd_leak_slope_per_second", map[string]string{"signal": sig}); ok {
			l.Slope = &v
			if cfg != nil {
				l.SlopeWindow = cfg.LeakCheck.Window.String()
			}
		} else if w, v, ok := longest(l.WindowSlopes); ok {
			// The main window has not filled yet (a short run): the
			// longest window that has is the best estimate there is.
			l.Slope, l.SlopeWindow = &v, w
		}
		for _, s := range find(series, "soakd_leak_detectable_slope_per_second", map[string]string{"signal": sig}) {
			if n := len(s.Points); n > 0 && finiteNum(s.Points[n-1].Last) {
				if l.Detectable == nil {
					l.Detectable = map[string]float64{}
				}
				l.Detectable[s.Labels["window"]] = s.Points[n-1].Last
			}
		}
		for _, a := range j.alerts {
			if a.Signal != sig || a.Node != "" {
				continue
			}
			if a.Canary != "" {
				l.Canary++
			} else {
				l.Alerts++
			}
		}
		if judged || l.Slope != nil || l.Alerts+l.Canary > 0 {
			out = append(out, l)
		}
	}
	return out
}

func loads(cfg *config.Config, series []history.Series) []Load {
	out := []Load{}
	if cfg == nil {
		return out
	}
	for _, c := range []struct {
		name string
		rl   config.RateLoad
		on   bool
	}{{"raft", cfg.Load.Raft, cfg.Components.Raft.Enabled}, {"pbft", cfg.Load.PBFT, cfg.Components.PBFT.Enabled}} {
		if !c.on || c.rl.Rate <= 0 {
			continue
		}
		l := Load{Component: c.name, Target: c.rl.Rate, Ops: map[string]int64{}}
		lab := map[string]string{"component": c.name}
		if v, ok := meanGauge(series, "soakd_load_scheduled_ops_per_second", lab); ok {
			l.Scheduled = &v
		}
		if v, ok := meanGauge(series, "soakd_load_achieved_ops_per_second", lab); ok {
			l.Achieved = &v
		}
		for _, s := range find(series, "soakd_ops_total", lab) {
			for _, p := range s.Points {
				l.Ops[s.Labels["outcome"]] += int64(p.Increase)
			}
		}
		if v, ok := meanGauge(series, "soakd_load_below_target", lab); ok {
			l.BelowShare = &v
		}
		if v, ok := total(series, "soakd_ops_dropped_total", lab); ok {
			l.Dropped = int64(v)
		}
		for _, s := range find(series, "soakd_op_duration_seconds", lab) {
			m := merged(s)
			if p50, p99 := m.Quantile(0.5), m.Quantile(0.99); m.Count > 0 && finiteNum(p50) && finiteNum(p99) {
				l.Latency = append(l.Latency, Latency{Op: s.Labels["op"], P50: p50, P99: p99, N: int64(m.Count)})
			}
		}
		sort.Slice(l.Latency, func(a, b int) bool { return l.Latency[a].Op < l.Latency[b].Op })
		out = append(out, l)
	}
	return out
}

// nodeLeakVerdict judges the node processes soakd soaked beside itself
// (a component in mode processes or remote, leakcheck.targets): any leak
// alert on one fails it. ok is false when the run soaked none and none
// alerted.
func nodeLeakVerdict(cfg *config.Config, j *journal) (Verdict, bool) {
	var fired []string
	for _, a := range j.alerts {
		if a.Node != "" && !slices.Contains(fired, a.Name+" on "+a.Node) {
			fired = append(fired, a.Name+" on "+a.Node)
		}
	}
	outOfProcess := func(enabled bool, mode string) bool { return enabled && mode != "" && mode != config.ModeInProcess }
	soaked := cfg != nil && (len(cfg.LeakCheck.Targets) > 0 ||
		outOfProcess(cfg.Components.Raft.Enabled, cfg.Components.Raft.Mode) ||
		outOfProcess(cfg.Components.PBFT.Enabled, cfg.Components.PBFT.Mode) ||
		outOfProcess(cfg.Components.Migration.Enabled, cfg.Components.Migration.HostMode))
	if !soaked && len(fired) == 0 {
		return Verdict{}, false
	}
	v := Verdict{Target: "node processes leak nothing", Outcome: Pass, Measured: "no leak alert on a node process"}
	if len(fired) > 0 {
		v.Outcome, v.Measured = Fail, strings.Join(fired, ", ")
	}
	return v, true
}

func verdicts(cfg *config.Config, series []history.Series, r Report, j *journal, in Inputs) []Verdict {
	var out []Verdict
	// The journal is the record of everything else: without it whole, no
	// table can be trusted to be complete.
	switch {
	case !j.started:
		out = append(out, Verdict{Target: "the journal records the run", Measured: "no run_started or run_resumed in it", Outcome: NoData})
	case j.readErr != nil || j.journalFull:
		out = append(out, Verdict{Target: "the journal records the run", Measured: "it is cut short (see the notes)", Outcome: NoData})
	}
	for _, l := range r.Leaks {
		if l.Threshold <= 0 {
			continue
		}
		v := Verdict{Target: fmt.Sprintf("%s grows under %s", l.Signal, perMinute(l.Threshold, l.Unit))}
		switch {
		case l.Alerts > 0:
			v.Outcome, v.Measured = Fail, fmt.Sprintf("%d leak alert(s)", l.Alerts)
		case l.Slope == nil:
			v.Outcome, v.Measured = NoData, "no slope in the history"
		default:
			v.Outcome, v.Measured = Pass, "no alert; last slope "+perMinute(*l.Slope, l.Unit)
			if l.SlopeWindow != "" {
				v.Measured += " on " + l.SlopeWindow
			}
			if *l.Slope > l.Threshold {
				v.Measured += " (above the threshold, but not by more than the noise allows)"
			}
		}
		if d := detectableNote(l); d != "" {
			v.Measured += "; could see " + d
		}
		out = append(out, v)
	}
	if v, ok := nodeLeakVerdict(cfg, j); ok {
		out = append(out, v)
	}
	runEnd := max(r.Run.Elapsed, j.elapsed)
	for _, w := range j.leakFaults {
		caught := slices.ContainsFunc(j.alerts, func(a Alert) bool { return a.Canary == w.id })
		if w.plateau {
			v := Verdict{Target: fmt.Sprintf("plateau canary %s raises no alert", w.id), Outcome: Pass, Measured: "no alert"}
			if caught {
				v.Outcome, v.Measured = Fail, "its growth stopped, yet it was alerted: the plateau guard failed"
			}
			out = append(out, v)
			continue
		}
		v := Verdict{Target: fmt.Sprintf("leak canary %s is detected", w.id)}
		switch {
		case w.missed:
			v.Outcome, v.Measured = Fail, "SoakdCanaryMissed: it ended without its alert, the detection path is broken"
		case caught && w.detected != nil:
			v.Outcome, v.Measured = Pass, fmt.Sprintf("alert fired %s after it started", time.Duration(float64(*w.detected)*float64(time.Second)).Round(time.Second))
		case caught:
			v.Outcome, v.Measured = Pass, "alert fired"
		case w.to < 0:
			v.Outcome, v.Measured = NoData, "still running"
		case runEnd < w.to+Seconds(j.settle.Seconds()):
			v.Outcome, v.Measured = NoData, "ended; the run stopped before its alert was due"
		default:
			v.Outcome, v.Measured = Fail, "ended without its alert: the detection path is broken"
		}
		out = append(out, v)
	}
	// Every enabled component, and any other that journaled a violation.
	var comps []string
	if cfg != nil {
		comps = cfg.Components.EnabledComponents()
	}
	for k := range j.violByKey {
		if c, _, _ := strings.Cut(k, "/"); !slices.Contains(comps, c) {
			comps = append(comps, c)
		}
	}
	for _, comp := range comps {
		n, which := j.violationsOf(comp)
		v := Verdict{Target: comp + ": no invariant violation"}
		// What the checkers covered: their windows (KV histories) or the
		// migrations verified byte for byte.
		covered := ""
		if checks, ok := total(series, "soakd_checks_total", map[string]string{"component": comp}); ok && checks > 0 {
			covered = fmt.Sprintf(" in %.0f checks", checks)
		} else if comp == "migration" && r.Migrations != nil && r.Migrations.Moved > 0 {
			covered = fmt.Sprintf(" in %d migrations verified", r.Migrations.Moved)
		}
		switch {
		case n > 0:
			v.Outcome, v.Measured = Fail, fmt.Sprintf("%d violation(s): %s", n, strings.Join(which, ", "))
		case covered == "":
			v.Outcome, v.Measured = NoData, "no violation journaled, and nothing shows a check ran"
		default:
			v.Outcome, v.Measured = Pass, "0 violations"+covered
		}
		out = append(out, v)
	}
	for _, l := range r.Load {
		v := Verdict{Target: fmt.Sprintf("%s load holds its schedule (%g ops/s; ≥ %.0f%% started, below that ≤ %.0f%% of the time)",
			l.Component, l.Target, 100*minLoadShare, 100*maxBelowShare)}
		switch {
		case l.Achieved == nil || l.Scheduled == nil || *l.Scheduled == 0:
			v.Outcome, v.Measured = NoData, "no load rates in the history"
		default:
			share := *l.Achieved / *l.Scheduled
			v.Measured = fmt.Sprintf("%.1f of %.1f ops/s scheduled (%.1f%%)", *l.Achieved, *l.Scheduled, 100*share)
			ok := share >= minLoadShare
			if l.BelowShare != nil {
				v.Measured += fmt.Sprintf("; below it %.1f%% of the time", 100**l.BelowShare)
				ok = ok && *l.BelowShare <= maxBelowShare
			}
			v.Outcome = map[bool]string{true: Pass, false: Fail}[ok]
		}
		out = append(out, v)
	}
	if p := r.PBFT; p != nil {
		v := Verdict{Target: fmt.Sprintf("pbft recovers after each fault window (a commit within %s, pending requests done within %s)",
			seconds(p.CommitBound), seconds(p.DrainBound))}
		switch {
		case p.LivenessViolations > 0:
			v.Outcome, v.Measured = Fail, fmt.Sprintf("%d liveness violation(s)", p.LivenessViolations)
		case p.WorstCommit == nil && j.faultsTotal == 0:
			v.Outcome, v.Measured = Pass, "no fault window to recover from"
		case p.WorstCommit == nil:
			v.Outcome, v.Measured = NoData, "no recovery measured after the fault windows"
		default:
			v.Measured = "worst: commit " + seconds(*p.WorstCommit)
			ok := *p.WorstCommit <= p.CommitBound
			if p.WorstDrain != nil {
				v.Measured += ", drain " + seconds(*p.WorstDrain)
				ok = ok && *p.WorstDrain <= p.DrainBound
			}
			v.Outcome = map[bool]string{true: Pass, false: Fail}[ok]
		}
		out = append(out, v)
	}
	if cfg != nil && cfg.Components.Migration.Enabled {
		limit := cfg.Components.Migration.DowntimeLimit.Std().Seconds()
		v := Verdict{Target: fmt.Sprintf("migration downtime p99 ≤ %s", seconds(limit))}
		if m := r.Migrations; m == nil || m.DowntimeP99 == nil {
			v.Outcome, v.Measured = NoData, "no migration moved a guest"
		} else {
			v.Measured = fmt.Sprintf("p99 %s over %d migrations", seconds(*m.DowntimeP99), m.Moved)
			v.Outcome = map[bool]string{true: Pass, false: Fail}[*m.DowntimeP99 <= limit]
		}
		out = append(out, v)
	}
	return out
}

func detectableNote(l Leak) string {
	if len(l.Detectable) == 0 {
		return ""
	}
	ws := make([]string, 0, len(l.Detectable))
	for w := range l.Detectable {
		ws = append(ws, w)
	}
	sort.Strings(ws)
	parts := make([]string, len(ws))
	for i, w := range ws {
		parts[i] = fmt.Sprintf("%s on %s", perMinute(l.Detectable[w], l.Unit), w)
	}
	return strings.Join(parts, ", ")
}

// perMinute formats a per-second slope per minute in the signal's unit.
func perMinute(perSecond float64, unit string) string {
	v := perSecond * 60
	if unit == "bytes" {
		if math.Abs(v) < 1<<20 {
			return fmt.Sprintf("%.3g KiB/min", v/(1<<10))
		}
		return fmt.Sprintf("%.3g MiB/min", v/(1<<20))
	}
	return fmt.Sprintf("%.3g %s/min", v, unit)
}

func seconds(s float64) string {
	switch {
	case s == 0:
		return "0 s"
	case math.Abs(s) < 1e-3:
		return fmt.Sprintf("%.3g µs", s*1e6)
	case math.Abs(s) < 1:
		return fmt.Sprintf("%.3g ms", s*1e3)
	}
	return fmt.Sprintf("%.3g s", s)
}
