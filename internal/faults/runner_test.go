package faults

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/soakd/soakd/internal/components"
	"github.com/soakd/soakd/internal/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fakeKind struct {
	mu         sync.Mutex
	log        []string
	failRevert atomic.Int32 // fail this many reverts
}

// fakeSpec is a kind that injects with inj; a "bad" parameter is refused.
func fakeSpec(name string, inj Injector) Spec {
	return Spec{Name: name, Params: []Param{{Name: "bad"}}, NotRandom: "test kind",
		Check: func(p map[string]string) error {
			if p["bad"] != "" {
				return BadParam("bad", "not allowed")
			}
			return nil
		},
		New: func(Env) (Injector, error) { return inj, nil }}
}

// kindsOf builds a registry of specs for a run.
func kindsOf(t *testing.T, specs ...Spec) Kinds {
	t.Helper()
	reg, err := NewRegistry(specs...)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := reg.Build(Env{})
	if err != nil {
		t.Fatal(err)
	}
	return ks
}
func (k *fakeKind) Inject(ctx context.Context, target string, _ map[string]string) (Revert, error) {
	k.add("inject " + target)
	Verified(ctx, "in force on "+target)
	return func(context.Context) error {
		if k.failRevert.Add(-1) >= 0 {
			k.add("revert-fail " + target)
			return errors.New("stuck")
		}
		k.add("revert " + target)
		return nil
	}, nil
}
func (k *fakeKind) add(s string) { k.mu.Lock(); k.log = append(k.log, s); k.mu.Unlock() }
func (k *fakeKind) calls() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return strings.Join(k.log, ",")
}

type events struct {
	mu       sync.Mutex
	evs      []string
	verified []any // fault_injected's "verified" field
}

func (e *events) add(typ string, f map[string]any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := typ
	if r, ok := f["resumed"].(bool); ok && r {
		s += "(resumed)"
	}
	e.evs = append(e.evs, s)
	if typ == EventFaultInjected {
		e.verified = append(e.verified, f["verified"])
	}
}
func (e *events) String() string { e.mu.Lock(); defer e.mu.Unlock(); return strings.Join(e.evs, ",") }

func tf(at, d time.Duration, kind, target string) config.TimedFault {
	return config.TimedFault{At: config.Duration(at), Duration: config.Duration(d), Kind: kind, Target: target}
}

// planOf turns timeline entries into a plan, as Plan does.
func planOf(tfs []config.TimedFault) []Planned {
	cfg := config.Default()
	cfg.Faults.Random = nil
	cfg.Faults.Timeline = tfs
	p, _ := Plan(cfg, 1, &Registry{}, components.NewRegistry())
	return p
}

type harness struct {
	r       *Runner
	kind    *fakeKind
	ev      *events
	elapsed atomic.Int64
	reg     *prometheus.Registry
}

