package report

import "time"

// Report is what a run found, computed from its state dir alone: the
// journal, the history, the effective config and the evidence files. The
// JSON, Markdown and HTML forms all render this one value.
type Report struct {
	Run      RunInfo   `json:"run"`
	Verdict  string    `json:"verdict"` // pass, fail, or incomplete (a target had no data)
	Verdicts []Verdict `json:"verdicts"`
	Leaks    []Leak    `json:"leaks"`
	Load     []Load    `json:"load"`
	Faults   Faults    `json:"faults"`
	Alerts   []Alert   `json:"alerts"`
	// AlertsTotal counts every alert; Alerts keeps the first maxRows.
	AlertsTotal int `json:"alerts_total"`
	// Violations are the invariant violations the checkers journaled, the
	// first maxRows of them (ViolationsTotal counts all).
	Violations      []Violation `json:"violations"`
	ViolationsTotal int         `json:"violations_total"`
	Migrations      *Migrations `json:"migrations,omitempty"`
	PBFT            *PBFT       `json:"pbft,omitempty"`
	Evidence        []string    `json:"evidence"` // files under the state dir's evidence/, relative to the state dir (the first maxEvidence)
	Reproduce       Reproduce   `json:"reproduce"`
	// Notes say what the report could not see (a missing history, a
	// journal that filled up), so no section reads as clean for lack of
	// data.
	Notes []string `json:"notes,omitempty"`
}

// RunInfo identifies the run and its incarnations.
type RunInfo struct {
	ID           string        `json:"run_id"`
	Seed         uint64        `json:"seed"`
	StartedAt    time.Time     `json:"started_at"`
	Elapsed      Seconds       `json:"elapsed_seconds"`
	Target       Seconds       `json:"target_seconds"`
	Completed    bool          `json:"completed"`
	Incarnations []Incarnation `json:"incarnations"`
}

// Incarnation is one process lifetime of the run (a resume after a stop
// or kill -9 starts the next).
type Incarnation struct {
	N       int       `json:"n"`
	Started time.Time `json:"started"`
	// At is the run's elapsed soak time when it started.
	At      Seconds `json:"at_seconds"`
	Version string  `json:"version,omitempty"`
	// Ended says how it ended: completed, stopped, or killed (no stop was
	// journaled before the next incarnation or the end of the journal).
	Ended string `json:"ended"`
}

// Seconds is a duration in seconds, as the journal and JSON carry them.
type Seconds float64

// Duration converts s.
func (s Seconds) Duration() time.Duration { return time.Duration(float64(s) * float64(time.Second)) }

// Outcomes of a verdict.
const (
	Pass   = "pass"
	Fail   = "fail"
	NoData = "no data"
)

// Verdict is one target of the run with what was measured.
type Verdict struct {
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Outcome  string `json:"outcome"`
}

// Leak is one leak signal over the run.
type Leak struct {
	Signal    string  `json:"signal"`
	Unit      string  `json:"unit"`
	Threshold float64 `json:"threshold_per_second"`
	// Slope is the main window's last estimate; Detectable the smallest
	// slope each window could tell from the noise at the end of the run.
	Slope      *float64           `json:"slope_per_second,omitempty"`
	Detectable map[string]float64 `json:"detectable_per_second,omitempty"`
	// WindowSlopes are each window's last slope (main and
	// leakcheck.windows); SlopeWindow names the one Slope came from.
	WindowSlopes map[string]float64 `json:"window_slopes_per_second,omitempty"`
	SlopeWindow  string             `json:"slope_window,omitempty"`
	Alerts       int                `json:"alerts"`
	Canary       int                `json:"canary_alerts"`
}

// Load is one component's open-loop load over the run.
type Load struct {
	Component string `json:"component"`
	// Target is the configured rate; Scheduled and Achieved the means of
	// the per-minute rates the history kept.
	Target    float64          `json:"target_ops_per_second"`
	Scheduled *float64         `json:"scheduled_ops_per_second,omitempty"`
	Achieved  *float64         `json:"achieved_ops_per_second,omitempty"`
	Ops       map[string]int64 `json:"ops_by_outcome,omitempty"`
	Dropped   int64            `json:"dropped"`
	Latency   []Latency        `json:"latency,omitempty"`
	// BelowShare is the share of the history's samples in which the load
	// started under 95% of its schedule (soakd_load_below_target).
	BelowShare *float64 `json:"below_target_share,omitempty"`
}

