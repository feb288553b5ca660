// Package status assembles the run's status document, served at
// /api/v1/status and rendered by `soakd status`, from the owners of each
// part: the run (progress), the components (health), the fault runner
// (faults in force), the leak monitor (firing alerts, fault residue) and
// the profiler (CPU by stage).
// It sits above them all, so each part keeps its owner's type and nothing
// mirrors another package's types; data flows one way, up.
package status

import (
	"encoding/json"
	"sync"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/faults"
	"github.com/soakd/soakd/internal/leakcheck"
	"github.com/soakd/soakd/internal/profiling"
	"github.com/soakd/soakd/internal/run"
)

// Status is the status document. Lists are empty, not null, when there is
// nothing to show.
type Status struct {
	run.Snapshot
	Components   []Component             `json:"components"`
	ActiveFaults []faults.ActiveFault    `json:"active_faults"`
	FiringAlerts []leakcheck.FiringAlert `json:"firing_alerts"`
	// FaultResidue is, per fault kind, what its injections left behind.
	FaultResidue []leakcheck.Residue `json:"fault_residue"`
	// LeakSignals is each judged leak signal's threshold, last slope and
	// the smallest leak its noise lets soakd detect.
	LeakSignals []leakcheck.SignalView `json:"leak_signals"`
	// LeakCanaries are the run's leak canaries: in force, detected (and
	// how fast) or missed.
	LeakCanaries []leakcheck.Canary `json:"leak_canaries"`
	// CPUByStage is the last stage CPU sample: what the harness costs next
	// to the components. Absent before the first sample.
	CPUByStage *profiling.StageCPU `json:"cpu_by_stage,omitempty"`
}

// Component is one component's health.
type Component struct {
	Name    string `json:"name"`
	Healthy bool   `json:"healthy"`
	Detail  string `json:"detail,omitempty"`
	// Summary is what the component says of itself (components.Summarizer).
	Summary json.RawMessage `json:"summary,omitempty"`
}

// Parts are the sources built after the run opens; any may be nil.
type Parts struct {
	Components []components.Component
	Faults     *faults.Runner
	Leaks      *leakcheck.Monitor
	Profiler   *profiling.Profiler
}

// Assembler builds the document on demand. The HTTP server starts before
// the components and engines exist, so their parts are attached later.
type Assembler struct {
	run *run.Run
	mu  sync.RWMutex
	p   Parts
}

// New returns an assembler for r with no parts attached yet.
func New(r *run.Run) *Assembler { return &Assembler{run: r} }

// Attach sets the parts once they are built.
func (a *Assembler) Attach(p Parts) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.p = p
}

// Status assembles the document now.
func (a *Assembler) Status() Status {
	a.mu.RLock()
	p := a.p
	a.mu.RUnlock()
	st := Status{Snapshot: a.run.Snapshot(), Components: []Component{}, ActiveFaults: []faults.ActiveFault{},
		FiringAlerts: []leakcheck.FiringAlert{}, FaultResidue: []leakcheck.Residue{},
		LeakSignals: []leakcheck.SignalView{}, LeakCanaries: []leakcheck.Canary{}}
	for _, c := range p.Components {
		h := c.Health()
		cs := Component{Name: c.Name(), Healthy: h.Healthy, Detail: h.Detail}
		if sum, ok := c.(components.Summarizer); ok {
			if b, err := json.Marshal(sum.Summary()); err == nil {
				cs.Summary = b
			}
		}
		st.Components = append(st.Components, cs)
	}
	if p.Faults != nil {
		st.ActiveFaults = append(st.ActiveFaults, p.Faults.Active()...)
	}
	if p.Leaks != nil {
		st.FiringAlerts = append(st.FiringAlerts, p.Leaks.Firing()...)
		st.FaultResidue = append(st.FaultResidue, p.Leaks.Residue().Residues()...)
		st.LeakSignals = append(st.LeakSignals, p.Leaks.Signals()...)
		st.LeakCanaries = append(st.LeakCanaries, p.Leaks.Canaries()...)
	}
	if p.Profiler != nil {
		if c := p.Profiler.StageCPU(); !c.At.IsZero() || c.Error != "" {
			st.CPUByStage = &c
		}
	}
	return st
}

// Alerts is the document of /api/v1/alerts: the firing alerts.
func (a *Assembler) Alerts() []leakcheck.FiringAlert { return a.Status().FiringAlerts }
