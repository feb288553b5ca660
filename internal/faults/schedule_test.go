package faults

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/config"
)

// testRegistries stand in for the built-in kinds and components (which
// import this package): the default config's random kinds, with roles and
// draws like theirs, and three components offering targets by role, only
// raft enabled unless the config turns the others on.
func testRegistries(t testing.TB) (*Registry, *components.Registry) {
	t.Helper()
	inject := func(Env) (Injector, error) { return &fakeKind{}, nil }
	latency := func(rng *rand.Rand) map[string]string {
		return map[string]string{"latency": strconv.Itoa(rng.IntN(100)) + "ms"}
	}
	none := func(*rand.Rand) map[string]string { return nil }
	kinds, err := NewRegistry(
		Spec{Name: "partition", Roles: []components.Role{components.RoleLeader, components.RoleFollower, components.RoleMinority}, Draw: none, TakesNodesOut: true, New: inject},
		Spec{Name: "delay", Params: []Param{{Name: "latency"}}, Roles: []components.Role{components.RoleLeader, components.RoleLink}, Draw: latency, New: inject},
		Spec{Name: "loss", Roles: []components.Role{components.RoleFollower, components.RoleLink}, Draw: none, New: inject},
		Spec{Name: "crash", Roles: []components.Role{components.RoleLeader, components.RoleFollower}, Draw: none, TakesNodesOut: true, New: inject},
		Spec{Name: "cpu", Self: true, Draw: none, New: inject},
		Spec{Name: "canary", NotRandom: "a canary is never drawn at random", New: inject},
	)
	if err != nil {
		t.Fatal(err)
	}
	comps := components.NewRegistry()
	factory := func(components.Deps) (components.Component, error) { return nil, errors.New("not built in this test") }
	for _, c := range []components.Spec{
		{Name: "raft", Factory: factory, Targets: []components.Target{{Role: components.RoleLeader, Selector: "leader"},
			{Role: components.RoleFollower, Selector: "follower"}, {Role: components.RoleMinority, Selector: "minority"}}},
		{Name: "pbft", Factory: factory, Enabled: func(c *config.Config) bool { return c.Components.PBFT.Enabled },
			Targets: []components.Target{{Role: components.RoleLeader, Selector: "primary"}, {Role: components.RoleFollower, Selector: "backup"}}},
		{Name: "migration", Factory: factory, Enabled: func(c *config.Config) bool { return c.Components.Migration.Enabled },
			Targets: []components.Target{{Role: components.RoleLink, Selector: "link"}}},
	} {
		if err := comps.RegisterSpec(c); err != nil {
			t.Fatal(err)
		}
	}
	return kinds, comps
}

func TestPlanIsAPureFunctionOfConfigAndSeed(t *testing.T) {
	kinds, comps := testRegistries(t)
	cfg := config.Default()
	start := time.Now()
	a, err := Plan(cfg, 1, kinds, comps)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	b, _ := Plan(cfg, 1, kinds, comps)
	c, _ := Plan(cfg, 2, kinds, comps)
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
	kinds, comps := testRegistries(t)
	cfg := config.Default()
	cfg.Faults.Timeline = nil
	cfg.Faults.Random.MeanInterval = config.Duration(30 * time.Second) // dense: faults overlap often
	cfg.Faults.Random.MaxConcurrent = 2
	cfg.Components.PBFT.Enabled = false
	cfg.Components.Migration.Enabled = false
	cfg.Faults.Random.Kinds = []string{"partition", "delay", "loss", "crash", "cpu", "canary", "not-built"}
	plan, _ := Plan(cfg, 7, kinds, comps)
	drawn := map[string]bool{}
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
		if c, _, _ := strings.Cut(p.Target, "/"); c == "pbft" || c == "migration" {
			t.Fatalf("fault on disabled component: %+v", p)
		}
		drawn[p.Kind+" "+p.Target] = true
		if p.Duration < cfg.Faults.Random.Duration.Min.Std() || p.Duration > cfg.Faults.Random.Duration.Max.Std() {
			t.Fatalf("duration %v outside the configured range", p.Duration)
		}
	}
	// Every kind and role the registries offer is drawn, and nothing else:
	// no canary, no kind this soakd lacks, no target a kind does not aim at.
	var got []string
	for k := range drawn {
		got = append(got, k)
	}
	sort.Strings(got)
	want := "cpu self,crash raft/follower,crash raft/leader,delay raft/leader,loss raft/follower," +
		"partition raft/follower,partition raft/leader,partition raft/minority"
	if strings.Join(got, ",") != want {
		t.Fatalf("drawn:\n got %s\nwant %s", strings.Join(got, ","), want)
	}
	for _, p := range plan {
		if p.Kind == "delay" && p.Params["latency"] == "" {
			t.Fatalf("delay drawn without its parameters: %+v", p)
		}
	}
	// Enabling a component offers its targets by role.
	cfg.Components.Migration.Enabled = true
	plan, _ = Plan(cfg, 7, kinds, comps)
	if !slices.ContainsFunc(plan, func(p Planned) bool { return p.Target == "migration/link" }) {
		t.Fatal("migration/link never drawn with migration enabled")
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
	kinds, comps := testRegistries(b)
	cfg := config.Default()
	for b.Loop() {
		if _, err := Plan(cfg, 1, kinds, comps); err != nil {
			b.Fatal(err)
		}
	}
}