func newHarness(t *testing.T, timeline []config.TimedFault, start time.Duration) *harness {
	t.Helper()
	h := &harness{kind: &fakeKind{}, ev: &events{}, reg: prometheus.NewRegistry()}
	h.elapsed.Store(int64(start))
	var err error
	h.r, err = NewRunner(RunnerOptions{Plan: planOf(timeline), Kinds: kindsOf(t, fakeSpec("fake", h.kind)), Clock: clockwork.NewFakeClock(),
		Elapsed: func() time.Duration { return time.Duration(h.elapsed.Load()) }, Event: h.ev.add, Metrics: h.reg})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// at sets the run's elapsed time and runs one step.
func (h *harness) at(d time.Duration) {
	h.elapsed.Store(int64(d))
	h.r.step(context.Background())
}

func TestTimelineInjectsAndReverts(t *testing.T) {
	h := newHarness(t, []config.TimedFault{tf(10*time.Second, 5*time.Second, "fake", "raft/leader"), tf(20*time.Second, time.Second, "nope", "")}, 0)
	h.at(9 * time.Second)
	if h.kind.calls() != "" {
		t.Fatal("injected early")
	}
	h.at(10 * time.Second)
	if got := h.r.Active(); len(got) != 1 || got[0].Kind != "fake" || got[0].Target != "raft/leader" {
		t.Fatalf("active = %+v", got)
	}
	if v := testutil.ToFloat64(h.r.metrics.active.WithLabelValues("fake")); v != 1 {
		t.Fatalf("soakd_faults_active = %v", v)
	}
	h.at(14 * time.Second)
	h.at(15 * time.Second)
	h.at(20 * time.Second)
	if got := h.kind.calls(); got != "inject raft/leader,revert raft/leader" {
		t.Fatalf("calls = %s", got)
	}
	if got := h.ev.String(); got != "fault_injected,fault_reverted,fault_skipped" {
		t.Fatalf("events = %s", got)
	}
	// What the injector verified is journaled with the injection.
	if got := fmt.Sprint(h.ev.verified); got != "[in force on raft/leader]" {
		t.Fatalf("verified = %s", got)
	}
	if v := testutil.ToFloat64(h.r.metrics.injected.WithLabelValues("fake")); v != 1 {
		t.Fatalf("injected_total = %v", v)
	}
	if v := testutil.ToFloat64(h.r.metrics.active.WithLabelValues("fake")); v != 0 {
		t.Fatalf("active after revert = %v", v)
	}
}

func TestResumeReappliesForRemainingTime(t *testing.T) {
	// The daemon died at 12 s, inside [10 s, 15 s): the resumed run
	// re-applies the fault until 15 s; the earlier one at 1 s stays done.
	h := newHarness(t, []config.TimedFault{tf(time.Second, time.Second, "fake", "a"), tf(10*time.Second, 5*time.Second, "fake", "b")}, 12*time.Second)
	h.at(12 * time.Second)
	if got := h.kind.calls(); got != "inject b" {
		t.Fatalf("calls = %s", got)
	}
	if got := h.ev.String(); got != "fault_injected(resumed)" {
		t.Fatalf("events = %s", got)
	}
	a := h.r.Active()[0]
	if rem := a.Until.Sub(a.Since); rem != 3*time.Second {
		t.Fatalf("remaining = %v, want 3s", rem)
	}
	h.at(15 * time.Second)
	if len(h.r.Active()) != 0 {
		t.Fatal("not reverted at its end")
	}
}

func TestFailingRevertBacksOffAndGetsStuck(t *testing.T) {
	h := newHarness(t, []config.TimedFault{tf(0, time.Second, "fake", "x"), tf(30*time.Second, time.Second, "fake", "x")}, 0)
	h.kind.failRevert.Store(3)
	h.at(0)
	h.at(time.Second)     // fail 1, next try at +2s
	h.at(2 * time.Second) // backing off: no attempt
	h.at(3 * time.Second) // fail 2, next try at +4s
	h.at(7 * time.Second) // fail 3: stuck
	if a := h.r.Active(); len(a) != 1 || !a[0].Stuck {
		t.Fatalf("active = %+v, want one stuck fault", a)
	}
	if got := strings.Count(h.kind.calls(), "revert-fail"); got != 3 {
		t.Fatalf("revert attempts = %d (%s)", got, h.kind.calls())
	}
	if v := testutil.ToFloat64(h.r.metrics.errors.WithLabelValues("fake")); v != 3 {
		t.Fatalf("fault_errors_total = %v", v)
	}
	// A stuck target blocks new faults on it until it is reverted.
	h.elapsed.Store(int64(30 * time.Second))
	h.r.mu.Lock()
	h.r.active["timeline-0"].nextTry = time.Hour
	h.r.mu.Unlock()
	h.r.step(context.Background())
	if !strings.Contains(h.ev.String(), "fault_failed,fault_skipped") {
		t.Fatalf("events = %s", h.ev)
	}
	if err := h.r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(h.r.Active()) != 0 {
		t.Fatal("Stop left the fault active")
	}
}

func TestStopRevertsActiveAndBadParamsFail(t *testing.T) {
	h := newHarness(t, []config.TimedFault{tf(0, time.Hour, "fake", "y")}, 0)
	if err := h.r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(h.r.Active()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("not injected")
		}
		time.Sleep(time.Millisecond)
	}
	if err := h.r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := h.kind.calls(); got != "inject y,revert y" {
		t.Fatalf("calls = %s", got)
	}

	bad := tf(0, time.Second, "fake", "")
	bad.Params = map[string]string{"bad": "1"}
	_, err := NewRunner(RunnerOptions{Plan: planOf([]config.TimedFault{bad}), Kinds: kindsOf(t, fakeSpec("fake", &fakeKind{})), Elapsed: func() time.Duration { return 0 }})
	if err == nil || err.Error() != "timeline-0 (fake at 0s) params: bad: not allowed" {
		t.Fatalf("NewRunner = %v", err)
	}
}

