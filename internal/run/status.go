package run

import "time"

// Snapshot is the run's own part of the status document (internal/status
// assembles the rest): who the run is and how far it got.
type Snapshot struct {
	RunID          string    `json:"run_id"`
	Seed           uint64    `json:"seed"`
	Phase          string    `json:"phase"`
	StartedAt      time.Time `json:"started_at"`
	ElapsedSeconds float64   `json:"elapsed_seconds"`
	TargetSeconds  float64   `json:"target_seconds"`
	Progress       float64   `json:"progress"` // 0..1
	Incarnation    int       `json:"incarnation"`
	StateDir       string    `json:"state_dir"`
}

// Snapshot returns the run's identity and progress now.
func (r *Run) Snapshot() Snapshot {
	r.mu.Lock()
	el := r.elapsedLocked()
	p := Snapshot{
		RunID: r.state.RunID, Seed: r.state.Seed, Phase: r.phase, StartedAt: r.state.StartedAt,
		ElapsedSeconds: el.Seconds(), TargetSeconds: r.state.TargetSeconds,
		Incarnation: r.state.Incarnation, StateDir: r.dir,
	}
	r.mu.Unlock()
	if p.TargetSeconds > 0 {
		p.Progress = min(1, p.ElapsedSeconds/p.TargetSeconds)
	}
	return p
}
