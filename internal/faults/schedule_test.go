package faults

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/soakd/soakd/internal/config"
)

func TestPlanIsAPureFunctionOfConfigAndSeed(t *testing.T) {
	cfg := config.Default()
	start := time.Now()
	a, err := Plan(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	b, _ := Plan(cfg, 1)
	c, _ := Plan(cfg, 2)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same config and seed, different plans")
	}
	if reflect.DeepEqual(a, c) {
		t.Fatal("different seeds, same plan")
	}
	// 72 h at a 5 min mean interval: about 864 random faults.
	if len(a) < 600 || len(a) > 1100 {
		t.Fatalf("%d faults in the 72 h default plan", len(a))
	}
	t.Logf("72 h plan: %d faults in %v", len(a), took)
	var lastAt time.Duration
	for _, p := range a {
		if p.At < lastAt || p.At >= cfg.Run.Duration.Std() {
			t.Fatalf("fault %+v out of order or past the end", p)
		}
		lastAt = p.At
	}
}

func TestPlanHonoursMaxConcurrentAndKinds(t *testing.T) {
	cfg := config.Default()
	cfg.Faults.Timeline = nil
	cfg.Faults.Random.MeanInterval = config.Duration(30 * time.Second) // dense: faults overlap often
	cfg.Faults.Random.MaxConcurrent = 2
	cfg.Components.PBFT.Enabled = false
	cfg.Components.Migration.Enabled = false
	plan, _ := Plan(cfg, 7)
	for i, p := range plan {
		n := 0
		for _, q := range plan[:i+1] {
			if q.At <= p.At && p.At < q.End() {
				n++
			}
		}
		if n > 2 {
			t.Fatalf("%d faults in force at %v, max_concurrent 2", n, p.At)
		}
		if c := componentOf(p.Target); c == "pbft" || c == "migration" {
			t.Fatalf("fault on disabled component: %+v", p)
		}
		if p.Duration < cfg.Faults.Random.Duration.Min.Std() || p.Duration > cfg.Faults.Random.Duration.Max.Std() {
			t.Fatalf("duration %v outside the configured range", p.Duration)
		}
	}
}

func TestReplayReproducesTheRealizedSequence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.jsonl")
	lines := []map[string]any{
		{"seq": 1, "type": "run_started", "elapsed_seconds": 0},
		{"seq": 2, "type": "fault_injected", "elapsed_seconds": 3600.5, "fields": map[string]any{"kind": "partition", "target": "raft/node-2",
			"duration_seconds": 300.0, "params": map[string]any{"mode": "isolate"}}},
		{"seq": 3, "type": "fault_reverted", "elapsed_seconds": 3900.5, "fields": map[string]any{"kind": "partition"}},
		{"seq": 4, "type": "fault_injected", "elapsed_seconds": 7200, "fields": map[string]any{"kind": "crash", "target": "raft/node-1,node-3", "duration_seconds": 60.0}},
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		b, _ := json.Marshal(l)
		fmt.Fprintf(f, "%s\n", b)
	}
	fmt.Fprint(f, `{"seq":5,"type":"fault_inj`) // torn tail from kill -9
	f.Close()
	plan, err := ReplayPlan(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []Planned{
		{ID: "replay-2", At: 3600500 * time.Millisecond, Duration: 300 * time.Second, Kind: "partition", Target: "raft/node-2", Params: map[string]string{"mode": "isolate"}, Source: "replay"},
		{ID: "replay-4", At: 2 * time.Hour, Duration: time.Minute, Kind: "crash", Target: "raft/node-1,node-3", Source: "replay"},
	}
	if !reflect.DeepEqual(plan, want) {
		t.Fatalf("replay plan:\n got %+v\nwant %+v", plan, want)
	}
	if _, err := ReplayPlan(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("missing journal accepted")
	}
}

// BenchmarkPlan72h is the time to compute the default 72-hour plan.
func BenchmarkPlan72h(b *testing.B) {
	cfg := config.Default()
	for b.Loop() {
		if _, err := Plan(cfg, 1); err != nil {
			b.Fatal(err)
		}
	}
}
