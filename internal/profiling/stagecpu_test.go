package profiling

import (
	"context"
	"math"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/soakd/soakd/internal/config"
)

// CPUByStage sums samples by the label and sorts stages into harness,
// components and runtime.
func TestCPUByStage(t *testing.T) {
	p := &profile.Profile{SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}}}
	add := func(stage string, ns int64) {
		s := &profile.Sample{Value: []int64{1, ns}}
		if stage != "" {
			s.Label = map[string][]string{"stage": {stage}}
		}
		p.Sample = append(p.Sample, s)
	}
	add("component/raft", 4e9)
	add("component/raft", 2e9)
	add("fabric", 1e9)
	add("load/raft", 5e8)
	add("", 2e9)
	got, err := CPUByStage(p, "stage", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if !near(got.ComponentCores, 0.6) || !near(got.HarnessCores, 0.15) || !near(got.RuntimeCores, 0.2) {
		t.Errorf("components %g, harness %g, runtime %g cores; want 0.6, 0.15, 0.2", got.ComponentCores, got.HarnessCores, got.RuntimeCores)
	}
	if got.Stages[0].Stage != "component/raft" || !near(got.Stages[0].Cores, 0.6) || len(got.Stages) != 4 {
		t.Errorf("stages %v, want component/raft first of 4", got.Stages)
	}
	if _, err := CPUByStage(&profile.Profile{}, "stage", time.Second); err == nil {
		t.Error("a profile without cpu nanoseconds: want an error")
	}
}

// A real sample finds the CPU of labelled goroutines under their stages,
// exports it, and says why when another profile holds the profiler.
func TestStageCPUSample(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := profilingConfig("", time.Hour, 64<<20)
	cfg.StageCPU = config.StageCPU{Interval: config.Duration(100 * time.Millisecond), Duration: config.Duration(700 * time.Millisecond)}
	p, err := New(Options{Config: cfg, Dir: t.TempDir(), StageLabel: "stage", Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	burn := func(stage string) {
		wg.Go(func() {
			pprof.Do(ctx, pprof.Labels("stage", stage), func(ctx context.Context) {
				for x := 0; ctx.Err() == nil; x++ {
					_ = x * x
				}
			})
		})
	}
	burn("load/raft")
	burn("component/raft")
	defer func() { cancel(); wg.Wait() }()
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	deadline := time.Now().Add(20 * time.Second)
	for p.StageCPU().At.IsZero() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	s := p.StageCPU()
	if s.At.IsZero() {
		t.Fatalf("no sample in 20 s: %q", s.Error)
	}
	// Two spinning goroutines on a machine that may have two cores and
	// other work: each should show a good part of a core.
	if s.HarnessCores < 0.1 || s.ComponentCores < 0.1 {
		t.Errorf("harness %.2f, components %.2f cores, want each ≥ 0.1 for a spinning goroutine: %+v", s.HarnessCores, s.ComponentCores, s.Stages)
	}
	if v := testutil.ToFloat64(p.stageCores.WithLabelValues("load/raft")); v < 0.1 {
		t.Errorf("soakd_cpu_cores{stage=load/raft} = %g", v)
	}

	// Another CPU profile holds the profiler: the sample says so and keeps
	// the last figures.
	p.Stop(context.Background())
	if err := pprof.StartCPUProfile(&strings.Builder{}); err != nil {
		t.Fatal(err)
	}
	_, err = p.sampleStageCPU(context.Background(), 10*time.Millisecond)
	pprof.StopCPUProfile()
	if err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Errorf("sample while another CPU profile runs: %v, want already in use", err)
	}
}
