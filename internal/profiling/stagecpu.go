package profiling

import (
	"bytes"
	"context"
	"fmt"
	"runtime/pprof"
	"sort"
	"strings"
	"time"

	"github.com/google/pprof/profile"
	"github.com/jonboulle/clockwork"

	"github.com/soakd/soakd/internal/tick"
)

// StageCPU is where soakd's CPU went during one sampled stretch, by the
// value of the pprof stage label (run.StageLabel): what the harness costs
// next to the systems it soaks.
type StageCPU struct {
	At      time.Time `json:"sampled_at"`
	Seconds float64   `json:"seconds"` // the profile's length
	// Stages are cores used per stage, most first; "" is work no stage
	// label reaches: the runtime's own (GC workers, scheduler).
	Stages []StageCores `json:"stages"`
	// HarnessCores sums every stage but the components ("component/…")
	// and the unlabelled runtime; ComponentCores the components.
	HarnessCores   float64 `json:"harness_cores"`
	ComponentCores float64 `json:"component_cores"`
	RuntimeCores   float64 `json:"runtime_cores"`
	// Error says why the last sample failed (the CPU profiler is in use by
	// the Pyroscope push or a /debug/pprof/profile request); the figures
	// are then the previous sample's.
	Error string `json:"error,omitempty"`
}

// StageCores is one stage's CPU in cores (1 = one core busy throughout).
type StageCores struct {
	Stage string  `json:"stage"`
	Cores float64 `json:"cores"`
}

// ComponentStagePrefix starts a component's stage label ("component/raft").
const ComponentStagePrefix = "component/"

// CPUByStage sums a CPU profile d long by the value of label.
func CPUByStage(p *profile.Profile, label string, d time.Duration) (StageCPU, error) {
	idx := -1
	for i, st := range p.SampleType {
		if st.Type == "cpu" && st.Unit == "nanoseconds" {
			idx = i
		}
	}
	if idx < 0 {
		return StageCPU{}, fmt.Errorf("profiling: no cpu nanoseconds in the profile")
	}
	if d <= 0 {
		return StageCPU{}, fmt.Errorf("profiling: profile length %s", d)
	}
	by := map[string]float64{}
	for _, s := range p.Sample {
		stage := ""
		if v := s.Label[label]; len(v) > 0 {
			stage = v[0]
		}
		by[stage] += float64(s.Value[idx]) / float64(d)
	}
	out := StageCPU{Seconds: d.Seconds(), Stages: []StageCores{}}
	for st, c := range by {
		out.Stages = append(out.Stages, StageCores{st, c})
		switch {
		case st == "":
			out.RuntimeCores += c
		case strings.HasPrefix(st, ComponentStagePrefix):
			out.ComponentCores += c
		default:
			out.HarnessCores += c
		}
	}
	sort.Slice(out.Stages, func(i, j int) bool {
		a, b := out.Stages[i], out.Stages[j]
		return a.Cores > b.Cores || a.Cores == b.Cores && a.Stage < b.Stage
	})
	return out, nil
}

// sampleStageCPU takes one CPU profile of d and sums it by stage. Only one
// CPU profile can run in a process: while another holds the profiler it
// fails at once and takes nothing.
func (p *Profiler) sampleStageCPU(ctx context.Context, d time.Duration) (StageCPU, error) {
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		return StageCPU{}, fmt.Errorf("profiling: stage CPU: %w", err)
	}
	start := p.clock.Now()
	select {
	case <-ctx.Done():
	case <-p.clock.After(d):
	}
	pprof.StopCPUProfile()
	took := p.clock.Since(start)
	prof, err := profile.Parse(&buf)
	if err != nil {
		return StageCPU{}, fmt.Errorf("profiling: stage CPU: %w", err)
	}
	out, err := CPUByStage(prof, p.opts.StageLabel, took)
	out.At = start
	return out, err
}

// stageLoop samples on every tick of t and keeps the last result.
func (p *Profiler) stageLoop(ctx context.Context, t clockwork.Ticker, d time.Duration) {
	tick.Loop(ctx.Done(), t, func(time.Time) {
		s, err := p.sampleStageCPU(ctx, d)
		if ctx.Err() != nil {
			return
		}
		p.mu.Lock()
		if err != nil {
			p.stage.Error = err.Error()
		} else {
			p.stage = s
		}
		p.mu.Unlock()
		if err != nil {
			p.log.Debug("stage CPU sample skipped", "err", err)
			return
		}
		if p.stageCores != nil {
			p.stageCores.Reset()
			for _, st := range s.Stages {
				p.stageCores.WithLabelValues(st.Stage).Set(st.Cores)
			}
		}
	})
}

// StageCPU returns the last stage CPU sample (zero before the first).
func (p *Profiler) StageCPU() StageCPU {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stage
}