// Latency is one op's latency quantiles over the run.
type Latency struct {
	Op  string  `json:"op"`
	P50 float64 `json:"p50_seconds"`
	P99 float64 `json:"p99_seconds"`
	N   int64   `json:"count"`
}

// Faults are the run's fault injections.
type Faults struct {
	Rows []Fault `json:"rows"`
	// Total counts every injection; Rows keeps the first maxRows.
	Total   int `json:"total"`
	Skipped int `json:"skipped"`
	Failed  int `json:"failed"`
}

// Fault is one injection.
type Fault struct {
	ID       string            `json:"id"`
	Kind     string            `json:"kind"`
	Target   string            `json:"target"`
	Selector string            `json:"selector,omitempty"`
	Params   map[string]string `json:"params,omitempty"`
	Start    Seconds           `json:"start_seconds"`
	// Duration is from injection to revert; 0 while it was never reverted.
	Duration Seconds `json:"duration_seconds"`
	EndedBy  string  `json:"ended_by,omitempty"`
	Verified string  `json:"verified,omitempty"`
	// Residue is each level after the revert and settle minus before;
	// ResidueNote says why there is none (unmeasured, not yet settled).
	Residue     map[string]float64 `json:"residue,omitempty"`
	LeftResidue bool               `json:"left_residue"`
	// ResidueOver names the levels that grew past their tolerance.
	ResidueOver []string `json:"residue_over_tolerance,omitempty"`
	ResidueNote string   `json:"residue_note,omitempty"`
	Incarnation int      `json:"incarnation"`
}

// Alert is one leak alert.
type Alert struct {
	Name      string   `json:"alertname"`
	Signal    string   `json:"signal"`
	Window    string   `json:"window,omitempty"`
	Fired     Seconds  `json:"fired_seconds"`
	Resolved  *Seconds `json:"resolved_seconds,omitempty"`
	Slope     float64  `json:"slope_per_second"`
	Threshold float64  `json:"threshold_per_second"`
	Evidence  string   `json:"evidence,omitempty"`
	// Canary names the leak fault that caused it on purpose ("" for a
	// real alert).
	Canary string `json:"canary,omitempty"`
	// Node is the node process that leaked ("component/node"; "": soakd).
	Node string `json:"node,omitempty"`
}

// Subject is the signal and, for a node process's alert, the node.
func (a Alert) Subject() string {
	if a.Node == "" {
		return a.Signal
	}
	return a.Signal + " of node " + a.Node
}

// Violation is one journaled invariant violation.
type Violation struct {
	At        Seconds `json:"at_seconds"`
	Component string  `json:"component"`
	Invariant string  `json:"invariant"`
	Evidence  string  `json:"evidence,omitempty"`
	Detail    string  `json:"detail,omitempty"`
}

// Migrations summarizes the live migrations.
type Migrations struct {
	ByOutcome map[string]int `json:"by_outcome"`
	// Moved counts the migrations that moved a guest (and were verified
	// byte for byte); the downtime quantiles are over them, absent when
	// none did.
	Moved       int      `json:"moved"`
	DowntimeP50 *float64 `json:"downtime_p50_seconds,omitempty"`
	DowntimeP99 *float64 `json:"downtime_p99_seconds,omitempty"`
	DowntimeMax *float64 `json:"downtime_max_seconds,omitempty"`
	Limit       float64  `json:"downtime_limit_seconds"`
}

// PBFT summarizes the PBFT cluster's view changes and its recovery after
// fault windows (the bounded-liveness check).
type PBFT struct {
	// ViewChanges is the most views any one replica entered after its
	// first (each replica counts the same change once); absent without a
	// history.
	ViewChanges *int64 `json:"view_changes,omitempty"`
	// Worst recovery after a fault window closed, from the history's
	// samples: to the first commit and to the last pending request done.
	WorstCommit *float64 `json:"worst_commit_seconds,omitempty"`
	WorstDrain  *float64 `json:"worst_drain_seconds,omitempty"`
	CommitBound float64  `json:"commit_bound_seconds"`
	DrainBound  float64  `json:"drain_bound_seconds"`
	// LivenessViolations are the journaled pbft_liveness violations.
	LivenessViolations int `json:"liveness_violations"`
}

// Reproduce is how to run the same soak again.
type Reproduce struct {
	Config  string `json:"config,omitempty"` // the effective config file, relative to the state dir
	Command string `json:"command"`
	Replay  string `json:"replay"`
}
