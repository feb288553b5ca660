package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/soakd/soakd/internal/profiling"
)

// stageAverage averages soakd's stage CPU samples (a short CPU profile
// every profiling.stage_cpu.interval, in /api/v1/status) over the soak.
type stageAverage struct {
	last                         time.Time
	n                            int
	sum                          map[string]float64
	harness, components, runtime float64
}

func (a *stageAverage) poll(addr string) {
	resp, err := http.Get("http://" + addr + "/api/v1/status")
	if err != nil {
		return
	}
	defer resp.Body.Close()
	var st struct {
		CPU *profiling.StageCPU `json:"cpu_by_stage"`
	}
	if json.NewDecoder(resp.Body).Decode(&st) != nil || st.CPU == nil || !st.CPU.At.After(a.last) {
		return
	}
	c := st.CPU
	a.last = c.At
	a.n++
	if a.sum == nil {
		a.sum = map[string]float64{}
	}
	for _, s := range c.Stages {
		a.sum[s.Stage] += s.Cores
	}
	a.harness += c.HarnessCores
	a.components += c.ComponentCores
	a.runtime += c.RuntimeCores
}

func (a *stageAverage) report() {
	if a.n == 0 {
		fmt.Println("\nCPU by stage: no sample (profiling.stage_cpu takes one every 5 minutes)")
		return
	}
	n := float64(a.n)
	var stages []string
	for st := range a.sum {
		stages = append(stages, st)
	}
	sort.Slice(stages, func(i, j int) bool { return a.sum[stages[i]] > a.sum[stages[j]] })
	fmt.Printf("\nCPU by stage (the mean of soakd's %d stage CPU samples): %.1f%% of a core in all\n", a.n,
		100*(a.harness+a.components+a.runtime)/n)
	for _, st := range stages {
		name := st
		if name == "" {
			name = "(runtime: GC, scheduler)"
		}
		fmt.Printf("  %-28s %5.1f%% of a core\n", name, 100*a.sum[st]/n)
	}
	fmt.Printf("harness (everything but components and the runtime): %.1f%% of a core; components: %.1f%%\n",
		100*a.harness/n, 100*a.components/n)
}
