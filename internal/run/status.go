package run

import "time"

// Status is the JSON document of /api/v1/status and what `soakd status`
// renders.
type Status struct {
	RunID          string            `json:"run_id"`
	Seed           uint64            `json:"seed"`
	Phase          string            `json:"phase"`
	StartedAt      time.Time         `json:"started_at"`
	ElapsedSeconds float64           `json:"elapsed_seconds"`
	TargetSeconds  float64           `json:"target_seconds"`
	Progress       float64           `json:"progress"` // 0..1
	Incarnation    int               `json:"incarnation"`
	StateDir       string            `json:"state_dir"`
	Components     []ComponentStatus `json:"components"`
	ActiveFaults   []FaultStatus     `json:"active_faults"`
	FiringAlerts   []AlertStatus     `json:"firing_alerts"`
	// FaultResidue is, per fault kind, what its injections left behind.
	FaultResidue []FaultResidue `json:"fault_residue"`
}

// FaultResidue is what one fault kind left behind after its reverts.
type FaultResidue struct {
	Kind         string             `json:"kind"`
	Injections   int                `json:"injections"`
	WithResidue  int                `json:"with_residue"`
	LastResidue  map[string]float64 `json:"last_residue"`
	TotalResidue map[string]float64 `json:"total_residue"`
}

// ComponentStatus is one component's health.
type ComponentStatus struct {
	Name    string `json:"name"`
	Healthy bool   `json:"healthy"`
	Detail  string `json:"detail,omitempty"`
}

// FaultStatus is one fault in force.
type FaultStatus struct {
	Kind   string    `json:"kind"`
	Target string    `json:"target"`
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until"`
	// Stuck marks a fault whose revert failed: it blocks its target.
	Stuck bool `json:"stuck,omitempty"`
}

// AlertStatus is one firing alert.
type AlertStatus struct {
	Name     string    `json:"name"`
	Signal   string    `json:"signal,omitempty"`
	Since    time.Time `json:"since"`
	Evidence string    `json:"evidence,omitempty"`
}

// Status returns a snapshot of the run for the status API.
func (r *Run) Status() Status {
	r.mu.Lock()
	el := r.elapsedLocked()
	st := Status{
		RunID: r.state.RunID, Seed: r.state.Seed, Phase: r.phase, StartedAt: r.state.StartedAt,
		ElapsedSeconds: el.Seconds(), TargetSeconds: r.state.TargetSeconds,
		Incarnation: r.state.Incarnation, StateDir: r.dir,
	}
	comps := r.comps
	r.mu.Unlock()
	if st.TargetSeconds > 0 {
		st.Progress = min(1, st.ElapsedSeconds/st.TargetSeconds)
	}
	st.Components = []ComponentStatus{}
	for _, c := range comps {
		h := c.Health()
		st.Components = append(st.Components, ComponentStatus{Name: c.Name(), Healthy: h.Healthy, Detail: h.Detail})
	}
	st.ActiveFaults = []FaultStatus{}
	if r.opts.Faults != nil {
		st.ActiveFaults = append(st.ActiveFaults, r.opts.Faults()...)
	}
	st.FiringAlerts = []AlertStatus{}
	if r.opts.Alerts != nil {
		st.FiringAlerts = append(st.FiringAlerts, r.opts.Alerts()...)
	}
	st.FaultResidue = []FaultResidue{}
	if r.opts.Residue != nil {
		st.FaultResidue = append(st.FaultResidue, r.opts.Residue()...)
	}
	return st
}