// fakeResolver names nodes like a 3-node cluster led by node-1.
type fakeResolver struct{}

func (fakeResolver) Resolve(sel string, pick uint64) ([]string, error) {
	switch sel {
	case "leader":
		return []string{"node-1"}, nil
	case "follower":
		return []string{[]string{"node-2", "node-3"}[pick%2]}, nil
	case "node-1", "node-2", "node-3":
		return []string{sel}, nil
	}
	return nil, errors.New("no such target")
}

func TestBlastRadiusRefusesASecondCrash(t *testing.T) {
	h := newHarness(t, nil, 0)
	h.r.o.Plan = []Planned{
		{ID: "a", At: 0, Duration: time.Minute, Kind: "crash", Target: "raft/leader"},
		{ID: "b", At: time.Second, Duration: time.Minute, Kind: "crash", Target: "raft/node-2"},
		{ID: "c", At: 2 * time.Second, Duration: time.Minute, Kind: "fake", Target: "raft/node-3"}, // not node-disrupting
	}
	h.r.o.Resolvers = map[string]components.TargetResolver{"raft": fakeResolver{}}
	h.r.o.BlastRadius = map[string]int{"raft": 1}
	crash := &fakeKind{}
	crashSpec := fakeSpec("crash", crash)
	crashSpec.TakesNodesOut = true
	h.r.o.Kinds = kindsOf(t, crashSpec, fakeSpec("fake", h.kind))
	h.at(0)
	h.at(time.Second)
	h.at(2 * time.Second)
	if got := crash.calls(); got != "inject raft/node-1" {
		t.Fatalf("crash calls = %s, want only the first", got)
	}
	if got := h.kind.calls(); got != "inject raft/node-3" {
		t.Fatalf("fake calls = %s", got)
	}
	if !strings.Contains(h.ev.String(), "fault_injected,fault_skipped,fault_injected") {
		t.Fatalf("events = %s", h.ev)
	}
	_ = h.r.Stop(context.Background())
}

func TestPauseWhenUnhealthyWithHysteresis(t *testing.T) {
	var healthy atomic.Bool
	h := newHarness(t, nil, 0)
	h.r.o.PauseWhenUnhealthy = true
	h.r.o.Healthy = func() (bool, string) { return healthy.Load(), "raft: no leader" }
	for i := range 30 {
		h.r.o.Plan = append(h.r.o.Plan, Planned{ID: fmt.Sprintf("p%d", i), At: time.Duration(i) * time.Second, Duration: 500 * time.Millisecond, Kind: "fake"})
	}
	healthy.Store(true)
	h.at(0) // injected
	healthy.Store(false)
	h.at(time.Second) // paused: skipped
	healthy.Store(true)
	for s := 2; s < 1+healthyToResume; s++ {
		h.at(time.Duration(s) * time.Second) // healthy, but still paused until the streak completes
	}
	h.at(time.Duration(1+healthyToResume) * time.Second) // the 10th healthy step: resumed
	ev := h.ev.String()
	if strings.Count(ev, "fault_injected") != 2 || !strings.Contains(ev, "faults_paused") || !strings.Contains(ev, "faults_resumed") {
		t.Fatalf("events = %s", ev)
	}
	_ = h.r.Stop(context.Background())
}

func TestSettledFaultsAreNotRepeatedOnResume(t *testing.T) {
	// Resumed at 12 s inside both windows: "timeline-0" was reverted (or
	// refused) by the earlier incarnation, "timeline-1" was still active.
	h := newHarness(t, []config.TimedFault{tf(10*time.Second, 5*time.Second, "fake", "a"), tf(11*time.Second, 5*time.Second, "fake", "b")}, 12*time.Second)
	h.r.o.Settled = map[string]bool{"timeline-0": true}
	h.at(12 * time.Second)
	if got := h.kind.calls(); got != "inject b" {
		t.Fatalf("calls = %s, want only the unsettled fault re-applied", got)
	}
	_ = h.r.Stop(context.Background())
}
