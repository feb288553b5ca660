package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/soakd/soakd/internal/check"
	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/config"
	"github.com/soakd/soakd/internal/faults"
	"github.com/soakd/soakd/internal/testutil"
)

// This file alone adds a component ("toykv", an in-memory key-value store
// with a planted lost write) and a fault kind ("toyfault") to the real
// commands: nothing outside it names either. TestPluginFromOneFile shows
// that `soakd plan` schedules the kind, and that `soakd run` builds the
// component, drives it with its load, injects the kind into it, and hands
// its history to the linearizability checker, which catches the bug.

// toyKV acknowledges every write but drops every 25th put to key k0: a
// lost write, planted on one key so the checker must tell it apart.
type toyKV struct {
	clock   clockwork.Clock
	mu      sync.Mutex
	data    map[string][]byte
	puts    int
	ops     atomic.Int64
	clients atomic.Int64
	rec     atomic.Pointer[components.KVRecorder]
}

func (*toyKV) Name() string                { return "toykv" }
func (*toyKV) Start(context.Context) error { return nil }
func (*toyKV) Stop(context.Context) error  { return nil }
func (*toyKV) Health() components.Health   { return components.Health{Healthy: true} }
func (*toyKV) Ops() []string               { return []string{"put", "get", "cas"} }
func (k *toyKV) SetRecorder(r components.KVRecorder) {
	if r == nil {
		k.rec.Store(nil)
		return
	}
	k.rec.Store(&r)
}

// Resolve makes toykv a target: "replica" is one of three replicas.
func (*toyKV) Resolve(sel string, _ uint64) ([]string, error) {
	if sel == "all" {
		return []string{"r1", "r2", "r3"}, nil
	}
	return []string{"r1"}, nil
}

func (k *toyKV) Do(ctx context.Context, op components.Op) components.Result {
	id, ok := components.ClientID(ctx)
	if !ok {
		id = int(k.clients.Add(1)) + 1<<20
	}
	h := components.KVOp{ClientID: id, Op: op.Name, Key: op.Key, Value: op.Value, Expect: op.Expect,
		Outcome: components.OutcomeOK, Call: k.clock.Now()}
	k.mu.Lock()
	cur, found := k.data[op.Key]
	switch op.Name {
	case "put":
		if op.Key != "k0" {
			k.data[op.Key] = op.Value
		} else if k.puts++; k.puts%25 != 0 {
			k.data[op.Key] = op.Value
		}
	case "get":
		h.Output, h.Found = cur, found
	case "cas":
		h.Output, h.Found = cur, found
		if found && bytes.Equal(cur, op.Expect) {
			k.data[op.Key], h.Swapped = op.Value, true
		}
	}
	k.mu.Unlock()
	h.Return = k.clock.Now()
	k.ops.Add(1)
	if r := k.rec.Load(); r != nil {
		(*r).Record(h)
	}
	return components.Result{Outcome: components.OutcomeOK, Value: h.Output, Swapped: h.Swapped}
}

// toyFaults counts what the fault kind did.
type toyFaults struct {
	injected, reverted atomic.Int64
	mu                 sync.Mutex
	targets            []string
}

func (f *toyFaults) Inject(_ context.Context, target string, params map[string]string) (faults.Revert, error) {
	f.injected.Add(1)
	f.mu.Lock()
	f.targets = append(f.targets, target+" "+params["level"])
	f.mu.Unlock()
	var once sync.Once
	return func(context.Context) error { once.Do(func() { f.reverted.Add(1) }); return nil }, nil
}

func TestPluginFromOneFile(t *testing.T) {
	if testing.Short() {
		t.Skip("real time")
	}
	var kv *toyKV
	toy := &toyFaults{}
	b := builtins()
	err := b.components.RegisterSpec(components.Spec{
		Name: "toykv",
		Factory: func(d components.Deps) (components.Component, error) {
			kv = &toyKV{clock: d.Clock, data: map[string][]byte{}}
			return kv, nil
		},
		Load: func(*config.Config) (config.RateLoad, bool) {
			return config.RateLoad{Rate: 300, Mix: map[string]float64{"put": 0.4, "get": 0.5, "cas": 0.1}, Keys: 4,
				Arrivals: "poisson", KeyDist: "uniform", MaxInFlight: 64}, true
		},
		Targets: []components.Target{{Role: components.RoleFollower, Selector: "replica"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = b.faults.Register(faults.Spec{
		Name:   "toyfault",
		Params: []faults.Param{{Name: "level", Doc: "how hard"}},
		Roles:  []components.Role{components.RoleFollower},
		Draw: func(rng *rand.Rand) map[string]string {
			return map[string]string{"level": strconv.Itoa(1 + rng.IntN(3))}
		},
		New: func(faults.Env) (faults.Injector, error) { return toy, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, `
faults:
  random: {mean_interval: 2s, duration: {min: 500ms, max: 1s}, max_concurrent: 1, kinds: [toyfault]}
  timeline: []
`)

	// soakd plan --kinds offers it; soakd plan schedules it on toykv.
	var out, errOut bytes.Buffer
	if code := execute([]string{"plan", "--kinds"}, &out, &errOut, b); code != 0 {
		t.Fatalf("plan --kinds: exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "toyfault (random: follower)") || !strings.Contains(out.String(), "follower=toykv/replica") {
		t.Fatalf("plan --kinds:\n%s", out.String())
	}
	out.Reset()
	if code := execute([]string{"plan", "--config", cfg, "--format", "json"}, &out, &errOut, b); code != 0 {
		t.Fatalf("plan: exit %d: %s", code, errOut.String())
	}
	var plan struct{ Faults []planEntry }
	if err := json.Unmarshal(out.Bytes(), &plan); err != nil {
		t.Fatal(err)
	}
	if len(plan.Faults) < 100 || plan.Faults[0].Kind != "toyfault" || plan.Faults[0].Target != "toykv/replica" ||
		plan.Faults[0].Params["level"] == "" {
		t.Fatalf("plan of %d faults, first %+v", len(plan.Faults), plan.Faults[0])
	}

	// soakd run: built, loaded, faulted, checked.
	state := filepath.Join(t.TempDir(), "s")
	stderr := &testutil.SyncBuffer{}
	if code := execute([]string{"run", "--config", cfg, "--state-dir", state, "--duration", "12s"}, &out, stderr, b); code != 0 {
		t.Fatalf("run: exit %d\n%s", code, stderr)
	}
	if kv == nil || kv.ops.Load() < 1000 {
		t.Fatalf("the load engine did not drive toykv (%v)", kv)
	}
	if toy.injected.Load() < 2 || toy.reverted.Load() != toy.injected.Load() {
		t.Fatalf("toyfault injected %d, reverted %d", toy.injected.Load(), toy.reverted.Load())
	}
	toy.mu.Lock()
	first := toy.targets[0]
	toy.mu.Unlock()
	if !strings.HasPrefix(first, "toykv/r1 ") {
		t.Fatalf("toyfault's target = %q, want the resolved replica", first)
	}
	viol := waitEvent(t, state, check.EventInvariantViolation, 1, time.Second)
	for _, v := range viol {
		if v.Fields["component"] != "toykv" || v.Fields["key"] != "k0" {
			t.Fatalf("violation %v, want only toykv's key k0, where the bug is", v.Fields)
		}
	}
	t.Logf("toykv: %d ops, toyfault: %d injections; %d violations, first on key %v",
		kv.ops.Load(), toy.injected.Load(), len(viol), viol[0].Fields["key"])
}
